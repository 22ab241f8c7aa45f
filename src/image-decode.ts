/**
 * Image decoding that reproduces OpenCV's `cv::imread`/`cv::imdecode` with `IMREAD_COLOR`,
 * the decoder of react-native-executorch, on top of sharp (libvips).
 *
 * What IMREAD_COLOR does, and how it is reproduced here:
 * - EXIF orientation is applied: sharp's `rotate()`.
 * - Alpha is dropped without blending: sharp's `removeAlpha()`.
 * - Gray images become three equal channels.
 * - 16-bit images keep the high byte (libpng's `png_set_strip_16`): sharp's cast to 8 bits.
 * - Embedded ICC profiles are ignored: sharp's `ignoreIcc`.
 * - CMYK JPEGs are converted with OpenCV's integer formula, not with a colour profile.
 *
 * docs/preprocessing.md lists the formats checked against OpenCV and where the two differ.
 */
import sharp from 'sharp';

import { EmbedImageError, fromNativeError } from './errors.js';
import { native } from './native.js';
import { PIXEL_CHANNELS, type RawPixels } from './sources.js';

/** Decoded 8-bit RGB pixels in row-major HWC order (row 0 is the top row). */
export interface RgbImage {
  data: Uint8Array;
  width: number;
  height: number;
}

export interface DecodeOptions {
  /**
   * Maximum width x height of an encoded image, checked before its pixels are decoded
   * (default 268,402,689, sharp's default limit). Larger images fail with ERR_IMAGE_TOO_LARGE.
   */
  maxPixels?: number;
  /** Name of the image (a file path or URL) for error messages. */
  name?: string;
}

/** sharp's default `limitInputPixels`, 0x3FFF * 0x3FFF. */
export const DEFAULT_MAX_PIXELS = 0x3fff * 0x3fff;

interface PreprocessAddon {
  cmykToRgb(pixels: Uint8Array, width: number, height: number, inverted: boolean): Promise<Uint8Array>;
}

function decodeError(name: string, reason: string, cause?: unknown): EmbedImageError {
  return new EmbedImageError('ERR_IMAGE_DECODE', `cannot decode image ${name}: ${reason}`, cause === undefined ? undefined : { cause });
}

// Formats that the prebuilt libvips inside sharp 0.34 reads. OpenCV on the phone also reads BMP
// and the PNM family, which that build lacks, and HEIC files need a HEVC decoder it lacks too.
const DECODABLE_FORMATS = 'JPEG, PNG, WebP, GIF, TIFF or AVIF';

function sharpReason(error: unknown): string {
  const message = error instanceof Error ? error.message.trim() : String(error);
  if (/unsupported image format/i.test(message)) {
    return `its format is not one this build decodes (${DECODABLE_FORMATS}); convert it to PNG or JPEG`;
  }
  if (/heif:|compression format has not been built in/i.test(message)) {
    return `HEIC/HEIF images need a HEVC decoder that this build lacks; convert it to PNG or JPEG`;
  }
  return message;
}

/** Converts sharp's raw output of 1 to 4 channels to RGB as IMREAD_COLOR does. */
function channelsToRgb(data: Uint8Array, pixels: number, channels: number): Uint8Array {
  if (channels === 3) return data;
  const rgb = new Uint8Array(pixels * 3);
  for (let i = 0; i < pixels; i++) {
    const source = i * channels;
    if (channels <= 2) {
      const gray = data[source]!;
      rgb[3 * i] = gray;
      rgb[3 * i + 1] = gray;
      rgb[3 * i + 2] = gray;
    } else {
      rgb[3 * i] = data[source]!;
      rgb[3 * i + 1] = data[source + 1]!;
      rgb[3 * i + 2] = data[source + 2]!;
    }
  }
  return rgb;
}

/**
 * Lets decodes run side by side, or one alone. libvips keeps one error buffer for the whole
 * process, and sharp reads it after a failure, so decodes that fail at the same time can read
 * each other's messages or find the buffer cleared ("Unknown error"), as lovell/sharp issue
 * 902 reports.
 * A decode that failed is therefore run again alone, and its own message is reported.
 */
class DecodeGate {
  #running = 0;
  #alone = false;
  #waiting: (() => void)[] = [];
  #aloneWaiting = 0;

  /** Runs `work` beside other shared work, after any work waiting to run alone. */
  async shared<T>(work: () => Promise<T>): Promise<T> {
    while (this.#alone || this.#aloneWaiting > 0) await this.#wait();
    this.#running += 1;
    try {
      return await work();
    } finally {
      this.#running -= 1;
      this.#wake();
    }
  }

  /** Runs `work` while no other work runs. */
  async alone<T>(work: () => Promise<T>): Promise<T> {
    this.#aloneWaiting += 1;
    while (this.#alone || this.#running > 0) await this.#wait();
    this.#aloneWaiting -= 1;
    this.#alone = true;
    try {
      return await work();
    } finally {
      this.#alone = false;
      this.#wake();
    }
  }

  #wait(): Promise<void> {
    return new Promise((resolve) => this.#waiting.push(resolve));
  }

  #wake(): void {
    for (const resolve of this.#waiting.splice(0)) resolve();
  }
}

const decodeGate = new DecodeGate();

/**
 * Decodes an encoded image (JPEG, PNG, WebP, GIF, TIFF, AVIF and the other formats that
 * sharp reads) to 8-bit RGB pixels, as OpenCV's `IMREAD_COLOR` would. Fails with
 * ERR_IMAGE_DECODE when the bytes are empty, corrupt or in no supported format, and with
 * ERR_IMAGE_TOO_LARGE above `maxPixels`.
 */
export async function decodeImage(bytes: Uint8Array, options: DecodeOptions = {}): Promise<RgbImage> {
  const name = options.name ?? `<${bytes.length} bytes>`;
  const maxPixels = options.maxPixels ?? DEFAULT_MAX_PIXELS;
  if (!(bytes instanceof Uint8Array)) {
    throw new EmbedImageError('ERR_INVALID_ARGUMENT', `decodeImage expects a Uint8Array, got ${typeof bytes}`);
  }
  if (!Number.isSafeInteger(maxPixels) || maxPixels < 1) {
    throw new EmbedImageError('ERR_INVALID_ARGUMENT', `maxPixels must be a positive integer, got ${String(maxPixels)}`);
  }
  if (bytes.length === 0) throw decodeError(name, 'the file is empty');
  try {
    return await decodeGate.shared(() => decodeChecked(bytes, name, maxPixels));
  } catch (error) {
    // Only sharp's failures carry libvips's message; the other errors come from checks here.
    // NOTE: an image that fails late in decoding costs about twice as much, and other decodes
    // wait while it runs again. 100 truncated 3000x2000 JPEGs took 6.0 s instead of 2.6 s
    // (embed, 2 cores); files that fail in their header cost little.
    if (!(error instanceof EmbedImageError) || error.cause === undefined) throw error;
    return decodeGate.alone(() => decodeChecked(bytes, name, maxPixels));
  }
}

/** decodeImage() after its argument checks. */
async function decodeChecked(bytes: Uint8Array, name: string, maxPixels: number): Promise<RgbImage> {
  // sharp checks its own limit while decoding; the header check below gives the clearer error
  // and stops before any pixel is decoded. The sharp limit stays as a second guard.
  const input = { failOn: 'error', ignoreIcc: true, limitInputPixels: maxPixels } as const;
  let metadata: sharp.Metadata;
  try {
    metadata = await sharp(bytes, { ...input, limitInputPixels: false }).metadata();
  } catch (error) {
    throw decodeError(name, sharpReason(error), error);
  }
  const { width, height } = metadata;
  if (width === undefined || height === undefined || width < 1 || height < 1) {
    throw decodeError(name, 'the image has no width or height');
  }
  if (width * height > maxPixels) {
    throw new EmbedImageError(
      'ERR_IMAGE_TOO_LARGE',
      `image ${name} has ${width}x${height} = ${width * height} pixels, more than the limit of ${maxPixels}; downscale it first, or raise maxPixels in the API`,
    );
  }

  try {
    if (metadata.space === 'cmyk') {
      // libvips keeps CMYK as loaded when the pipeline stays in CMYK, but inverted relative
      // to libjpeg's output (255 = full ink), with or without an Adobe marker (libvips 8.17,
      // measured). The RGB conversion is OpenCV's formula, applied natively.
      const { data, info } = await sharp(bytes, input)
        .rotate()
        .pipelineColourspace('cmyk')
        .toColourspace('cmyk')
        .raw()
        .toBuffer({ resolveWithObject: true });
      if (info.channels !== 4) throw decodeError(name, `CMYK image decoded to ${info.channels} channels`);
      const addon = native() as unknown as PreprocessAddon;
      const cmyk = new Uint8Array(data.buffer, data.byteOffset, data.length);
      let rgb: Uint8Array;
      try {
        rgb = await addon.cmykToRgb(cmyk, info.width, info.height, true);
      } catch (error) {
        throw fromNativeError(error);
      }
      return { data: rgb, width: info.width, height: info.height };
    }
    const { data, info } = await sharp(bytes, input).rotate().raw({ depth: 'uchar' }).toBuffer({ resolveWithObject: true });
    const pixels = new Uint8Array(data.buffer, data.byteOffset, data.length);
    return { data: channelsToRgb(pixels, info.width * info.height, info.channels), width: info.width, height: info.height };
  } catch (error) {
    if (error instanceof EmbedImageError) throw error;
    const reason = sharpReason(error);
    if (/pixel limit/i.test(reason)) {
      throw new EmbedImageError('ERR_IMAGE_TOO_LARGE', `image ${name} is larger than the limit of ${maxPixels} pixels: ${reason}`, { cause: error });
    }
    throw decodeError(name, reason, error);
  }
}

/**
 * Converts raw pixels in any of the formats of `RawPixels` to RGB: BGR(A) channels are
 * swapped, alpha is dropped without blending and gray is copied to three channels.
 */
export function rawPixelsToRgb(pixels: RawPixels): RgbImage {
  const { data, width, height, format } = pixels;
  const channels: number | undefined = PIXEL_CHANNELS[format];
  if (channels === undefined) {
    throw new EmbedImageError('ERR_INVALID_ARGUMENT', `raw pixel format must be one of ${Object.keys(PIXEL_CHANNELS).join(', ')}, got ${JSON.stringify(format)}`);
  }
  if (!Number.isSafeInteger(width) || !Number.isSafeInteger(height) || width < 1 || height < 1) {
    throw new EmbedImageError('ERR_INVALID_ARGUMENT', `raw pixel width and height must be positive integers, got ${String(width)}x${String(height)}`);
  }
  const count = width * height;
  if (!(data instanceof Uint8Array) || data.length !== count * channels) {
    throw new EmbedImageError(
      'ERR_INVALID_ARGUMENT',
      `${width}x${height} ${format} pixels need a Uint8Array of ${count * channels} bytes, got ${data instanceof Uint8Array ? data.length : typeof data}`,
    );
  }
  if (format === 'rgb') return { data, width, height };
  if (format === 'rgba' || format === 'gray') return { data: channelsToRgb(data, count, channels), width, height };
  const rgb = new Uint8Array(count * 3);
  for (let i = 0; i < count; i++) {
    const source = i * channels;
    rgb[3 * i] = data[source + 2]!;
    rgb[3 * i + 1] = data[source + 1]!;
    rgb[3 * i + 2] = data[source]!;
  }
  return { data: rgb, width, height };
}
