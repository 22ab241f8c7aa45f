// ImageEmbeddings decodes at most one image per CPU core (2 to 8) at a time, however many
// sources embedMany() has in flight, and the limit changes no result. decodeImage() is wrapped
// to count the decodes running at once and to hold each one long enough for others to start.
// Expected embeddings come from the float64 CLIP forward pass in test/tooling/clip-reference.ts.
import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import path from 'node:path';

import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';

import { ImageEmbeddings, preprocessImage } from '../src/embeddings.js';
import { EmbedImageError } from '../src/errors.js';
import { maxAbsDifference, repoRoot } from './helpers.js';
import { patternPixels, patternPng } from './embed-images.js';
import { clipReferenceEmbedding } from './tooling/clip-reference.js';
import { parseClipConfig, seededClipWeights } from './tooling/clip-weights.js';

const decodes = vi.hoisted(() => ({ running: 0, maxRunning: 0, total: 0 }));

vi.mock('../src/preprocess.js', async (importOriginal) => {
  const actual = await importOriginal<typeof import('../src/preprocess.js')>();
  return {
    ...actual,
    decodeImage: async (...args: Parameters<typeof actual.decodeImage>) => {
      decodes.running += 1;
      decodes.total += 1;
      decodes.maxRunning = Math.max(decodes.maxRunning, decodes.running);
      try {
        await new Promise((resolve) => setTimeout(resolve, 20));
        return await actual.decodeImage(...args);
      } finally {
        decodes.running -= 1;
      }
    },
  };
});

const modelPath = path.join(repoRoot, 'fixtures', 'models', 'clip-tiny.pte');
const config = parseClipConfig(JSON.parse(readFileSync(path.join(repoRoot, 'fixtures', 'models', 'clip-tiny.config.json'), 'utf8')));
const weights = seededClipWeights(config, 1);
const limit = Math.max(2, Math.min(8, availableParallelism()));
const embeddings = new ImageEmbeddings();

beforeAll(async () => {
  await embeddings.load({ modelSource: modelPath, threads: 2 });
});

afterAll(() => {
  embeddings.delete();
});

describe('decode limit', () => {
  it('bounds decodes and keeps results', async () => {
    const sources = Array.from({ length: 3 * limit + 2 }, (_, i) => patternPng(40 + i, 30, 100 + i));
    decodes.maxRunning = 0;
    decodes.total = 0;
    const results = await embeddings.embedMany(sources);

    expect(decodes.total).toBe(sources.length);
    expect(decodes.maxRunning).toBeLessThanOrEqual(limit);
    expect(decodes.maxRunning).toBeGreaterThanOrEqual(2);
    for (const [index, result] of results.entries()) {
      if (!result.ok) expect.fail(`source ${index} failed: ${result.error.message}`);
      const { tensor } = await preprocessImage(sources[index]!, { width: config.image_size, height: config.image_size });
      const expected = clipReferenceEmbedding(config, weights, tensor);
      expect(maxAbsDifference(result.embedding, expected), `source ${index}`).toBeLessThanOrEqual(1e-5);
    }
  });

  it('releases the slot of a failed decode', async () => {
    const bad = Uint8Array.from([0x89, 0x50, 0x4e, 0x47, 1, 2, 3]);
    const sources = [...Array.from({ length: 2 * limit }, () => bad), patternPng(33, 21, 7)];
    const results = await embeddings.embedMany(sources);

    expect(results.slice(0, -1).every((result) => !result.ok && result.error.code === 'ERR_IMAGE_DECODE')).toBe(true);
    const last = results.at(-1);
    if (!last?.ok) expect.fail(`the last source failed: ${last?.error.message}`);
    expect(last.embedding).toHaveLength(config.projection_dim);
  });

  it('reports each failed decode with its own message', async () => {
    // libvips keeps one error buffer per process: without the retry alone, decodes failing at
    // the same time read each other's messages, or "Unknown error" (about 1 in 6 here).
    const jpeg = await sharp(Buffer.from(patternPixels(64, 64, 3)), { raw: { width: 64, height: 64, channels: 3 } }).jpeg().toBuffer();
    const badCrc = Buffer.from(patternPng(8, 8, 1));
    badCrc.writeUInt32BE(100000, 16);
    const png = patternPng(50, 50, 9);
    const corrupt = [
      { name: 'png with a bad CRC', bytes: new Uint8Array(badCrc) },
      { name: 'jpeg header only', bytes: new Uint8Array(jpeg.subarray(0, 20)) },
      { name: 'truncated png', bytes: png.subarray(0, 60) },
      { name: 'truncated jpeg', bytes: new Uint8Array(jpeg.subarray(0, jpeg.length / 2)) },
      { name: 'gif without frames', bytes: new Uint8Array(Buffer.from('GIF89a\x01\x00\x01\x00\x00\x00\x00;', 'latin1')) },
      { name: 'text', bytes: new Uint8Array(Buffer.from('this is not an image')) },
    ];
    const alone = new Map<string, string>();
    for (const { name, bytes } of corrupt) {
      const error = await embeddings.forward(bytes).then(() => undefined, (failure: unknown) => failure);
      expect(error, name).toBeInstanceOf(EmbedImageError);
      expect((error as EmbedImageError).code, name).toBe('ERR_IMAGE_DECODE');
      alone.set(name, (error as EmbedImageError).message);
    }

    const sources = Array.from({ length: 10 }, () => corrupt).flat();
    const differing: string[] = [];
    for (let round = 0; round < 5; round++) {
      const results = await embeddings.embedMany(sources.map((source) => source.bytes));
      results.forEach((result, index) => {
        const { name } = sources[index]!;
        const message = result.ok ? 'decoded' : result.error.message;
        if (message !== alone.get(name)) differing.push(`${name}: "${message}", alone "${alone.get(name)}"`);
      });
    }
    expect(differing.slice(0, 3), `${differing.length} of ${5 * sources.length} messages differ`).toEqual([]);
  });
});
