/**
 * Downloads one http(s) URL into a file. The body is streamed into a temporary file in the
 * target's folder while its sha256 is computed. The temporary file is renamed over the target
 * only when the body is complete (as long as its Content-Length header states, when the server sends one) and
 * its sha256 matches the expected one, so the target is either absent or whole.
 */
import { createHash, randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { open, rename, unlink } from 'node:fs/promises';
import http, { type ClientRequest, type IncomingMessage } from 'node:http';
import https from 'node:https';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';

import cliProgress from 'cli-progress';

import { EmbedImageError } from './errors.js';

export interface DownloadProgress {
  receivedBytes: number;
  /** The Content-Length of the response, or undefined when the server did not send one. */
  totalBytes: number | undefined;
  /** Average speed since the first byte of the body. */
  bytesPerSecond: number;
}

export interface DownloadOptions {
  /** Milliseconds allowed to connect and receive the response headers, per request. */
  connectTimeoutMs: number;
  /** Milliseconds the connection may stay silent once connected. */
  idleTimeoutMs: number;
  /** Largest body accepted, in bytes. */
  maxBytes: number;
  /** Lowercase hex sha256 the body must have; the file is rejected when it differs. */
  expectedSha256?: string;
  maxRedirects?: number;
  onStart?: (totalBytes: number | undefined) => void;
  onProgress?: (progress: DownloadProgress) => void;
  signal?: AbortSignal;
}

export interface DownloadResult {
  size: number;
  sha256: string;
  /** The URL that served the body, after redirects. */
  finalUrl: string;
}

/** Connection errors that mean the host cannot be reached at all, as when the machine is offline. */
const UNREACHABLE_CODES = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'ENETUNREACH', 'EHOSTUNREACH', 'ENETDOWN', 'EADDRNOTAVAIL']);

const USER_AGENT = 'embed-image (model download)';

/** Formats a byte count with binary units, such as "352.0 MiB". */
export function formatBytes(bytes: number): string {
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  if (bytes < 1024) return `${bytes} B`;
  let value = bytes;
  let unit = 'B';
  for (const next of units) {
    if (value < 1024) break;
    value /= 1024;
    unit = next;
  }
  return `${value.toFixed(1)} ${unit}`;
}

function describeUrl(url: URL): string {
  return `${url.protocol}//${url.host}${url.pathname}`;
}

/** Sends one GET request and resolves with the response once its headers have arrived. */
function sendRequest(url: URL, options: DownloadOptions): Promise<{ request: ClientRequest; response: IncomingMessage }> {
  return new Promise((resolve, reject) => {
    const client = url.protocol === 'https:' ? https : http;
    const request = client.get(url, {
      headers: { 'user-agent': USER_AGENT, 'accept-encoding': 'identity' },
      signal: options.signal,
    });

    const connectTimer = setTimeout(() => {
      request.destroy(new EmbedImageError('ERR_MODEL_DOWNLOAD', `${describeUrl(url)}: timed out after ${options.connectTimeoutMs} ms waiting for the response headers; check the network or raise the connect timeout`));
    }, options.connectTimeoutMs);

    request.setTimeout(options.idleTimeoutMs, () => {
      request.destroy(new EmbedImageError('ERR_MODEL_DOWNLOAD', `${describeUrl(url)}: timed out after ${options.idleTimeoutMs} ms without data; check the network or raise the idle timeout`));
    });

    request.once('response', (response) => {
      clearTimeout(connectTimer);
      resolve({ request, response });
    });
    // Stays attached after the headers arrive, so a later error is never unhandled; the
    // caller adds its own listener for errors during the body.
    request.on('error', (error) => {
      clearTimeout(connectTimer);
      reject(toDownloadError(error, url));
    });
  });
}

/** Maps a socket or HTTP client error to an EmbedImageError; ERR_OFFLINE when the host is unreachable. */
function toDownloadError(error: unknown, url: URL): EmbedImageError {
  if (error instanceof EmbedImageError) return error;
  const code = (error as NodeJS.ErrnoException).code;
  const detail = (error as Error).message ?? String(error);
  if (code === 'ABORT_ERR') return new EmbedImageError('ERR_MODEL_DOWNLOAD', `${describeUrl(url)}: download aborted`, { cause: error });
  if (code !== undefined && UNREACHABLE_CODES.has(code)) {
    return new EmbedImageError('ERR_OFFLINE', `cannot connect to ${url.host} (${detail})`, { cause: error });
  }
  return new EmbedImageError('ERR_MODEL_DOWNLOAD', `${describeUrl(url)}: download failed: ${detail}`, { cause: error });
}

/** Follows up to `maxRedirects` redirects and resolves with the first 200 response. */
async function openBody(start: URL, options: DownloadOptions): Promise<{ request: ClientRequest; response: IncomingMessage; url: URL }> {
  const maxRedirects = options.maxRedirects ?? 10;
  let url = start;
  for (let redirects = 0; ; redirects++) {
    const { request, response } = await sendRequest(url, options);
    const status = response.statusCode ?? 0;
    if (status === 200) return { request, response, url };

    response.resume();
    const location = response.headers.location;
    if (status >= 300 && status < 400 && location !== undefined) {
      if (redirects >= maxRedirects) {
        throw new EmbedImageError('ERR_MODEL_DOWNLOAD', `${describeUrl(start)}: more than ${maxRedirects} redirects`);
      }
      const next = new URL(location, url);
      if (next.protocol !== 'http:' && next.protocol !== 'https:') {
        throw new EmbedImageError('ERR_MODEL_DOWNLOAD', `${describeUrl(url)}: redirected to an unsupported URL scheme ${next.protocol}`);
      }
      if (url.protocol === 'https:' && next.protocol === 'http:') {
        throw new EmbedImageError('ERR_MODEL_DOWNLOAD', `${describeUrl(url)}: rejected a redirect from https to plain http (${describeUrl(next)})`);
      }
      url = next;
      continue;
    }

    const reason = `HTTP ${status}${response.statusMessage ? ` ${response.statusMessage}` : ''}`;
    if (status === 404 || status === 410) {
      throw new EmbedImageError('ERR_MODEL_NOT_FOUND', `${describeUrl(url)}: ${reason}; check the URL or the model name`);
    }
    throw new EmbedImageError('ERR_MODEL_DOWNLOAD', `${describeUrl(url)}: ${reason}`);
  }
}

function parseContentLength(response: IncomingMessage, url: URL): number | undefined {
  const header = response.headers['content-length'];
  if (header === undefined) return undefined;
  if (!/^\d+$/.test(header)) throw new EmbedImageError('ERR_MODEL_DOWNLOAD', `${describeUrl(url)}: invalid Content-Length "${header}"`);
  return Number(header);
}

async function removeQuietly(path: string): Promise<void> {
  await unlink(path).catch((error: NodeJS.ErrnoException) => {
    if (error.code !== 'ENOENT') throw error;
  });
}

/** Returns a temporary file name in the target's folder that no other process or call picks. */
export function temporaryPath(target: string): string {
  return `${target}.${process.pid}.${randomBytes(6).toString('hex')}.part`;
}

/**
 * Downloads `url` to `target`. Rejects with ERR_MODEL_NOT_FOUND for HTTP 404 and 410,
 * ERR_OFFLINE when the host cannot be reached, ERR_MODEL_CHECKSUM when the sha256 differs from
 * `expectedSha256`, and ERR_MODEL_DOWNLOAD for other HTTP statuses, timeouts, a body larger than
 * `maxBytes` or shorter than its Content-Length. No partial file is left behind.
 */
export async function downloadFile(url: URL, target: string, options: DownloadOptions): Promise<DownloadResult> {
  const { request, response, url: finalUrl } = await openBody(url, options);

  const encoding = response.headers['content-encoding'];
  const totalBytes = parseContentLength(response, finalUrl);
  try {
    if (encoding !== undefined && encoding !== 'identity') {
      throw new EmbedImageError('ERR_MODEL_DOWNLOAD', `${describeUrl(finalUrl)}: the server sent a ${encoding}-encoded body although none was requested`);
    }
    if (totalBytes !== undefined && totalBytes > options.maxBytes) {
      throw new EmbedImageError('ERR_MODEL_DOWNLOAD', `${describeUrl(finalUrl)}: the file is ${totalBytes} bytes (${formatBytes(totalBytes)}), more than the maximum of ${options.maxBytes} bytes; raise the maximum size to accept it`);
    }
  } catch (error) {
    request.destroy();
    throw error;
  }

  const hash = createHash('sha256');
  let receivedBytes = 0;
  const startTime = performance.now();
  options.onStart?.(totalBytes);

  const meter = new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      receivedBytes += chunk.length;
      if (receivedBytes > options.maxBytes) {
        callback(new EmbedImageError('ERR_MODEL_DOWNLOAD', `${describeUrl(finalUrl)}: the body exceeds the maximum of ${options.maxBytes} bytes; raise the maximum size to accept it`));
        return;
      }
      if (totalBytes !== undefined && receivedBytes > totalBytes) {
        callback(new EmbedImageError('ERR_MODEL_DOWNLOAD', `${describeUrl(finalUrl)}: the server sent more than its Content-Length of ${totalBytes} bytes`));
        return;
      }
      hash.update(chunk);
      const seconds = (performance.now() - startTime) / 1000;
      options.onProgress?.({ receivedBytes, totalBytes, bytesPerSecond: seconds > 0 ? receivedBytes / seconds : 0 });
      callback(null, chunk);
    },
  });

  // The idle timeout of the request destroys the response too; remember why, because the
  // stream pipeline only reports a generic "aborted".
  let failure: EmbedImageError | undefined;
  request.once('error', (error) => {
    failure ??= toDownloadError(error, finalUrl);
  });

  const partial = temporaryPath(target);
  try {
    try {
      await pipeline(response, meter, createWriteStream(partial, { flags: 'wx' }));
    } catch (error) {
      if (failure) throw failure;
      if (error instanceof EmbedImageError) throw error;
      if (totalBytes !== undefined && receivedBytes < totalBytes) throw truncatedError(finalUrl, receivedBytes, totalBytes);
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'EACCES' || code === 'ENOSPC' || code === 'EROFS' || code === 'EEXIST') {
        throw new EmbedImageError('ERR_FILE_WRITE', `${partial}: cannot write the download: ${(error as Error).message}`, { cause: error });
      }
      throw toDownloadError(error, finalUrl);
    }
    if (totalBytes !== undefined && receivedBytes !== totalBytes) throw truncatedError(finalUrl, receivedBytes, totalBytes);

    const sha256 = hash.digest('hex');
    if (options.expectedSha256 !== undefined && sha256 !== options.expectedSha256) {
      throw new EmbedImageError('ERR_MODEL_CHECKSUM', `${describeUrl(url)}: the downloaded file has sha256 ${sha256}, but ${options.expectedSha256} was expected; the file was not kept`);
    }

    // Flush the data to disk before the rename publishes it, so a crash cannot leave a
    // complete-looking name with missing data.
    const handle = await open(partial, 'r+');
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(partial, target);
    return { size: receivedBytes, sha256, finalUrl: finalUrl.href };
  } finally {
    await removeQuietly(partial);
  }
}

function truncatedError(url: URL, receivedBytes: number, totalBytes: number): EmbedImageError {
  return new EmbedImageError('ERR_MODEL_DOWNLOAD', `${describeUrl(url)}: the download is truncated: the connection closed after ${receivedBytes} of ${totalBytes} bytes; the partial file was not kept, so try again`);
}

/**
 * Creates a progress bar on `stream` for one download: bytes received, total and speed. On a
 * stream that is not a TTY it prints a line every `intervalMs` (and one at the end) in place of
 * redrawing.
 */
export function createProgressBar(stream: NodeJS.WritableStream, label: string, intervalMs = 2000): {
  start: (totalBytes: number | undefined) => void;
  update: (progress: DownloadProgress) => void;
  stop: () => void;
} {
  let bar: cliProgress.SingleBar | undefined;
  const payload = (progress: DownloadProgress) => ({
    label,
    received: formatBytes(progress.receivedBytes),
    size: progress.totalBytes === undefined ? 'unknown size' : formatBytes(progress.totalBytes),
    speed: `${formatBytes(Math.round(progress.bytesPerSecond))}/s`,
  });

  return {
    start(totalBytes) {
      const format = totalBytes === undefined ? '{label} {received} | {speed}' : '{label} [{bar}] {percentage}% | {received} of {size} | {speed} | ETA {eta_formatted}';
      bar = new cliProgress.SingleBar({
        stream,
        format,
        barsize: 30,
        hideCursor: null,
        noTTYOutput: true,
        notTTYSchedule: intervalMs,
        // cli-progress's own SIGINT handler would swallow Ctrl-C and let the download go on.
        gracefulExit: false,
        emptyOnZero: true,
      });
      bar.start(totalBytes ?? 0, 0, payload({ receivedBytes: 0, totalBytes, bytesPerSecond: 0 }));
    },
    update(progress) {
      bar?.update(progress.receivedBytes, payload(progress));
    },
    stop() {
      bar?.stop();
      bar = undefined;
    },
  };
}
