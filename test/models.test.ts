/**
 * Model resolution, the download cache and `embed-image models`. Every download goes to an
 * HTTP server that this file starts on 127.0.0.1, and EMBED_IMAGE_MODEL_BASE_URL points the
 * known models at it (or at a closed local port), so no test reaches another host.
 */
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, truncate, utimes, writeFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';

import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';

import { EmbedImageError } from '../src/errors.js';
import {
  CLIP_VIT_BASE_PATCH32_IMAGE,
  CLIP_VIT_BASE_PATCH32_IMAGE_QUANTIZED,
  DEFAULT_MODEL,
  KNOWN_MODELS,
  cachePathForUrl,
  defaultCacheDir,
  listCache,
  readCacheEntry,
  resolveModel,
  type DownloadProgress,
} from '../src/models.js';
import { checkDistIsFresh } from './cli-process.js';
import { repoRoot } from './helpers.js';

const BODY = randomBytes(256 * 1024 + 17);
const BODY_SHA256 = createHash('sha256').update(BODY).digest('hex');
const HF_PATH = new URL(CLIP_VIT_BASE_PATCH32_IMAGE.modelSource).pathname;

let server: Server;
let base: string;
/** Requests per path since the last reset. */
const requests = new Map<string, number>();
/** Responses of /gated.pte waiting until two requests are open. */
let gated: ServerResponse[] = [];

function count(path: string): number {
  return requests.get(path) ?? 0;
}

function sendSlowly(response: ServerResponse, chunks: number, delayMs: number): void {
  response.writeHead(200, { 'content-length': BODY.length });
  const size = Math.ceil(BODY.length / chunks);
  let offset = 0;
  const timer = setInterval(() => {
    const end = Math.min(offset + size, BODY.length);
    response.write(BODY.subarray(offset, end));
    offset = end;
    if (offset >= BODY.length) {
      clearInterval(timer);
      response.end();
    }
  }, delayMs);
  response.on('close', () => clearInterval(timer));
}

function handle(request: IncomingMessage, response: ServerResponse): void {
  const path = new URL(request.url ?? '/', 'http://127.0.0.1').pathname;
  requests.set(path, count(path) + 1);

  switch (path) {
    case '/model.pte':
    case '/other/model.pte':
    case HF_PATH:
      response.writeHead(200, { 'content-length': BODY.length });
      response.end(BODY);
      return;
    case '/chunked.pte':
      response.writeHead(200, { 'transfer-encoding': 'chunked' });
      response.end(BODY);
      return;
    case '/slow.pte':
      sendSlowly(response, 8, 40);
      return;
    case '/gated.pte':
      gated.push(response);
      if (gated.length >= 2) {
        for (const waiting of gated) sendSlowly(waiting, 4, 20);
        gated = [];
      }
      return;
    case '/redirect.pte':
      response.writeHead(302, { location: '/model.pte' });
      response.end();
      return;
    case '/truncated.pte':
      response.writeHead(200, { 'content-length': BODY.length });
      response.write(BODY.subarray(0, 1000), () => response.destroy());
      return;
    case '/stall.pte':
      response.writeHead(200, { 'content-length': BODY.length });
      response.write(BODY.subarray(0, 1000));
      return;
    case '/hang.pte':
      return;
    case '/huge.pte':
      response.writeHead(200, { 'content-length': 10 * 1024 * 1024 * 1024 });
      response.end();
      return;
    case '/error.pte':
      response.writeHead(503);
      response.end('unavailable');
      return;
    default:
      response.writeHead(404);
      response.end('not found');
  }
}

/** Returns a loopback port with nothing listening on it, by binding it once and closing it. */
async function closedPort(): Promise<number> {
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const { port } = probe.address() as AddressInfo;
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  return port;
}

async function failure(promise: Promise<unknown>): Promise<EmbedImageError> {
  try {
    await promise;
  } catch (error) {
    if (error instanceof EmbedImageError) return error;
    throw error;
  }
  throw new Error('expected the promise to reject');
}

const savedEnv = { ...process.env };
let cacheDir: string;

beforeAll(async () => {
  server = createServer(handle);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  // Known model names download from the local server in every test that does not override it.
  process.env.EMBED_IMAGE_MODEL_BASE_URL = `${base}/`;
  process.env.EMBED_IMAGE_CACHE = await mkdtemp(join(tmpdir(), 'ei-models-default-'));
  delete process.env.EMBED_IMAGE_OFFLINE;
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  await rm(process.env.EMBED_IMAGE_CACHE!, { recursive: true, force: true });
  process.env = savedEnv;
});

beforeEach(async () => {
  requests.clear();
  cacheDir = await mkdtemp(join(tmpdir(), 'ei-models-'));
});

afterEach(async () => {
  await rm(cacheDir, { recursive: true, force: true });
});

describe('known models', () => {
  it('URLs match react-native-executorch', () => {
    const prefix = 'https://huggingface.co/software-mansion/react-native-executorch-clip-vit-base-patch32/resolve/v0.9.0/xnnpack/';
    expect(CLIP_VIT_BASE_PATCH32_IMAGE.modelSource).toBe(`${prefix}clip_vit_base_patch32_image_xnnpack_fp32.pte`);
    expect(CLIP_VIT_BASE_PATCH32_IMAGE_QUANTIZED.modelSource).toBe(`${prefix}clip_vit_base_patch32_image_xnnpack_int8.pte`);
  });

  it('metadata gives input size and dimension', () => {
    for (const model of Object.values(KNOWN_MODELS)) {
      expect(model.inputSize).toEqual({ width: 224, height: 224 });
      expect(model.embeddingDimension).toBe(512);
    }
  });

  it('default is the fp32 CLIP image model', () => {
    expect(DEFAULT_MODEL).toBe('CLIP_VIT_BASE_PATCH32_IMAGE');
  });
});

describe('cache location', () => {
  it('EMBED_IMAGE_CACHE wins', () => {
    expect(defaultCacheDir({ EMBED_IMAGE_CACHE: '/a/cache', XDG_CACHE_HOME: '/x', HOME: '/h' })).toBe('/a/cache');
  });

  it('XDG_CACHE_HOME comes next', () => {
    expect(defaultCacheDir({ XDG_CACHE_HOME: '/x', HOME: '/h' })).toBe('/x/embed-image');
  });

  it('relative XDG_CACHE_HOME is ignored', () => {
    expect(defaultCacheDir({ XDG_CACHE_HOME: 'x', HOME: '/h' })).toBe('/h/.cache/embed-image');
  });

  it('falls back to ~/.cache', () => {
    expect(defaultCacheDir({ HOME: '/h' })).toBe('/h/.cache/embed-image');
  });

  it('empty EMBED_IMAGE_CACHE is ignored', () => {
    expect(defaultCacheDir({ EMBED_IMAGE_CACHE: '', HOME: '/h' })).toBe('/h/.cache/embed-image');
  });

  it('resolveModel reads env for the folder', async () => {
    const model = await resolveModel(`${base}/model.pte`, { env: { EMBED_IMAGE_CACHE: cacheDir }, progress: false });
    expect(model.path.startsWith(`${cacheDir}/`)).toBe(true);
  });

  it('file name is readable and hashed', () => {
    const path = cachePathForUrl('https://example.invalid/dir/My%20Model.pte?x=1', '/c');
    expect(path).toMatch(/^\/c\/My_Model-[0-9a-f]{16}\.pte$/);
  });

  it('same file name, other URL, other path', () => {
    expect(cachePathForUrl(`${base}/model.pte`, '/c')).not.toBe(cachePathForUrl(`${base}/other/model.pte`, '/c'));
  });
});

describe('resolveModel downloads', () => {
  it('saves the file and its record', async () => {
    const model = await resolveModel(`${base}/model.pte`, { cacheDir, progress: false });
    expect(model.source).toBe('download');
    expect(model.sha256).toBe(BODY_SHA256);
    expect(model.size).toBe(BODY.length);
    expect(model.url).toBe(`${base}/model.pte`);
    expect(model.name).toBe('model.pte');
    expect((await readFile(model.path)).equals(BODY)).toBe(true);

    const record = JSON.parse(await readFile(`${model.path}.json`, 'utf8')) as Record<string, unknown>;
    expect(record.url).toBe(`${base}/model.pte`);
    expect(record.size).toBe(BODY.length);
    expect(record.sha256).toBe(BODY_SHA256);
    expect(Number.isNaN(Date.parse(record.downloadedAt as string))).toBe(false);
  });

  it('reuses the cache without a request', async () => {
    const first = await resolveModel(`${base}/model.pte`, { cacheDir, progress: false });
    const second = await resolveModel(`${base}/model.pte`, { cacheDir, progress: false });
    expect(second.source).toBe('cache');
    expect(second.path).toBe(first.path);
    expect(second.sha256).toBe(BODY_SHA256);
    expect(count('/model.pte')).toBe(1);
  });

  it('force downloads again', async () => {
    await resolveModel(`${base}/model.pte`, { cacheDir, progress: false });
    const again = await resolveModel(`${base}/model.pte`, { cacheDir, progress: false, force: true });
    expect(again.source).toBe('download');
    expect(count('/model.pte')).toBe(2);
  });

  it('known name uses the base URL', async () => {
    const model = await resolveModel('CLIP_VIT_BASE_PATCH32_IMAGE', { cacheDir, progress: false });
    expect(model.name).toBe('CLIP_VIT_BASE_PATCH32_IMAGE');
    expect(model.url).toBe(CLIP_VIT_BASE_PATCH32_IMAGE.modelSource);
    expect(model.path).toBe(cachePathForUrl(CLIP_VIT_BASE_PATCH32_IMAGE.modelSource, cacheDir));
    expect(count(HF_PATH)).toBe(1);

    const entry = await readCacheEntry(CLIP_VIT_BASE_PATCH32_IMAGE.modelSource, cacheDir);
    expect(entry?.downloadUrl).toBe(`${base}${HF_PATH}`);
  });

  it('default spec is the default model', async () => {
    const model = await resolveModel(undefined, { cacheDir, progress: false });
    expect(model.name).toBe(DEFAULT_MODEL);
  });

  it('modelSource object shares the cache', async () => {
    const byName = await resolveModel('CLIP_VIT_BASE_PATCH32_IMAGE', { cacheDir, progress: false });
    const byObject = await resolveModel(CLIP_VIT_BASE_PATCH32_IMAGE, { cacheDir, progress: false });
    expect(byObject.source).toBe('cache');
    expect(byObject.path).toBe(byName.path);
    expect(byObject.name).toBe('CLIP_VIT_BASE_PATCH32_IMAGE');
  });

  it('baseUrl option overrides env', async () => {
    const port = await closedPort();
    const error = await failure(resolveModel('CLIP_VIT_BASE_PATCH32_IMAGE', { cacheDir, progress: false, baseUrl: `http://127.0.0.1:${port}/` }));
    expect(error.code).toBe('ERR_OFFLINE');
    expect(count(HF_PATH)).toBe(0);
  });

  it('follows redirects', async () => {
    const model = await resolveModel(`${base}/redirect.pte`, { cacheDir, progress: false });
    expect(model.sha256).toBe(BODY_SHA256);
    expect(count('/model.pte')).toBe(1);
  });

  it('accepts a body without length', async () => {
    const model = await resolveModel(`${base}/chunked.pte`, { cacheDir, progress: false });
    expect(model.size).toBe(BODY.length);
  });

  it('draws progress with bytes and speed', async () => {
    const stream = new PassThrough();
    let text = '';
    stream.on('data', (chunk: Buffer) => (text += chunk.toString()));
    const updates: DownloadProgress[] = [];
    await resolveModel(`${base}/slow.pte`, { cacheDir, progress: stream, progressIntervalMs: 20, onProgress: (progress) => updates.push(progress) });

    expect(text).toMatch(/slow\.pte \[/);
    expect(text).toMatch(/100%/);
    expect(text).toMatch(/256\.0 KiB of 256\.0 KiB/);
    expect(text).toMatch(/\d+(\.\d)? [KMG]?i?B\/s/);
    expect(updates.length).toBeGreaterThan(1);
    expect(updates.at(-1)?.receivedBytes).toBe(BODY.length);
    expect(updates.at(-1)?.totalBytes).toBe(BODY.length);
  });

  it('logs start and save lines', async () => {
    const logs: string[] = [];
    await resolveModel(`${base}/model.pte`, { cacheDir, log: (line) => logs.push(line) });
    expect(logs[0]).toMatch(/^downloading model\.pte from http:\/\/127\.0\.0\.1/);
    expect(logs[1]).toMatch(/^saved model\.pte \(256\.0 KiB, sha256 [0-9a-f]{64}\)/);
  });

  it('removes stale temporary files', async () => {
    const stale = join(cacheDir, 'old.pte.1.aa.part');
    const fresh = join(cacheDir, 'new.pte.2.bb.part');
    await writeFile(stale, 'x');
    await writeFile(fresh, 'x');
    const twoDaysAgo = new Date(Date.now() - 2 * 24 * 3600 * 1000);
    await utimes(stale, twoDaysAgo, twoDaysAgo);
    await resolveModel(`${base}/model.pte`, { cacheDir, progress: false });
    const names = await readdir(cacheDir);
    expect(names).not.toContain('old.pte.1.aa.part');
    expect(names).toContain('new.pte.2.bb.part');
  });
});

describe('resolveModel failures', () => {
  it('truncated download is not kept', async () => {
    const error = await failure(resolveModel(`${base}/truncated.pte`, { cacheDir, progress: false }));
    expect(error.code).toBe('ERR_MODEL_DOWNLOAD');
    expect(error.message).toMatch(/truncated: the connection closed after \d+ of 262161 bytes/);
    expect(await readdir(cacheDir)).toEqual([]);
  });

  it('wrong sha256 is rejected', async () => {
    const wrong = 'ab'.repeat(32);
    const error = await failure(resolveModel(`${base}/model.pte`, { cacheDir, progress: false, sha256: wrong }));
    expect(error.code).toBe('ERR_MODEL_CHECKSUM');
    expect(error.message).toContain(BODY_SHA256);
    expect(error.message).toContain(wrong);
    expect(await readdir(cacheDir)).toEqual([]);
  });

  it('right sha256 in capitals passes', async () => {
    const model = await resolveModel(`${base}/model.pte`, { cacheDir, progress: false, sha256: BODY_SHA256.toUpperCase() });
    expect(model.sha256).toBe(BODY_SHA256);
  });

  it('malformed sha256 is invalid', async () => {
    const error = await failure(resolveModel(`${base}/model.pte`, { cacheDir, progress: false, sha256: 'abc' }));
    expect(error.code).toBe('ERR_INVALID_ARGUMENT');
  });

  it('cached copy must match sha256', async () => {
    await resolveModel(`${base}/model.pte`, { cacheDir, progress: false });
    const error = await failure(resolveModel(`${base}/model.pte`, { cacheDir, progress: false, sha256: 'cd'.repeat(32) }));
    expect(error.code).toBe('ERR_MODEL_CHECKSUM');
    expect(error.message).toMatch(/--force/);
    expect(count('/model.pte')).toBe(1);
  });

  it('verify finds a corrupt cached copy', async () => {
    const model = await resolveModel(`${base}/model.pte`, { cacheDir, progress: false });
    const corrupt = Buffer.from(BODY);
    corrupt[100] = corrupt[100]! ^ 0xff;
    await writeFile(model.path, corrupt);

    const unchecked = await resolveModel(`${base}/model.pte`, { cacheDir, progress: false });
    expect(unchecked.source).toBe('cache');
    const error = await failure(resolveModel(`${base}/model.pte`, { cacheDir, progress: false, verify: true }));
    expect(error.code).toBe('ERR_MODEL_CHECKSUM');
    expect(error.message).toMatch(/corrupt/);
  });

  it('size mismatch downloads again', async () => {
    const model = await resolveModel(`${base}/model.pte`, { cacheDir, progress: false });
    await truncate(model.path, 10);
    const again = await resolveModel(`${base}/model.pte`, { cacheDir, progress: false });
    expect(again.source).toBe('download');
    expect((await readFile(again.path)).equals(BODY)).toBe(true);
  });

  it('connect timeout rejects', async () => {
    const error = await failure(resolveModel(`${base}/hang.pte`, { cacheDir, progress: false, connectTimeoutMs: 200, idleTimeoutMs: 10_000 }));
    expect(error.code).toBe('ERR_MODEL_DOWNLOAD');
    expect(error.message).toMatch(/timed out after 200 ms waiting for the response headers/);
  });

  it('idle timeout keeps no file', async () => {
    const error = await failure(resolveModel(`${base}/stall.pte`, { cacheDir, progress: false, idleTimeoutMs: 200 }));
    expect(error.code).toBe('ERR_MODEL_DOWNLOAD');
    expect(error.message).toMatch(/timed out after 200 ms without data/);
    expect(await readdir(cacheDir)).toEqual([]);
  });

  it('404 is model not found', async () => {
    const error = await failure(resolveModel(`${base}/absent.pte`, { cacheDir, progress: false }));
    expect(error.code).toBe('ERR_MODEL_NOT_FOUND');
    expect(error.message).toMatch(/absent\.pte: HTTP 404 Not Found/);
  });

  it('503 is a download error', async () => {
    const error = await failure(resolveModel(`${base}/error.pte`, { cacheDir, progress: false }));
    expect(error.code).toBe('ERR_MODEL_DOWNLOAD');
    expect(error.message).toMatch(/HTTP 503/);
  });

  it('declared size over the maximum', async () => {
    const error = await failure(resolveModel(`${base}/huge.pte`, { cacheDir, progress: false }));
    expect(error.code).toBe('ERR_MODEL_DOWNLOAD');
    expect(error.message).toMatch(/10737418240 bytes .* more than the maximum of 4294967296 bytes/);
  });

  it('streamed size over the maximum', async () => {
    const error = await failure(resolveModel(`${base}/chunked.pte`, { cacheDir, progress: false, maxBytes: 1000 }));
    expect(error.code).toBe('ERR_MODEL_DOWNLOAD');
    expect(error.message).toMatch(/exceeds the maximum of 1000 bytes/);
    expect(await readdir(cacheDir)).toEqual([]);
  });

  it('unreachable host is offline', async () => {
    const url = `http://127.0.0.1:${await closedPort()}/model.pte`;
    const error = await failure(resolveModel(url, { cacheDir, progress: false }));
    expect(error.code).toBe('ERR_OFFLINE');
    expect(error.message).toMatch(/--model \.\/model\.pte/);
    expect(error.message).toContain(`Download ${url}`);
    expect(error.message).toMatch(/ECONNREFUSED/);
  });

  it('offline error names models pull', async () => {
    const error = await failure(resolveModel('CLIP_VIT_BASE_PATCH32_IMAGE', { cacheDir, progress: false, offline: true }));
    expect(error.code).toBe('ERR_OFFLINE');
    expect(error.message).toMatch(/--model \.\/model\.pte/);
    expect(error.message).toMatch(/embed-image models pull CLIP_VIT_BASE_PATCH32_IMAGE/);
    expect(count(HF_PATH)).toBe(0);
  });

  it('EMBED_IMAGE_OFFLINE=1 is offline', async () => {
    const error = await failure(resolveModel(`${base}/model.pte`, { cacheDir, progress: false, env: { EMBED_IMAGE_OFFLINE: '1' } }));
    expect(error.code).toBe('ERR_OFFLINE');
    expect(count('/model.pte')).toBe(0);
  });

  it('offline uses the cache', async () => {
    await resolveModel(`${base}/model.pte`, { cacheDir, progress: false });
    const model = await resolveModel(`${base}/model.pte`, { cacheDir, progress: false, offline: true });
    expect(model.source).toBe('cache');
  });
});

describe('resolveModel specs', () => {
  it('local file is hashed in place', async () => {
    const file = join(cacheDir, 'local.pte');
    await writeFile(file, BODY);
    const model = await resolveModel(file, { progress: false });
    expect(model).toEqual({ path: file, name: 'local.pte', sha256: BODY_SHA256, size: BODY.length, source: 'file' });
  });

  it('file URL is a local file', async () => {
    const file = join(cacheDir, 'local.pte');
    await writeFile(file, BODY);
    const model = await resolveModel(`file://${file}`, { progress: false });
    expect(model.path).toBe(file);
  });

  it('missing file is not found', async () => {
    const error = await failure(resolveModel(join(cacheDir, 'absent.pte')));
    expect(error.code).toBe('ERR_MODEL_NOT_FOUND');
    expect(error.message).toMatch(/absent\.pte: file not found/);
  });

  it('unknown name lists known names', async () => {
    const error = await failure(resolveModel('CLIP_VIT_HUGE'));
    expect(error.code).toBe('ERR_MODEL_NOT_FOUND');
    expect(error.message).toMatch(/unknown model name CLIP_VIT_HUGE/);
    expect(error.message).toContain('CLIP_VIT_BASE_PATCH32_IMAGE_QUANTIZED');
  });

  it('numeric modelSource is invalid', async () => {
    const error = await failure(resolveModel({ modelSource: 12 }));
    expect(error.code).toBe('ERR_INVALID_ARGUMENT');
  });

  it('ftp URL is invalid', async () => {
    const error = await failure(resolveModel('ftp://127.0.0.1/model.pte'));
    expect(error.code).toBe('ERR_INVALID_ARGUMENT');
  });

  it('bad base URL is invalid', async () => {
    const error = await failure(resolveModel('CLIP_VIT_BASE_PATCH32_IMAGE', { cacheDir, baseUrl: 'not a url' }));
    expect(error.code).toBe('ERR_INVALID_ARGUMENT');
  });
});

describe('concurrent downloads', () => {
  it('one process shares one request', async () => {
    const [a, b] = await Promise.all([
      resolveModel(`${base}/slow.pte`, { cacheDir, progress: false }),
      resolveModel(`${base}/slow.pte`, { cacheDir, progress: false }),
    ]);
    expect(a.path).toBe(b.path);
    expect(count('/slow.pte')).toBe(1);
    expect((await readFile(a.path)).equals(BODY)).toBe(true);
  });

  it('cache lists each URL once', async () => {
    await Promise.all([resolveModel(`${base}/slow.pte`, { cacheDir, progress: false }), resolveModel(`${base}/model.pte`, { cacheDir, progress: false })]);
    const entries = await listCache(cacheDir);
    expect(entries.map((entry) => entry.url)).toEqual([`${base}/model.pte`, `${base}/slow.pte`]);
  });
});

interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `node bin/embed-image.js` with the test cache and the local server as the model base URL. */
function cli(args: string[], env: NodeJS.ProcessEnv = {}): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [join(repoRoot, 'bin', 'embed-image.js'), ...args], {
      cwd: cacheDir,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, EMBED_IMAGE_CACHE: cacheDir, EMBED_IMAGE_MODEL_BASE_URL: `${base}/`, ...env },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    child.on('error', reject);
    child.on('close', (status) => resolve({ status, stdout, stderr }));
  });
}

describe('embed-image models', () => {
  beforeAll(() => {
    checkDistIsFresh();
  });

  it('list shows names, URLs, not cached', async () => {
    const result = await cli(['models', 'list']);
    expect(result.status).toBe(0);
    expect(result.stdout).toContain(`cache: ${cacheDir}`);
    expect(result.stdout).toContain('CLIP_VIT_BASE_PATCH32_IMAGE (default)');
    expect(result.stdout).toContain(`url: ${CLIP_VIT_BASE_PATCH32_IMAGE_QUANTIZED.modelSource}`);
    expect(result.stdout).toContain(`download from: ${base}${HF_PATH}`);
    expect(result.stdout).toMatch(/cached: no/);
    expect(count(HF_PATH)).toBe(0);
  });

  it('pull downloads, then list shows it', async () => {
    const pull = await cli(['models', 'pull', 'CLIP_VIT_BASE_PATCH32_IMAGE']);
    expect(pull.status).toBe(0);
    expect(pull.stdout).toBe(`${cachePathForUrl(CLIP_VIT_BASE_PATCH32_IMAGE.modelSource, cacheDir)}\n`);
    expect(pull.stderr).toMatch(/saved CLIP_VIT_BASE_PATCH32_IMAGE/);

    const list = await cli(['models', 'list', '--json']);
    const report = JSON.parse(list.stdout) as { models: { name: string; cached: { size: number; sha256: string } | null }[] };
    const clip = report.models.find((model) => model.name === 'CLIP_VIT_BASE_PATCH32_IMAGE');
    expect(clip?.cached?.size).toBe(BODY.length);
    expect(clip?.cached?.sha256).toBe(BODY_SHA256);
    expect(count(HF_PATH)).toBe(1);
  });

  it('pull again verifies, no request', async () => {
    await cli(['models', 'pull', `${base}/model.pte`]);
    const again = await cli(['models', 'pull', `${base}/model.pte`]);
    expect(again.status).toBe(0);
    expect(again.stderr).toMatch(/already cached/);
    expect(count('/model.pte')).toBe(1);
  });

  it('pull --progress draws a bar', async () => {
    const result = await cli(['models', 'pull', `${base}/slow.pte`, '--progress']);
    expect(result.status).toBe(0);
    expect(result.stderr).toMatch(/slow\.pte \[.*\] 100% \| 256\.0 KiB of 256\.0 KiB/);
  });

  it('path --offline prints cached path', async () => {
    const pull = await cli(['models', 'pull', `${base}/model.pte`]);
    const path = await cli(['models', 'path', `${base}/model.pte`, '--offline']);
    expect(path.status).toBe(0);
    expect(path.stdout).toBe(pull.stdout);
    expect(count('/model.pte')).toBe(1);
  });

  it('path --offline without cache fails', async () => {
    const result = await cli(['models', 'path', 'CLIP_VIT_BASE_PATCH32_IMAGE', '--offline']);
    expect(result.status).toBe(1);
    expect(result.stderr).toMatch(/^embed-image: .*--model \.\/model\.pte.*\(error code ERR_OFFLINE\)\n$/);
    expect(result.stdout).toBe('');
  });

  it('path of a local file', async () => {
    await writeFile(join(cacheDir, 'mine.pte'), BODY);
    const result = await cli(['models', 'path', 'mine.pte']);
    expect(result.status).toBe(0);
    expect(result.stdout).toBe(`${join(cacheDir, 'mine.pte')}\n`);
  });

  it('pull 404 exits 1', async () => {
    const result = await cli(['models', 'pull', `${base}/absent.pte`]);
    expect(result.status).toBe(1);
    expect(result.stderr).toMatch(/HTTP 404 .*\(error code ERR_MODEL_NOT_FOUND\)\n$/);
  });

  it('pull --sha256 mismatch exits 1', async () => {
    const result = await cli(['models', 'pull', `${base}/model.pte`, '--sha256', '00'.repeat(32)]);
    expect(result.status).toBe(1);
    expect(result.stderr).toMatch(/ERR_MODEL_CHECKSUM/);
  });

  it('unknown option exits 2', async () => {
    const result = await cli(['models', 'pull', '--bogus']);
    expect(result.status).toBe(2);
    expect(result.stderr).toMatch(/embed-image models pull --help/);
  });

  it('bad --idle-timeout exits 2', async () => {
    const result = await cli(['models', 'path', '--idle-timeout', '-1']);
    expect(result.status).toBe(2);
  });

  it('help names units and defaults', async () => {
    const result = await cli(['models', 'pull', '--help']);
    expect(result.status).toBe(0);
    expect(result.stdout).toMatch(/--connect-timeout <seconds>[\s\S]*\(default: 30\)/);
    expect(result.stdout).toMatch(/--max-size <MiB>[\s\S]*\(default: 4096\)/);
  });

  it('XDG_CACHE_HOME sets the folder', async () => {
    const result = await cli(['models', 'list'], { EMBED_IMAGE_CACHE: '', XDG_CACHE_HOME: cacheDir });
    expect(result.stdout).toContain(`cache: ${join(cacheDir, 'embed-image')}`);
  });

  it('two processes pull one URL', async () => {
    const [a, b] = await Promise.all([cli(['models', 'pull', `${base}/gated.pte`]), cli(['models', 'pull', `${base}/gated.pte`])]);
    expect(a.status).toBe(0);
    expect(b.status).toBe(0);
    expect(a.stdout).toBe(b.stdout);
    expect(count('/gated.pte')).toBe(2);

    const path = a.stdout.trim();
    expect((await readFile(path)).equals(BODY)).toBe(true);
    expect((await readdir(cacheDir)).sort()).toEqual([`${path.slice(cacheDir.length + 1)}`, `${path.slice(cacheDir.length + 1)}.json`]);
    expect((await readCacheEntry(`${base}/gated.pte`, cacheDir))?.sha256).toBe(BODY_SHA256);
  });
});
