/**
 * Model names, the download cache, and resolution of a model spec (a file, a URL, a model
 * name or a react-native-executorch `{ modelSource }` object) to a local .pte file.
 *
 * Cache layout: one file per URL, named after the URL's last path segment plus 16 hex digits
 * of the sha256 of the URL, and beside it FILE.json with the URL, size, sha256 and download
 * time. A cached copy counts only when both exist and the sizes agree.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, readdir, readFile, rename, stat, unlink, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { basename, extname, isAbsolute, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

import { EmbedImageError } from './errors.js';
import { createProgressBar, downloadFile, formatBytes, temporaryPath, type DownloadProgress } from './model-download.js';

export { formatBytes, type DownloadProgress } from './model-download.js';

/*
 * The constants below mirror react-native-executorch's, in name and `{ modelName, modelSource }`
 * shape, so code written for it ports. Source: packages/react-native-executorch/src/constants/
 * modelUrls.ts and versions.ts at tag v0.9.2 (commit 77d176d193f4), where the URLs are
 * `${URL_PREFIX}-clip-vit-base-patch32/${VERSION_TAG}/xnnpack/...` with VERSION_TAG
 * "resolve/v0.9.0". Their main branch at 81c22d5eea30 (0.10.0 in development) builds the same
 * URLs from PREVIOUS_VERSION_TAG "resolve/v0.9.0". The input size and embedding dimension
 * come from the supported-models table of their docs/docs/03-hooks/02-computer-vision/
 * useImageEmbeddings.md at that commit.
 */

/** CLIP ViT-B/32 image encoder, fp32, XNNPACK delegate (about 352 MB per react-native-executorch's docs). */
export const CLIP_VIT_BASE_PATCH32_IMAGE = {
  modelName: 'clip-vit-base-patch32-image',
  modelSource:
    'https://huggingface.co/software-mansion/react-native-executorch-clip-vit-base-patch32/resolve/v0.9.0/xnnpack/clip_vit_base_patch32_image_xnnpack_fp32.pte',
} as const;

/** CLIP ViT-B/32 image encoder, int8-quantized, XNNPACK delegate (about 96 MB per react-native-executorch's docs). */
export const CLIP_VIT_BASE_PATCH32_IMAGE_QUANTIZED = {
  modelName: 'clip-vit-base-patch32-image-quantized',
  modelSource:
    'https://huggingface.co/software-mansion/react-native-executorch-clip-vit-base-patch32/resolve/v0.9.0/xnnpack/clip_vit_base_patch32_image_xnnpack_int8.pte',
} as const;

export type KnownModelName = 'CLIP_VIT_BASE_PATCH32_IMAGE' | 'CLIP_VIT_BASE_PATCH32_IMAGE_QUANTIZED';

/** A model that can be named on the command line and in `resolveModel`. */
export interface KnownModel {
  name: KnownModelName;
  modelName: string;
  modelSource: string;
  /** Weight precision of the program. */
  precision: 'fp32' | 'int8';
  /** Image size the model expects, in pixels. */
  inputSize: { width: number; height: number };
  /** Length of the embedding vector the model returns. */
  embeddingDimension: number;
}

export const KNOWN_MODELS: Readonly<Record<KnownModelName, KnownModel>> = {
  CLIP_VIT_BASE_PATCH32_IMAGE: {
    name: 'CLIP_VIT_BASE_PATCH32_IMAGE',
    ...CLIP_VIT_BASE_PATCH32_IMAGE,
    precision: 'fp32',
    inputSize: { width: 224, height: 224 },
    embeddingDimension: 512,
  },
  CLIP_VIT_BASE_PATCH32_IMAGE_QUANTIZED: {
    name: 'CLIP_VIT_BASE_PATCH32_IMAGE_QUANTIZED',
    ...CLIP_VIT_BASE_PATCH32_IMAGE_QUANTIZED,
    precision: 'int8',
    inputSize: { width: 224, height: 224 },
    embeddingDimension: 512,
  },
};

export const DEFAULT_MODEL: KnownModelName = 'CLIP_VIT_BASE_PATCH32_IMAGE';

/** The origin of the known models' URLs, which EMBED_IMAGE_MODEL_BASE_URL replaces. */
const KNOWN_MODELS_ORIGIN = 'https://huggingface.co/';

export const DEFAULT_CONNECT_TIMEOUT_MS = 30_000;
export const DEFAULT_IDLE_TIMEOUT_MS = 60_000;
/** 4 GiB, well above the largest known model (about 352 MB). */
export const DEFAULT_MAX_BYTES = 4 * 1024 ** 3;

/** Temporary download files older than this are left over from a crash and are removed. */
const STALE_PART_MS = 24 * 60 * 60 * 1000;

/** A react-native-executorch model object; only `modelSource` is read. */
export interface ModelSourceObject {
  modelSource: string | URL | number;
  modelName?: string;
}

/** A local path, an http(s) or file URL, a known model name, or a `{ modelSource }` object. */
export type ModelSpec = string | URL | ModelSourceObject;

export interface ResolveModelOptions {
  /** Cache folder; default from the environment (see `defaultCacheDir`). */
  cacheDir?: string;
  /** Never download; fail with ERR_OFFLINE when the model is not cached. Default: EMBED_IMAGE_OFFLINE=1. */
  offline?: boolean;
  /** Download again even when a cached copy exists. */
  force?: boolean;
  /** Lowercase or uppercase hex sha256 the model file must have. */
  sha256?: string;
  /** Hash a cached copy again and compare it with the recorded sha256 (costs a full read). */
  verify?: boolean;
  /** Replaces https://huggingface.co/ in the known models' URLs. Default: EMBED_IMAGE_MODEL_BASE_URL. */
  baseUrl?: string;
  /** Milliseconds to connect and receive the response headers. Default 30,000. */
  connectTimeoutMs?: number;
  /** Milliseconds the connection may stay silent during the download. Default 60,000. */
  idleTimeoutMs?: number;
  /** Largest download accepted, in bytes. Default 4 GiB. */
  maxBytes?: number;
  /** Stream for the progress bar: a stream, true for stderr, or false for none. Default: stderr when it is a TTY. */
  progress?: boolean | NodeJS.WritableStream;
  /** Milliseconds between progress lines on a stream that is not a TTY. Default 2,000. */
  progressIntervalMs?: number;
  onProgress?: (progress: DownloadProgress) => void;
  /** Receives one line when a download starts and one when it is saved. */
  log?: (line: string) => void;
  signal?: AbortSignal;
  /** Environment read for the defaults above. Default: process.env. */
  env?: NodeJS.ProcessEnv;
}

export interface ResolvedModel {
  /** Absolute path of the local .pte file. */
  path: string;
  /** The known model's name, or the file name of a URL or path. */
  name: string;
  /** Lowercase hex sha256 of the file. */
  sha256: string;
  /** Size in bytes. */
  size: number;
  /** The URL the model is cached under; absent for a local file. */
  url?: string;
  /** Origin of the file in this call: a local file, the cache, or a new download. */
  source: 'file' | 'cache' | 'download';
}

/** The sidecar FILE.json beside each cached file. */
export interface CacheEntry {
  url: string;
  /** The URL requested when it differs from `url` (a mirror set by baseUrl). */
  downloadUrl?: string;
  size: number;
  sha256: string;
  /** ISO 8601 time the download finished. */
  downloadedAt: string;
  /** Absolute path of the cached file (not stored in the sidecar). */
  path: string;
}

type ResolvedSpec =
  | { kind: 'file'; path: string }
  | { kind: 'url'; url: string; downloadUrl: string; name: string; known?: KnownModel };

/**
 * Returns the cache folder: $EMBED_IMAGE_CACHE, else $XDG_CACHE_HOME/embed-image (when that
 * is an absolute path, as the XDG spec requires), else ~/.cache/embed-image.
 */
export function defaultCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  const explicit = env.EMBED_IMAGE_CACHE;
  if (explicit) return resolve(explicit);
  const xdg = env.XDG_CACHE_HOME;
  if (xdg && isAbsolute(xdg)) return join(xdg, 'embed-image');
  return join(env.HOME || homedir(), '.cache', 'embed-image');
}

/** Returns the path a URL is cached at: a readable name from the URL plus a hash of the whole URL. */
export function cachePathForUrl(url: string, cacheDir: string): string {
  const lastSegment = new URL(url).pathname.split('/').filter(Boolean).pop() ?? '';
  let decoded = lastSegment;
  try {
    decoded = decodeURIComponent(lastSegment);
  } catch {
    // A malformed escape keeps the raw segment, which is sanitized below.
  }
  const safe = decoded.replace(/[^A-Za-z0-9._-]/g, '_').replace(/^\.+/, '');
  const extension = /^\.[A-Za-z0-9]{1,8}$/.test(extname(safe)) ? extname(safe) : '';
  const stem = (extension ? safe.slice(0, -extension.length) : safe).slice(0, 64) || 'model';
  const urlHash = createHash('sha256').update(url).digest('hex').slice(0, 16);
  return join(cacheDir, `${stem}-${urlHash}${extension}`);
}

function sidecarPath(filePath: string): string {
  return `${filePath}.json`;
}

function isKnownModelName(name: string): name is KnownModelName {
  return Object.hasOwn(KNOWN_MODELS, name);
}

/** Returns the URL a known model is downloaded from, with the base URL applied when one is set. */
export function knownModelUrl(model: KnownModel, baseUrl?: string): string {
  if (!baseUrl) return model.modelSource;
  let base: URL;
  try {
    base = new URL(baseUrl);
  } catch {
    throw new EmbedImageError('ERR_INVALID_ARGUMENT', `invalid model base URL "${baseUrl}"; pass an http(s) URL such as http://mirror.example/`);
  }
  if (base.protocol !== 'http:' && base.protocol !== 'https:') {
    throw new EmbedImageError('ERR_INVALID_ARGUMENT', `invalid model base URL "${baseUrl}": only http and https are supported`);
  }
  const prefix = base.href.endsWith('/') ? base.href : `${base.href}/`;
  return prefix + model.modelSource.slice(KNOWN_MODELS_ORIGIN.length);
}

function knownNames(): string {
  return Object.keys(KNOWN_MODELS).join(', ');
}

function fromUrl(url: URL, baseUrl: string | undefined): ResolvedSpec {
  const known = Object.values(KNOWN_MODELS).find((model) => model.modelSource === url.href);
  if (known) return { kind: 'url', url: known.modelSource, downloadUrl: knownModelUrl(known, baseUrl), name: known.name, known };
  const segment = url.pathname.split('/').filter(Boolean).pop();
  return { kind: 'url', url: url.href, downloadUrl: url.href, name: segment ? decodeURIComponent(segment) : url.host };
}

function parseSpec(spec: ModelSpec, baseUrl: string | undefined): ResolvedSpec {
  if (typeof spec === 'object' && !(spec instanceof URL)) {
    const source = (spec as Partial<ModelSourceObject>).modelSource;
    if (typeof source === 'number') {
      throw new EmbedImageError('ERR_INVALID_ARGUMENT', 'modelSource is a number, which is a React Native asset id; pass a file path or an http(s) URL instead');
    }
    if (typeof source !== 'string' && !(source instanceof URL)) {
      throw new EmbedImageError('ERR_INVALID_ARGUMENT', 'the model object has no modelSource; pass { modelSource: URL_OR_PATH }');
    }
    return parseSpec(source, baseUrl);
  }

  if (spec instanceof URL) return parseSpec(spec.href, baseUrl);
  if (spec === '') throw new EmbedImageError('ERR_INVALID_ARGUMENT', `the model is empty; pass a .pte file, an http(s) URL or a model name (${knownNames()})`);

  if (isKnownModelName(spec)) {
    const known = KNOWN_MODELS[spec];
    return { kind: 'url', url: known.modelSource, downloadUrl: knownModelUrl(known, baseUrl), name: known.name, known };
  }
  if (/^https?:\/\//i.test(spec)) {
    let url: URL;
    try {
      url = new URL(spec);
    } catch {
      throw new EmbedImageError('ERR_INVALID_ARGUMENT', `invalid model URL "${spec}"`);
    }
    return fromUrl(url, baseUrl);
  }
  if (/^file:/i.test(spec)) return { kind: 'file', path: fileURLToPath(spec) };
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(spec)) {
    throw new EmbedImageError('ERR_INVALID_ARGUMENT', `unsupported model URL "${spec}": only http, https and file URLs are supported`);
  }
  return { kind: 'file', path: resolve(spec) };
}

/** Computes the sha256 of a file as lowercase hex. */
export async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

function normalizeSha256(value: string | undefined): string | undefined {
  if (value === undefined) return undefined;
  const lower = value.trim().toLowerCase();
  if (!/^[0-9a-f]{64}$/.test(lower)) {
    throw new EmbedImageError('ERR_INVALID_ARGUMENT', `invalid sha256 "${value}": expected 64 hexadecimal digits`);
  }
  return lower;
}

function parseEntry(text: string, path: string): CacheEntry | undefined {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (typeof data !== 'object' || data === null) return undefined;
  const record = data as Record<string, unknown>;
  if (typeof record.url !== 'string' || typeof record.sha256 !== 'string' || typeof record.downloadedAt !== 'string') return undefined;
  if (typeof record.size !== 'number' || !Number.isSafeInteger(record.size)) return undefined;
  const entry: CacheEntry = { url: record.url, size: record.size, sha256: record.sha256, downloadedAt: record.downloadedAt, path };
  if (typeof record.downloadUrl === 'string') entry.downloadUrl = record.downloadUrl;
  return entry;
}

/**
 * Returns the cache entry for `url`, or undefined when it is not cached: the file or its
 * sidecar is missing, the sidecar is unreadable or names another URL, or the sizes differ.
 */
export async function readCacheEntry(url: string, cacheDir: string): Promise<CacheEntry | undefined> {
  const path = cachePathForUrl(url, cacheDir);
  let text: string;
  let size: number;
  try {
    text = await readFile(sidecarPath(path), 'utf8');
    size = (await stat(path)).size;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new EmbedImageError('ERR_FILE_READ', `${path}: cannot read the cached model: ${(error as Error).message}`, { cause: error });
  }
  const entry = parseEntry(text, path);
  if (!entry || entry.url !== url || entry.size !== size) return undefined;
  return entry;
}

/** Lists every valid entry in the cache folder, sorted by URL. */
export async function listCache(cacheDir: string): Promise<CacheEntry[]> {
  let names: string[];
  try {
    names = await readdir(cacheDir);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw new EmbedImageError('ERR_FILE_READ', `${cacheDir}: cannot list the model cache: ${(error as Error).message}`, { cause: error });
  }
  const entries: CacheEntry[] = [];
  for (const name of names.filter((file) => file.endsWith('.json'))) {
    const text = await readFile(join(cacheDir, name), 'utf8').catch(() => undefined);
    const candidate = text === undefined ? undefined : parseEntry(text, join(cacheDir, name.slice(0, -'.json'.length)));
    if (!candidate) continue;
    const entry = await readCacheEntry(candidate.url, cacheDir);
    if (entry && entry.path === candidate.path) entries.push(entry);
  }
  return entries.sort((a, b) => a.url.localeCompare(b.url));
}

/** Writes the sidecar through a temporary file and a rename, so readers never see half of it. */
async function writeSidecar(entry: CacheEntry): Promise<void> {
  const { path, ...stored } = entry;
  const target = sidecarPath(path);
  const partial = temporaryPath(target);
  try {
    await writeFile(partial, `${JSON.stringify(stored, null, 2)}\n`, { flag: 'wx' });
    await rename(partial, target);
  } catch (error) {
    await unlink(partial).catch(() => undefined);
    throw new EmbedImageError('ERR_FILE_WRITE', `${target}: cannot write the cache record: ${(error as Error).message}`, { cause: error });
  }
}

/** Removes temporary download files that a crashed process left more than a day ago. */
async function removeStaleParts(cacheDir: string): Promise<void> {
  const now = Date.now();
  for (const name of await readdir(cacheDir).catch(() => [] as string[])) {
    if (!name.endsWith('.part')) continue;
    const path = join(cacheDir, name);
    const info = await stat(path).catch(() => undefined);
    if (info && now - info.mtimeMs > STALE_PART_MS) await unlink(path).catch(() => undefined);
  }
}

function envFlag(value: string | undefined): boolean {
  return value !== undefined && /^(1|true|yes)$/i.test(value.trim());
}

function offlineMessage(target: Extract<ResolvedSpec, { kind: 'url' }>, cacheDir: string, reason: string): string {
  const pullName = target.known ? target.known.name : target.url;
  return (
    `${target.name} is not in the model cache (${cacheDir}) and ${reason}. ` +
    `Download ${target.downloadUrl} on a machine with network access and pass the file with --model ./model.pte, ` +
    `or run "embed-image models pull ${pullName}" once online`
  );
}

async function resolveFile(path: string, expectedSha256: string | undefined): Promise<ResolvedModel> {
  let info;
  try {
    info = await stat(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') {
      throw new EmbedImageError('ERR_FILE_READ', `${path}: cannot read the model: ${(error as Error).message}`, { cause: error });
    }
    const spec = basename(path);
    const hint = /^[A-Z][A-Z0-9_]*$/.test(spec) ? `unknown model name ${spec}` : `${path}: file not found`;
    throw new EmbedImageError('ERR_MODEL_NOT_FOUND', `${hint}; pass a .pte file, an http(s) URL or a model name (${knownNames()})`, { cause: error });
  }
  if (!info.isFile()) throw new EmbedImageError('ERR_FILE_READ', `${path}: not a regular file; pass an ExecuTorch program (.pte)`);

  const sha256 = await sha256File(path);
  if (expectedSha256 !== undefined && sha256 !== expectedSha256) {
    throw new EmbedImageError('ERR_MODEL_CHECKSUM', `${path}: sha256 is ${sha256}, but ${expectedSha256} was expected`);
  }
  return { path, name: basename(path), sha256, size: info.size, source: 'file' };
}

async function checkCached(entry: CacheEntry, target: Extract<ResolvedSpec, { kind: 'url' }>, expectedSha256: string | undefined, verify: boolean): Promise<ResolvedModel> {
  const pull = `run "embed-image models pull ${target.known ? target.known.name : target.url} --force" to download it again`;
  if (expectedSha256 !== undefined && entry.sha256 !== expectedSha256) {
    throw new EmbedImageError('ERR_MODEL_CHECKSUM', `${entry.path}: the cached copy of ${target.name} has sha256 ${entry.sha256}, but ${expectedSha256} was expected; ${pull}`);
  }
  if (verify) {
    const actual = await sha256File(entry.path);
    if (actual !== entry.sha256) {
      throw new EmbedImageError('ERR_MODEL_CHECKSUM', `${entry.path}: the cached copy of ${target.name} is corrupt: sha256 ${actual}, recorded ${entry.sha256}; ${pull}`);
    }
  }
  return { path: entry.path, name: target.name, sha256: entry.sha256, size: entry.size, url: target.url, source: 'cache' };
}

function progressStream(option: ResolveModelOptions['progress']): NodeJS.WritableStream | undefined {
  if (option === true) return process.stderr;
  if (option === false) return undefined;
  if (option !== undefined) return option;
  return process.stderr.isTTY ? process.stderr : undefined;
}

/** Downloads in progress in this process, by cache path, so concurrent calls share one request. */
const inFlight = new Map<string, Promise<ResolvedModel>>();

async function download(target: Extract<ResolvedSpec, { kind: 'url' }>, cacheDir: string, path: string, expectedSha256: string | undefined, options: ResolveModelOptions): Promise<ResolvedModel> {
  try {
    await mkdir(cacheDir, { recursive: true });
  } catch (error) {
    throw new EmbedImageError('ERR_FILE_WRITE', `${cacheDir}: cannot create the model cache folder: ${(error as Error).message}; set EMBED_IMAGE_CACHE to a writable folder`, { cause: error });
  }
  await removeStaleParts(cacheDir);

  const stream = progressStream(options.progress);
  const bar = stream ? createProgressBar(stream, target.name, options.progressIntervalMs) : undefined;
  options.log?.(`downloading ${target.name} from ${target.downloadUrl}`);

  let result;
  try {
    result = await downloadFile(new URL(target.downloadUrl), path, {
      connectTimeoutMs: options.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS,
      idleTimeoutMs: options.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS,
      maxBytes: options.maxBytes ?? DEFAULT_MAX_BYTES,
      expectedSha256,
      signal: options.signal,
      onStart: (totalBytes) => bar?.start(totalBytes),
      onProgress: (progress) => {
        bar?.update(progress);
        options.onProgress?.(progress);
      },
    });
  } catch (error) {
    if (error instanceof EmbedImageError && error.code === 'ERR_OFFLINE') {
      throw new EmbedImageError('ERR_OFFLINE', offlineMessage(target, cacheDir, error.message), { cause: error });
    }
    throw error;
  } finally {
    bar?.stop();
  }

  const entry: CacheEntry = { url: target.url, size: result.size, sha256: result.sha256, downloadedAt: new Date().toISOString(), path };
  if (target.downloadUrl !== target.url) entry.downloadUrl = target.downloadUrl;
  // NOTE: two processes that download the same URL at once each rename a complete file into
  // place and then write the sidecar, so the last one wins. Both copies are whole, but if the
  // server changed the file between the two downloads, the sidecar may describe the other copy.
  await writeSidecar(entry);
  options.log?.(`saved ${target.name} (${formatBytes(result.size)}, sha256 ${result.sha256}) to ${path}`);
  return { path, name: target.name, sha256: result.sha256, size: result.size, url: target.url, source: 'download' };
}

/**
 * Resolves `spec` to a local .pte file, downloading it into the cache when it is a URL or a
 * known model name that is not cached yet. The default spec is DEFAULT_MODEL.
 *
 * Rejects with an EmbedImageError whose code is one of:
 * - ERR_MODEL_NOT_FOUND: no such file, an unknown model name, or HTTP 404.
 * - ERR_OFFLINE: not cached, and offline or the host is unreachable.
 * - ERR_MODEL_DOWNLOAD: another HTTP error, a timeout, or a truncated or oversized body.
 * - ERR_MODEL_CHECKSUM: the sha256 differs from the expected or recorded one.
 * - ERR_FILE_READ or ERR_FILE_WRITE: the cache folder cannot be read or written.
 * - ERR_INVALID_ARGUMENT: an invalid spec or option.
 */
export async function resolveModel(spec: ModelSpec = DEFAULT_MODEL, options: ResolveModelOptions = {}): Promise<ResolvedModel> {
  const env = options.env ?? process.env;
  const baseUrl = options.baseUrl ?? (env.EMBED_IMAGE_MODEL_BASE_URL || undefined);
  const expectedSha256 = normalizeSha256(options.sha256);
  const target = parseSpec(spec, baseUrl);
  if (target.kind === 'file') return resolveFile(target.path, expectedSha256);

  const cacheDir = resolve(options.cacheDir ?? defaultCacheDir(env));
  const path = cachePathForUrl(target.url, cacheDir);
  if (!options.force) {
    const entry = await readCacheEntry(target.url, cacheDir);
    if (entry) return checkCached(entry, target, expectedSha256, options.verify ?? false);
  }

  const offline = options.offline ?? envFlag(env.EMBED_IMAGE_OFFLINE);
  if (offline) throw new EmbedImageError('ERR_OFFLINE', offlineMessage(target, cacheDir, 'downloads are off (--offline or EMBED_IMAGE_OFFLINE)'));

  const pending = inFlight.get(path);
  if (pending) {
    const shared = await pending;
    if (expectedSha256 !== undefined && shared.sha256 !== expectedSha256) {
      throw new EmbedImageError('ERR_MODEL_CHECKSUM', `${shared.path}: ${target.name} has sha256 ${shared.sha256}, but ${expectedSha256} was expected`);
    }
    return shared;
  }
  const started = download(target, cacheDir, path, expectedSha256, options);
  inFlight.set(path, started);
  try {
    return await started;
  } finally {
    inFlight.delete(path);
  }
}
