// Image sources: every string form, bytes and raw pixels, and http(s) downloads against a
// server on 127.0.0.1 that this file starts (no other host is contacted).
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { EmbedImageError } from '../src/errors.js';
import { decodeBase64Strict, resolveImageSource, type ResolvedSource } from '../src/sources.js';
import { patternPng } from './embed-images.js';

const png = patternPng(8, 6, 3);
const folder = mkdtempSync(path.join(tmpdir(), 'embed-sources-'));
const pngPath = path.join(folder, 'photo one.png');
writeFileSync(pngPath, png);

function bytesOf(resolved: ResolvedSource): Uint8Array {
  if (resolved.kind === 'pixels') expect.fail(`expected bytes, got raw pixels ${resolved.label}`);
  return resolved.bytes;
}

async function errorOf(promise: Promise<unknown>): Promise<EmbedImageError> {
  try {
    await promise;
  } catch (error) {
    if (error instanceof EmbedImageError) return error;
    throw error;
  }
  return expect.fail('expected the promise to reject');
}

afterAll(() => rmSync(folder, { recursive: true, force: true }));

describe('string sources', () => {
  it('reads a file path', async () => {
    const resolved = await resolveImageSource(pngPath);
    expect(resolved.kind).toBe('file');
    expect(resolved.decodePath).toBe('imread');
    expect(Buffer.from(bytesOf(resolved)).equals(png)).toBe(true);
  });

  it('reads a percent-encoded file URI', async () => {
    const uri = pathToFileURL(pngPath).href;
    expect(uri).toContain('%20');
    const resolved = await resolveImageSource(uri);
    expect(resolved.kind).toBe('file-uri');
    expect(resolved.decodePath).toBe('imread');
    expect(Buffer.from(bytesOf(resolved)).equals(png)).toBe(true);
  });

  it('reads a URL object', async () => {
    const resolved = await resolveImageSource(pathToFileURL(pngPath));
    expect(Buffer.from(bytesOf(resolved)).equals(png)).toBe(true);
  });

  it('decodes a base64 data URI', async () => {
    const resolved = await resolveImageSource(`data:image/png;base64,${png.toString('base64')}`);
    expect(resolved.kind).toBe('data-uri');
    expect(resolved.decodePath).toBe('imdecode');
    expect(Buffer.from(bytesOf(resolved)).equals(png)).toBe(true);
  });

  it('decodes a percent-encoded data URI', async () => {
    const resolved = await resolveImageSource('data:application/octet-stream,%89PNG%0D%0A');
    expect(Array.from(bytesOf(resolved))).toEqual([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a]);
  });

  it('rejects a data URI with bad base64', async () => {
    const error = await errorOf(resolveImageSource('data:image/png;base64,iVBO*w0K'));
    expect(error.code).toBe('ERR_IMAGE_SOURCE');
    expect(error.message).toContain('not valid base64');
  });

  it('rejects a data URI without a comma', async () => {
    const error = await errorOf(resolveImageSource('data:image/png;base64'));
    expect(error.code).toBe('ERR_IMAGE_SOURCE');
  });

  it('decodes bare base64 of an image', async () => {
    const resolved = await resolveImageSource(png.toString('base64'));
    expect(resolved.kind).toBe('base64');
    expect(resolved.decodePath).toBe('imdecode');
    expect(Buffer.from(bytesOf(resolved)).equals(png)).toBe(true);
  });

  it('decodes URL-safe base64 with line breaks', async () => {
    const text = png.toString('base64url').replace(/(.{60})/g, '$1\n');
    const resolved = await resolveImageSource(text);
    expect(Buffer.from(bytesOf(resolved)).equals(png)).toBe(true);
  });

  it('reports a missing file as not found', async () => {
    const error = await errorOf(resolveImageSource(path.join(folder, 'missing.png')));
    expect(error.code).toBe('ERR_FILE_NOT_FOUND');
    expect(error.message).toContain('missing.png');
  });

  it('keeps base64 of non-images a missing file', async () => {
    const error = await errorOf(resolveImageSource('holidayPhotosFromTheSummerOf2024'));
    expect(error.code).toBe('ERR_FILE_NOT_FOUND');
  });

  it('rejects a directory', async () => {
    const error = await errorOf(resolveImageSource(folder));
    expect(error.code).toBe('ERR_FILE_READ');
  });

  it('rejects other URI schemes', async () => {
    const error = await errorOf(resolveImageSource('content://media/external/images/1'));
    expect(error.code).toBe('ERR_IMAGE_SOURCE');
    expect(error.message).toContain('"content:"');
  });

  it('rejects an empty string', async () => {
    const error = await errorOf(resolveImageSource(''));
    expect(error.code).toBe('ERR_INVALID_ARGUMENT');
  });
});

describe('strict base64', () => {
  it.each([
    ['padded', 'aGVsbG8=', 'hello'],
    ['unpadded', 'aGVsbG8', 'hello'],
    ['URL-safe', '-_-_', Buffer.from('fbffbf', 'hex').toString('latin1')],
  ])('decodes %s text', (_, text, expected) => {
    const bytes = decodeBase64Strict(text);
    expect(bytes).toBeDefined();
    expect(Buffer.from(bytes ?? []).toString('latin1')).toBe(expected);
  });

  it.each([
    ['a stray character', 'aGV*bG8='],
    ['an impossible length', 'aGVsb'],
    ['mixed alphabets', 'a+_b'],
    ['padding inside', 'aG=sbG8='],
  ])('rejects %s', (_, text) => {
    expect(decodeBase64Strict(text)).toBeUndefined();
  });
});

describe('binary sources', () => {
  it('passes a Buffer through', async () => {
    const resolved = await resolveImageSource(png);
    expect(resolved.kind).toBe('bytes');
    expect(bytesOf(resolved)).toBe(png);
  });

  it('wraps an ArrayBuffer', async () => {
    const copy = new Uint8Array(png).buffer;
    const resolved = await resolveImageSource(copy);
    expect(Buffer.from(bytesOf(resolved)).equals(png)).toBe(true);
  });

  it('checks raw pixels', async () => {
    const data = new Uint8Array(2 * 3 * 4);
    const resolved = await resolveImageSource({ data, width: 2, height: 3, format: 'rgba' });
    expect(resolved.kind).toBe('pixels');
    expect(resolved.decodePath).toBe('none');
  });

  it('accepts Uint8ClampedArray pixels', async () => {
    const resolved = await resolveImageSource({ data: new Uint8ClampedArray(4) as unknown as Uint8Array, width: 2, height: 2, format: 'gray' });
    expect(resolved.kind).toBe('pixels');
    expect(resolved.kind === 'pixels' ? resolved.pixels.data : undefined).toBeInstanceOf(Uint8Array);
  });

  it('rejects raw pixels of the wrong length', async () => {
    const error = await errorOf(resolveImageSource({ data: new Uint8Array(11), width: 2, height: 2, format: 'rgb' }));
    expect(error.code).toBe('ERR_IMAGE_SOURCE');
    expect(error.message).toContain('need 12 bytes, got 11');
  });

  it('rejects an unknown pixel format', async () => {
    const error = await errorOf(resolveImageSource({ data: new Uint8Array(4), width: 2, height: 2, format: 'cmyk' as 'rgb' }));
    expect(error.code).toBe('ERR_IMAGE_SOURCE');
  });

  it('rejects a zero width', async () => {
    const error = await errorOf(resolveImageSource({ data: new Uint8Array(0), width: 0, height: 2, format: 'rgb' }));
    expect(error.code).toBe('ERR_IMAGE_SOURCE');
  });

  it('rejects a number', async () => {
    const error = await errorOf(resolveImageSource(42 as unknown as string));
    expect(error.code).toBe('ERR_INVALID_ARGUMENT');
  });
});

describe('http sources', () => {
  let server: Server;
  let base = '';
  let closedPort = 0;

  beforeAll(async () => {
    server = createServer((request, response) => {
      const route = request.url ?? '/';
      if (route === '/photo.png') {
        response.writeHead(200, { 'content-type': 'image/png', 'content-length': png.length });
        response.end(png);
      } else if (route === '/moved') {
        response.writeHead(302, { location: '/photo.png' });
        response.end();
      } else if (route === '/loop') {
        response.writeHead(301, { location: '/loop' });
        response.end();
      } else if (route === '/to-ftp') {
        response.writeHead(302, { location: 'ftp://127.0.0.1/photo.png' });
        response.end();
      } else if (route === '/large') {
        response.writeHead(200, { 'content-length': 10_000 });
        response.end(Buffer.alloc(10_000));
      } else if (route === '/large-chunked') {
        response.writeHead(200, { 'content-type': 'image/png' });
        for (let i = 0; i < 10; i++) response.write(Buffer.alloc(1000));
        response.end();
      } else if (route === '/slow') {
        // No response is sent, so the client's time limit ends the request.
      } else if (route === '/slow-body') {
        response.writeHead(200, { 'content-length': 100 });
        response.write(Buffer.alloc(10));
      } else {
        response.writeHead(404, { 'content-type': 'text/plain' });
        response.end('not found');
      }
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    closedPort = (closed.address() as AddressInfo).port;
    await new Promise<void>((resolve) => closed.close(() => resolve()));
  });

  afterAll(async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  it('downloads an image', async () => {
    const resolved = await resolveImageSource(`${base}/photo.png`);
    expect(resolved.kind).toBe('http');
    expect(resolved.decodePath).toBe('imdecode');
    expect(Buffer.from(bytesOf(resolved)).equals(png)).toBe(true);
  });

  it('follows a redirect', async () => {
    const resolved = await resolveImageSource(`${base}/moved`);
    expect(Buffer.from(bytesOf(resolved)).equals(png)).toBe(true);
  });

  it('reports HTTP 404', async () => {
    const error = await errorOf(resolveImageSource(`${base}/nothing.png`));
    expect(error.code).toBe('ERR_IMAGE_SOURCE');
    expect(error.message).toContain('HTTP 404');
  });

  it('bounds redirects', async () => {
    const error = await errorOf(resolveImageSource(`${base}/loop`, { maxRedirects: 3 }));
    expect(error.message).toContain('more than 3 redirects');
  });

  it('rejects a redirect to ftp', async () => {
    const error = await errorOf(resolveImageSource(`${base}/to-ftp`));
    expect(error.message).toContain('not an http(s) URL');
  });

  it('rejects a declared size over the limit', async () => {
    const error = await errorOf(resolveImageSource(`${base}/large`, { maxBytes: 5000 }));
    expect(error.message).toContain('10000 bytes, more than the limit of 5000');
  });

  it('stops a chunked body over the limit', async () => {
    const error = await errorOf(resolveImageSource(`${base}/large-chunked`, { maxBytes: 5000 }));
    expect(error.message).toContain('exceeded the limit of 5000 bytes');
  });

  it('times out on a silent server', async () => {
    const started = Date.now();
    const error = await errorOf(resolveImageSource(`${base}/slow`, { timeoutMs: 300 }));
    expect(error.message).toContain('timed out after 300 ms');
    expect(Date.now() - started).toBeLessThan(5000);
  });

  it('times out on a stalled body', async () => {
    const error = await errorOf(resolveImageSource(`${base}/slow-body`, { timeoutMs: 300 }));
    expect(error.message).toContain('timed out after 300 ms');
  });

  it('reports a refused connection', async () => {
    const error = await errorOf(resolveImageSource(`http://127.0.0.1:${closedPort}/photo.png`));
    expect(error.code).toBe('ERR_IMAGE_SOURCE');
    expect(error.message).toContain('ECONNREFUSED');
  });

  it('stops when the signal aborts', async () => {
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 100);
    const error = await errorOf(resolveImageSource(`${base}/slow`, { signal: controller.signal }));
    expect(error.message).toContain('aborted');
  });
});
