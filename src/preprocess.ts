/**
 * The input tensor of react-native-executorch's image embeddings, reproduced bit for bit.
 * The RGB image is resized to the model's input size with OpenCV's INTER_LINEAR arithmetic
 * (stretched, aspect ratio not kept, skipped when the size already matches). It is then
 * scaled to [0, 1] and laid out as planar float32 [1, 3, height, width]. Mean/std
 * normalization is part of the model and is not applied here. docs/preprocessing.md has the
 * details.
 */
import sharp from 'sharp';

import { EmbedImageError, fromNativeError } from './errors.js';
import { rawPixelsToRgb, type RgbImage } from './image-decode.js';
import { native } from './native.js';
import type { PixelFormat, RawPixels } from './sources.js';

export { DEFAULT_MAX_PIXELS, decodeImage, rawPixelsToRgb, type DecodeOptions, type RgbImage } from './image-decode.js';

/**
 * Preprocessing profile, the computation of the tensor:
 * - `rne-legacy`: react-native-executorch 0.5 to 0.9 (`useImageEmbeddings`,
 *   `ImageEmbeddingsModule`): OpenCV INTER_LINEAR, then `(double)v / 255` rounded to float.
 * - `rne`: OpenCV INTER_LINEAR, then `cv::Mat::convertTo(CV_32F, 1 / 255.0)`, which
 *   computes `v * (float)(1 / 255.0)` in float and differs from `rne-legacy` in the last bit
 *   of some values.
 * - `sharp`: sharp's Lanczos-3 resize (antialiased, better for downscaling, no phone parity),
 *   then the `rne-legacy` scaling.
 */
export type PreprocessProfile = 'rne-legacy' | 'rne' | 'sharp';

export const PREPROCESS_PROFILES: readonly PreprocessProfile[] = ['rne-legacy', 'rne', 'sharp'];

export interface PreprocessOptions {
  /** Model input width: the last dimension of the method's input 0. */
  width: number;
  /** Model input height: the second to last dimension of the method's input 0. */
  height: number;
  /** Default 'rne-legacy'. */
  profile?: PreprocessProfile;
}

export interface PreprocessResult {
  /** Planar RGB values in [0, 1], shape `shape`. */
  tensor: Float32Array;
  /** [1, 3, height, width]. */
  shape: [1, 3, number, number];
  /** The resized 8-bit RGB image, HWC, height x width x 3. */
  resized: Uint8Array;
}

/** RGB pixels from decodeImage, or raw pixels with their format ('rgb' when absent). */
export type PreprocessInput = RgbImage | RawPixels | (RgbImage & { format?: PixelFormat });

interface PreprocessAddon {
  resizePixels(
    pixels: Uint8Array,
    width: number,
    height: number,
    channels: number,
    outWidth: number,
    outHeight: number,
    scaling: 'none' | 'double' | 'float',
  ): Promise<{ resized: Uint8Array; tensor: Float32Array | null }>;
}

/** Largest model input side accepted, the addon's limit. */
const MAX_SIDE = 1 << 15;

function addon(): PreprocessAddon {
  return native() as unknown as PreprocessAddon;
}

/** Runs an addon call, turning its errors (thrown or rejected) into EmbedImageErrors. */
export async function callAddon<T>(call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (error) {
    throw fromNativeError(error);
  }
}

function checkSize(name: string, value: unknown): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1 || value > MAX_SIDE) {
    throw new EmbedImageError('ERR_INVALID_ARGUMENT', `${name} must be an integer from 1 to ${MAX_SIDE}, got ${String(value)}`);
  }
  return value;
}

async function resizeWithSharp(image: RgbImage, width: number, height: number): Promise<Uint8Array> {
  if (image.width === width && image.height === height) return image.data;
  const data = await sharp(image.data, { raw: { width: image.width, height: image.height, channels: 3 }, limitInputPixels: false })
    .resize(width, height, { fit: 'fill', kernel: 'lanczos3' })
    .raw()
    .toBuffer();
  return new Uint8Array(data.buffer, data.byteOffset, data.length);
}

/**
 * Resizes and scales an image to a model input tensor as the chosen profile does. Raw
 * pixels in BGR(A), RGBA or gray are converted to RGB first (alpha dropped, not blended).
 * Fails with ERR_INVALID_ARGUMENT on a bad size, profile or pixel buffer.
 */
export async function preprocess(image: PreprocessInput, options: PreprocessOptions): Promise<PreprocessResult> {
  const width = checkSize('width', options.width);
  const height = checkSize('height', options.height);
  const profile = options.profile ?? 'rne-legacy';
  if (!PREPROCESS_PROFILES.includes(profile)) {
    throw new EmbedImageError('ERR_INVALID_ARGUMENT', `profile must be one of ${PREPROCESS_PROFILES.join(', ')}, got ${JSON.stringify(profile)}`);
  }
  const format = 'format' in image && image.format !== undefined ? image.format : 'rgb';
  const rgb = rawPixelsToRgb({ data: image.data, width: image.width, height: image.height, format });

  let source = rgb;
  if (profile === 'sharp') {
    source = { data: await resizeWithSharp(rgb, width, height), width, height };
  }
  const scaling = profile === 'rne' ? 'float' : 'double';
  const result = await callAddon(() => addon().resizePixels(source.data, source.width, source.height, 3, width, height, scaling));
  if (result.tensor === null) throw new EmbedImageError('ERR_INTERNAL', 'the addon returned no tensor');
  return { tensor: result.tensor, shape: [1, 3, height, width], resized: result.resized };
}

/**
 * Resizes 8-bit interleaved pixels (1 to 4 channels) with OpenCV's INTER_LINEAR arithmetic,
 * as `cv::resize(src, dst, Size(width, height))` does; the same size returns a copy.
 */
export async function resizeLinear(
  pixels: Uint8Array,
  size: { width: number; height: number; channels: number },
  width: number,
  height: number,
): Promise<Uint8Array> {
  const outWidth = checkSize('width', width);
  const outHeight = checkSize('height', height);
  const result = await callAddon(() => addon().resizePixels(pixels, size.width, size.height, size.channels, outWidth, outHeight, 'none'));
  return result.resized;
}
