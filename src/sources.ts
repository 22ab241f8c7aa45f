/**
 * Image sources: turns what a caller passes as an image (a file path, a `file://` URI, an
 * http(s) URL, a `data:` URI, bare base64 text, bytes or raw pixels) into encoded bytes for the
 * decoder, or into validated raw pixels.
 *
 * react-native-executorch reads image strings in `readImage` (common/rnexecutorch/
 * data_processing/ImageProcessing.cpp): a string that starts with "file" is read with
 * `cv::imread`, and every other kind (a `data:` URI, an http(s) download, bare base64) is
 * decoded from memory with `cv::imdecode`, both with `IMREAD_COLOR`. Here every kind reaches
 * the decoder as the same encoded bytes, so a file gives the same pixels whichever way it is
 * named. `decodePath` records which of the two functions the phone would use, for reports.
 */
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';

import { EmbedImageError } from './errors.js';

/** Pixel layouts of raw pixel sources, with their channel counts. */
export const PIXEL_CHANNELS = { rgb: 3, rgba: 4, bgr: 3, bgra: 4, gray: 1 } as const;

export type PixelFormat = keyof typeof PIXEL_CHANNELS;

/** Decoded 8-bit pixels in row-major HWC order (row 0 is the top row). */
export interface RawPixels {
  data: Uint8Array;
  width: number;
  height: number;
  format: PixelFormat;
}

/**
 * An image: a file path, a `file://`, `http://`, `https://` or `data:` URI (as a string or a
 * URL), bare base64 text of an encoded image, the encoded bytes, or raw pixels.
 */
export type ImageSource = string | URL | Uint8Array | ArrayBuffer | RawPixels;

export interface SourceOptions {
  /** Time limit in milliseconds for an http(s) download, redirects included (default 30,000). */
  timeoutMs?: number;
  /** Maximum size in bytes of a downloaded image (default 64 MiB). */
  maxBytes?: number;
  /** Maximum number of http(s) redirects to follow (default 5). */
  maxRedirects?: number;
  /** Aborts a download when signalled. */
  signal?: AbortSignal;
}

export const DEFAULT_SOURCE_OPTIONS = {
  timeoutMs: 30_000,
  maxBytes: 64 * 1024 * 1024,
  maxRedirects: 5,
} as const;

/** How a source was given: this decides how react-native-executorch would read it. */
export type SourceKind = 'file' | 'file-uri' | 'http' | 'data-uri' | 'base64' | 'bytes' | 'pixels';

/** The OpenCV function that react-native-executorch uses for a source, or 'none' for raw pixels. */
export type DecodePath = 'imread' | 'imdecode' | 'none';

export type ResolvedSource =
  | { kind: Exclude<SourceKind, 'pixels'>; label: string; decodePath: 'imread' | 'imdecode'; bytes: Uint8Array }
  | { kind: 'pixels'; label: string; decodePath: 'none'; pixels: RawPixels };

/** Standard and URL-safe base64 alphabets, padded or not, after whitespace is removed. */
const BASE64_PATTERN = /^(?:[A-Za-z0-9+/]+|[A-Za-z0-9_-]+)={0,2}$/;

/**
 * A bare string shorter than this is never taken for base64, because a short name that is
 * not a file is more likely a typo than an image. The smallest valid PNG is 67 bytes, which
 * is 92 base64 characters.
 */
const MIN_BARE_BASE64_LENGTH = 32;

const DATA_URI_LABEL_LENGTH = 40;

function sourceError(label: string, problem: string, cause?: unknown): EmbedImageError {
  return new EmbedImageError('ERR_IMAGE_SOURCE', `${label}: ${problem}`, cause === undefined ? undefined : { cause });
}

function isRawPixels(value: unknown): value is RawPixels {
  return typeof value === 'object' && value !== null && !(value instanceof Uint8Array) && !(value instanceof ArrayBuffer) && !(value instanceof URL) && 'data' in value;
}

/** Returns a short label for messages: data URIs and base64 text are cut to their start. */
export function describeSource(source: ImageSource): string {
  if (typeof source === 'string') {
    if (source.length <= DATA_URI_LABEL_LENGTH * 2) return source;
    return `${source.slice(0, DATA_URI_LABEL_LENGTH)}... (${source.length} characters)`;
  }
  if (source instanceof URL) return describeSource(source.href);
  if (source instanceof Uint8Array) return `<${source.length} bytes>`;
  if (source instanceof ArrayBuffer) return `<${source.byteLength} bytes>`;
  if (isRawPixels(source)) return `<${String(source.width)}x${String(source.height)} ${String(source.format)} pixels>`;
  return `<${typeof source}>`;
}

/**
 * Checks raw pixels and returns them: positive integer width and height, a known format and
 * a Uint8Array (or Uint8ClampedArray) of exactly width * height * channels bytes.
 */
export function checkRawPixels(pixels: RawPixels, label = describeSource(pixels)): RawPixels {
  const { width, height, format } = pixels;
  if (!Number.isSafeInteger(width) || width < 1 || !Number.isSafeInteger(height) || height < 1) {
    throw sourceError(label, `raw pixels need positive integer width and height, got ${String(width)} and ${String(height)}`);
  }
  if (!Object.hasOwn(PIXEL_CHANNELS, format)) {
    throw sourceError(label, `raw pixel format must be one of ${Object.keys(PIXEL_CHANNELS).join(', ')}, got ${JSON.stringify(format)}`);
  }
  let data: unknown = pixels.data;
  if (data instanceof Uint8ClampedArray) data = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  if (!(data instanceof Uint8Array)) {
    throw sourceError(label, `raw pixel data must be a Uint8Array, got ${(data as object | undefined)?.constructor?.name ?? typeof data}`);
  }
  const expected = width * height * PIXEL_CHANNELS[format];
  if (data.length !== expected) {
    throw sourceError(label, `${width}x${height} ${format} pixels need ${expected} bytes, got ${data.length}`);
  }
  return { data, width, height, format };
}

/** Decodes strict base64 (standard or URL-safe alphabet, whitespace ignored), or returns undefined. */
export function decodeBase64Strict(text: string): Uint8Array | undefined {
  const compact = text.replace(/\s+/g, '');
  if (compact.length === 0 || !BASE64_PATTERN.test(compact)) return undefined;
  const unpadded = compact.replace(/=+$/, '');
  // A base64 text of length 4k + 1 cannot come from any byte string.
  if (unpadded.length % 4 === 1) return undefined;
  if (compact.includes('=') && compact.length % 4 !== 0) return undefined;
  const alphabet = /[-_]/.test(unpadded) ? 'base64url' : 'base64';
  return new Uint8Array(Buffer.from(unpadded, alphabet));
}

/** Returns whether bytes start with the signature of a common image format. */
export function hasImageSignature(bytes: Uint8Array): boolean {
  const ascii = Buffer.from(bytes.subarray(0, 12)).toString('latin1');
  return (
    ascii.startsWith('\x89PNG\r\n\x1a\n') ||
    ascii.startsWith('\xff\xd8\xff') ||
    ascii.startsWith('GIF87a') ||
    ascii.startsWith('GIF89a') ||
    (ascii.startsWith('RIFF') && ascii.slice(8, 12) === 'WEBP') ||
    ascii.startsWith('BM') ||
    ascii.startsWith('II*\0') ||
    ascii.startsWith('MM\0*') ||
    ascii.slice(4, 8) === 'ftyp' ||
    /^P[1-6]\s/.test(ascii)
  );
}

/**
 * Parses a `data:` URI (RFC 2397). The payload is base64 when the media type ends in
 * ";base64", and percent-encoded bytes otherwise.
 */
function decodeDataUri(uri: string, label: string): Uint8Array {
  const comma = uri.indexOf(',');
  if (comma < 0) throw sourceError(label, 'invalid data: URI: there is no "," before the data');
  const header = uri.slice('data:'.length, comma);
  const payload = uri.slice(comma + 1);
  if (/;base64$/i.test(header)) {
    const bytes = decodeBase64Strict(payload);
    if (!bytes) throw sourceError(label, 'invalid data: URI: the data after ";base64," is not valid base64');
    return bytes;
  }
  try {
    return new Uint8Array(Buffer.from(unescapeBytes(payload), 'latin1'));
  } catch (error) {
    throw sourceError(label, `invalid data: URI: ${(error as Error).message}`, error);
  }
}

/** Decodes %XX escapes to single bytes (one latin1 character each), keeping other characters. */
function unescapeBytes(text: string): string {
  return text.replace(/%(..)?/g, (match, hex: string | undefined) => {
    if (hex === undefined || !/^[0-9a-fA-F]{2}$/.test(hex)) throw new Error(`invalid percent escape "${match}"`);
    return String.fromCharCode(Number.parseInt(hex, 16));
  });
}

async function readImageFile(path: string, label: string): Promise<Uint8Array> {
  try {
    return new Uint8Array(await readFile(path));
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') throw new EmbedImageError('ERR_FILE_NOT_FOUND', `${label}: file not found`, { cause: error });
    if (code === 'ENAMETOOLONG') throw new EmbedImageError('ERR_FILE_NOT_FOUND', `${label}: file not found (the name is too long for a path)`, { cause: error });
    if (code === 'EISDIR') throw new EmbedImageError('ERR_FILE_READ', `${label}: is a directory, not an image file`, { cause: error });
    throw new EmbedImageError('ERR_FILE_READ', `${label}: cannot read the file: ${(error as Error).message}`, { cause: error });
  }
}

/** Returns the numeric option or its default, rejecting values that are not positive. */
function positiveOption(name: keyof typeof DEFAULT_SOURCE_OPTIONS, value: number | undefined, minimum: number): number {
  const result = value ?? DEFAULT_SOURCE_OPTIONS[name];
  if (!Number.isFinite(result) || result < minimum) {
    throw new EmbedImageError('ERR_INVALID_ARGUMENT', `${name} must be a number of at least ${minimum}, got ${String(value)}`);
  }
  return result;
}

/** Describes a failed fetch() by its underlying cause (ECONNREFUSED, ENOTFOUND and the like). */
function networkProblem(error: unknown): string {
  const cause = (error as { cause?: { code?: string; message?: string } }).cause;
  if (cause?.code) return `${cause.code}${cause.message ? ` (${cause.message})` : ''}`;
  return cause?.message ?? (error as Error).message;
}

/**
 * Downloads an http(s) URL with a time limit that covers redirects and the body, a size
 * limit checked against Content-Length and while reading, and at most `maxRedirects`
 * redirects, each to an http(s) URL.
 */
export async function downloadImage(url: URL, options: SourceOptions = {}): Promise<Uint8Array> {
  const timeoutMs = positiveOption('timeoutMs', options.timeoutMs, 1);
  const maxBytes = positiveOption('maxBytes', options.maxBytes, 1);
  const maxRedirects = positiveOption('maxRedirects', options.maxRedirects, 0);
  const label = url.href;

  const controller = new AbortController();
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    controller.abort();
  }, timeoutMs);
  const onAbort = (): void => controller.abort();
  options.signal?.addEventListener('abort', onAbort, { once: true });
  if (options.signal?.aborted) controller.abort();

  const failure = (error: unknown): EmbedImageError => {
    if (error instanceof EmbedImageError) return error;
    if (timedOut) return sourceError(label, `download timed out after ${timeoutMs} ms; raise the time limit if the server is slow`, error);
    if (controller.signal.aborted) return sourceError(label, 'download aborted', error);
    return sourceError(label, `download failed: ${networkProblem(error)}`, error);
  };

  try {
    let current = url;
    for (let redirects = 0; ; redirects += 1) {
      const response = await fetch(current, { redirect: 'manual', signal: controller.signal });
      if (response.status >= 300 && response.status < 400 && response.headers.has('location')) {
        await response.body?.cancel();
        if (redirects >= maxRedirects) throw sourceError(label, `more than ${maxRedirects} redirects (the last one to ${current.href})`);
        const next = new URL(response.headers.get('location')!, current);
        if (next.protocol !== 'http:' && next.protocol !== 'https:') {
          throw sourceError(label, `redirect to ${next.href}, which is not an http(s) URL`);
        }
        current = next;
        continue;
      }
      if (!response.ok) {
        await response.body?.cancel();
        const where = current.href === label ? '' : ` (after redirects, from ${current.href})`;
        throw sourceError(label, `HTTP ${response.status}${response.statusText ? ` ${response.statusText}` : ''}${where}`);
      }
      return await readBody(response, label, maxBytes, controller);
    }
  } catch (error) {
    throw failure(error);
  } finally {
    clearTimeout(timer);
    options.signal?.removeEventListener('abort', onAbort);
  }
}

async function readBody(response: Response, label: string, maxBytes: number, controller: AbortController): Promise<Uint8Array> {
  const declared = Number(response.headers.get('content-length') ?? Number.NaN);
  if (Number.isFinite(declared) && declared > maxBytes) {
    await response.body?.cancel();
    throw sourceError(label, `the image is ${declared} bytes, more than the limit of ${maxBytes} bytes`);
  }
  const chunks: Uint8Array[] = [];
  let total = 0;
  if (response.body) {
    for await (const chunk of response.body) {
      total += chunk.length;
      if (total > maxBytes) {
        controller.abort();
        throw sourceError(label, `the download exceeded the limit of ${maxBytes} bytes`);
      }
      chunks.push(chunk);
    }
  }
  return new Uint8Array(Buffer.concat(chunks, total));
}

/** Resolves a string or URL source: a URI by its scheme, otherwise a path or bare base64. */
async function resolveString(text: string, options: SourceOptions): Promise<ResolvedSource> {
  const label = describeSource(text);
  const scheme = /^([a-zA-Z][a-zA-Z0-9+.-]*):/.exec(text)?.[1]?.toLowerCase();

  if (scheme === 'data') return { kind: 'data-uri', label, decodePath: 'imdecode', bytes: decodeDataUri(text, label) };
  if (scheme === 'file') {
    let path: string;
    try {
      path = fileURLToPath(text);
    } catch (error) {
      throw sourceError(label, `invalid file: URI: ${(error as Error).message}`, error);
    }
    return { kind: 'file-uri', label, decodePath: 'imread', bytes: await readImageFile(path, label) };
  }
  if (scheme === 'http' || scheme === 'https') {
    let url: URL;
    try {
      url = new URL(text);
    } catch (error) {
      throw sourceError(label, 'invalid URL', error);
    }
    return { kind: 'http', label, decodePath: 'imdecode', bytes: await downloadImage(url, options) };
  }
  if (scheme !== undefined && text.slice(scheme.length + 1).startsWith('//')) {
    throw sourceError(label, `unsupported URI scheme "${scheme}:"; use a file path or a file:, http:, https: or data: URI`);
  }

  try {
    return { kind: 'file', label, decodePath: 'imread', bytes: await readImageFile(text, label) };
  } catch (error) {
    if (!(error instanceof EmbedImageError) || error.code !== 'ERR_FILE_NOT_FOUND') throw error;
    const compact = text.replace(/\s+/g, '');
    // react-native-executorch decodes any string that is no URI as base64. Here that happens
    // only when no such file exists and the bytes start like a known image format.
    const bytes = compact.length >= MIN_BARE_BASE64_LENGTH ? decodeBase64Strict(compact) : undefined;
    if (bytes && hasImageSignature(bytes)) return { kind: 'base64', label: '<base64 image>', decodePath: 'imdecode', bytes };
    throw new EmbedImageError('ERR_FILE_NOT_FOUND', `${label}: file not found (and not base64 of a PNG, JPEG, GIF, WebP, BMP, TIFF, HEIF/AVIF or PNM image)`, { cause: error });
  }
}

/**
 * Resolves an image source to encoded bytes (with how the phone would decode them) or to
 * checked raw pixels. Throws ERR_FILE_NOT_FOUND or ERR_FILE_READ for files,
 * ERR_IMAGE_SOURCE for malformed URIs, failed downloads and bad raw pixels, and
 * ERR_INVALID_ARGUMENT for a value of another type.
 */
export async function resolveImageSource(source: ImageSource, options: SourceOptions = {}): Promise<ResolvedSource> {
  if (typeof source === 'string') {
    if (source.length === 0) throw new EmbedImageError('ERR_INVALID_ARGUMENT', 'the image source is an empty string');
    return resolveString(source, options);
  }
  if (source instanceof URL) return resolveString(source.href, options);
  if (source instanceof Uint8Array) return { kind: 'bytes', label: describeSource(source), decodePath: 'imdecode', bytes: source };
  if (source instanceof ArrayBuffer) return { kind: 'bytes', label: describeSource(source), decodePath: 'imdecode', bytes: new Uint8Array(source) };
  if (isRawPixels(source)) return { kind: 'pixels', label: describeSource(source), decodePath: 'none', pixels: checkRawPixels(source) };
  throw new EmbedImageError('ERR_INVALID_ARGUMENT', `an image source must be a path, URI, base64 string, URL, Uint8Array, ArrayBuffer or raw pixels object, got ${describeSource(source as ImageSource)}`);
}
