// ImageEmbeddings.delete() and a second load() while forward() and embedMany() calls are in
// flight: each call keeps the model it started with to the end, and the program is released
// after its last call. Embeddings are checked against the float64 CLIP forward pass in
// test/tooling/clip-reference.ts, so a result from the wrong model cannot pass.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { ImageEmbeddings, preprocessImage, type EmbedManyResult } from '../src/embeddings.js';
import { patternPng } from './embed-images.js';
import { expectErrorCode, maxAbsDifference, repoRoot } from './helpers.js';
import { buildClipProgram } from './tooling/clip-program.js';
import { clipReferenceEmbedding } from './tooling/clip-reference.js';
import { parseClipConfig, seededClipWeights, type ClipVisionConfig } from './tooling/clip-weights.js';

const tinyPath = path.join(repoRoot, 'fixtures', 'models', 'clip-tiny.pte');
const tinyConfig = parseClipConfig(JSON.parse(readFileSync(path.join(repoRoot, 'fixtures', 'models', 'clip-tiny.config.json'), 'utf8')));
const tinyWeights = seededClipWeights(tinyConfig, 1);
const folder = mkdtempSync(path.join(tmpdir(), 'embed-lifecycle-'));
// A second model with another input size (96 x 96) and the same 32 dimensions as clip-tiny.
const otherConfig: ClipVisionConfig = { ...tinyConfig, image_size: 96, patch_size: 32, num_hidden_layers: 1 };
const otherPath = path.join(folder, 'clip-96.pte');
writeFileSync(otherPath, buildClipProgram(otherConfig, seededClipWeights(otherConfig, 4)).bytes);
const sources = Array.from({ length: 24 }, (_, i) => patternPng(120 + i, 90, i));

// Serves the 96 x 96 model on 127.0.0.1 after half a second, so that a load() of it finishes
// after a load() of clip-tiny made later.
let server: Server;
let slowUrl = '';
beforeAll(async () => {
  const bytes = readFileSync(otherPath);
  server = createServer((_request, response) => {
    setTimeout(() => {
      response.writeHead(200, { 'content-length': bytes.length, 'content-type': 'application/octet-stream' });
      response.end(bytes);
    }, 500);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  slowUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/clip-96.pte`;
});

afterAll(() => {
  server?.close();
  rmSync(folder, { recursive: true, force: true });
});

async function loaded(modelSource = tinyPath): Promise<ImageEmbeddings> {
  const embeddings = new ImageEmbeddings();
  await embeddings.load({ modelSource, threads: 2 });
  return embeddings;
}

/** Checks that every result is clip-tiny's embedding of its source. */
async function expectTinyEmbeddings(results: EmbedManyResult[]): Promise<void> {
  expect(results).toHaveLength(sources.length);
  for (const result of results) {
    if (!result.ok) expect.fail(`source ${result.index} failed: ${result.error.code} ${result.error.message}`);
    const { tensor } = await preprocessImage(sources[result.index]!, { width: tinyConfig.image_size, height: tinyConfig.image_size });
    const expected = clipReferenceEmbedding(tinyConfig, tinyWeights, tensor);
    expect(maxAbsDifference(result.embedding, expected), `source ${result.index}`).toBeLessThanOrEqual(1e-5);
  }
}

describe('delete while in flight', () => {
  it('finishes a forward call', async () => {
    const embeddings = await loaded();
    const pending = embeddings.forward(sources[0]!);
    embeddings.delete();
    const embedding = await pending;
    const { tensor } = await preprocessImage(sources[0]!, { width: 64, height: 64 });
    expect(maxAbsDifference(embedding, clipReferenceEmbedding(tinyConfig, tinyWeights, tensor))).toBeLessThanOrEqual(1e-5);
  });

  it('finishes every embedMany source', async () => {
    const embeddings = await loaded();
    const pending = embeddings.embedMany(sources);
    embeddings.delete();
    await expectTinyEmbeddings(await pending);
  });

  it('rejects calls made after it', async () => {
    const embeddings = await loaded();
    const pending = embeddings.forward(sources[0]!);
    embeddings.delete();
    await expectErrorCode(embeddings.forward(sources[1]!), 'ERR_DISPOSED');
    await expectErrorCode(embeddings.embedMany(sources), 'ERR_DISPOSED');
    await pending;
  });
});

describe('embedMany that fails', () => {
  it('finishes its work before it rejects', async () => {
    const embeddings = await loaded();
    let settled = false;
    let progressAfter = 0;
    const pending = embeddings.embedMany(sources, {
      concurrency: 16,
      onResult: (result) => {
        if (result.index === 0) throw new Error('cannot write the output');
      },
      onProgress: () => {
        if (settled) progressAfter += 1;
      },
    });
    await expect(pending).rejects.toThrow('cannot write the output');
    settled = true;
    embeddings.delete();
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(progressAfter).toBe(0);
  });
});

describe('load while in flight', () => {
  it('keeps embedMany on its model', async () => {
    const embeddings = await loaded();
    const pending = embeddings.embedMany(sources);
    await embeddings.load({ modelSource: otherPath, threads: 2 });
    await expectTinyEmbeddings(await pending);
    expect(embeddings.inputSize).toEqual({ width: 96, height: 96 });
    embeddings.delete();
  });

  it('keeps embedMany going on a reload', async () => {
    const embeddings = await loaded();
    const reload = embeddings.load({ modelSource: tinyPath, threads: 2 });
    const pending = embeddings.embedMany(sources);
    await reload;
    await expectTinyEmbeddings(await pending);
    embeddings.delete();
  });

  it('keeps the model of the last load call', async () => {
    const embeddings = new ImageEmbeddings();
    const first = embeddings.load({ modelSource: slowUrl, threads: 2, resolve: { cacheDir: path.join(folder, 'cache-order') } });
    const second = embeddings.load({ modelSource: tinyPath, threads: 2 });
    await Promise.all([first, second]);
    expect(embeddings.inputSize).toEqual({ width: 64, height: 64 });
    embeddings.delete();
  });

  it('loads nothing after delete', async () => {
    const embeddings = new ImageEmbeddings();
    const loading = embeddings.load({ modelSource: slowUrl, threads: 2, resolve: { cacheDir: path.join(folder, 'cache-delete') } });
    embeddings.delete();
    await loading;
    expect(() => embeddings.inputSize).toThrow(/not loaded/);
  });
});
