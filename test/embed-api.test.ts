// The ImageEmbeddings API on fixtures/models/clip-tiny.pte: embeddings against the float64
// reference forward pass, every source form giving the same vector, batches with failures,
// and the float32 formatting used by the embed command.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { formatFloat32 } from '../src/cli-embed-output.js';
import { ImageEmbeddings, mapOrdered, preprocessImage } from '../src/embeddings.js';
import { EmbedImageError } from '../src/errors.js';
import { repoRoot, maxAbsDifference, cosine } from './helpers.js';
import { encodePng, patternPixels, patternPng, seededBytes } from './embed-images.js';
import { clipReferenceEmbedding } from './tooling/clip-reference.js';
import { parseClipConfig, seededClipWeights } from './tooling/clip-weights.js';

const modelPath = path.join(repoRoot, 'fixtures', 'models', 'clip-tiny.pte');
const config = parseClipConfig(JSON.parse(readFileSync(path.join(repoRoot, 'fixtures', 'models', 'clip-tiny.config.json'), 'utf8')));
const weights = seededClipWeights(config, 1);
const folder = mkdtempSync(path.join(tmpdir(), 'embed-api-'));

function bits(values: Float32Array): number[] {
  return Array.from(new Uint32Array(values.buffer, values.byteOffset, values.length));
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

const embeddings = new ImageEmbeddings();

beforeAll(async () => {
  await embeddings.load({ modelSource: modelPath, threads: 1 });
});

afterAll(() => {
  embeddings.delete();
  rmSync(folder, { recursive: true, force: true });
});

describe('ImageEmbeddings', () => {
  it('reads the input size from the program', () => {
    expect(embeddings.inputSize).toEqual({ width: 64, height: 64 });
  });

  it('reads the dimensions from the program', () => {
    expect(embeddings.dimensions).toBe(32);
  });

  it('names the model and its sha256', () => {
    expect(embeddings.model.name).toBe('clip-tiny.pte');
    expect(embeddings.model.sha256).toMatch(/^[0-9a-f]{64}$/);
  });

  it.each([
    ['a downscaled image', 96, 80, 1],
    ['an upscaled image', 40, 30, 2],
    ['an image of the input size', 64, 64, 3],
  ])('matches the float64 reference for %s', async (_, width, height, seed) => {
    const png = patternPng(width, height, seed);
    const input = await embeddings.preprocess(png);
    const embedding = await embeddings.forward(png);
    const reference = clipReferenceEmbedding(config, weights, input.tensor);
    expect(embedding.length).toBe(32);
    expect(maxAbsDifference(embedding, reference)).toBeLessThanOrEqual(1e-5);
    expect(cosine(embedding, reference)).toBeGreaterThanOrEqual(0.999999);
  });

  it('returns unit-length vectors', async () => {
    const embedding = await embeddings.forward(patternPng(50, 70, 4));
    expect(Math.hypot(...embedding)).toBeCloseTo(1, 5);
  });

  it('gives one vector for every source form', async () => {
    const png = patternPng(33, 47, 5);
    const file = path.join(folder, 'form test.png');
    writeFileSync(file, png);
    const expected = bits(await embeddings.forward(png));
    const forms: [string, Parameters<ImageEmbeddings['forward']>[0]][] = [
      ['path', file],
      ['file URI', pathToFileURL(file).href],
      ['data URI', `data:image/png;base64,${png.toString('base64')}`],
      ['bare base64', png.toString('base64')],
      ['ArrayBuffer', new Uint8Array(png).buffer],
    ];
    for (const [name, source] of forms) {
      expect(bits(await embeddings.forward(source)), name).toEqual(expected);
    }
  });

  it('embeds raw pixels like their PNG', async () => {
    const rgb = patternPixels(30, 20, 6);
    const fromPng = await embeddings.forward(encodePng(30, 20, rgb));
    const fromPixels = await embeddings.forward({ data: rgb, width: 30, height: 20, format: 'rgb' });
    expect(bits(fromPixels)).toEqual(bits(fromPng));
  });

  it('embeds BGR pixels like RGB ones', async () => {
    const rgb = patternPixels(20, 20, 7);
    const bgr = new Uint8Array(rgb.length);
    for (let i = 0; i < rgb.length; i += 3) {
      bgr[i] = rgb[i + 2]!;
      bgr[i + 1] = rgb[i + 1]!;
      bgr[i + 2] = rgb[i]!;
    }
    const fromRgb = await embeddings.forward({ data: rgb, width: 20, height: 20, format: 'rgb' });
    const fromBgr = await embeddings.forward({ data: bgr, width: 20, height: 20, format: 'bgr' });
    expect(bits(fromBgr)).toEqual(bits(fromRgb));
  });

  it('rejects bytes that are no image', async () => {
    const error = await errorOf(embeddings.forward(seededBytes(1, 100), { name: 'noise.png' }));
    expect(error.code).toBe('ERR_IMAGE_DECODE');
    expect(error.message).toContain('noise.png');
  });

  it('rejects a program that is no embedding model', async () => {
    const other = new ImageEmbeddings();
    const error = await errorOf(other.load({ modelSource: path.join(repoRoot, 'fixtures', 'models', 'add-one.pte') }));
    expect(error.code).toBe('ERR_INVALID_INPUT');
    expect(error.message).toContain('[1, 3, H, W]');
  });

  it('passes maxBatch to the program', async () => {
    const other = new ImageEmbeddings();
    const error = await errorOf(other.load({ modelSource: modelPath, maxBatch: 0 }));
    expect(error.code).toBe('ERR_INVALID_ARGUMENT');
    expect(error.message).toContain('maxBatch');
  });

  it('fails before load', async () => {
    const error = await errorOf(new ImageEmbeddings().forward(patternPng(8, 8, 1)));
    expect(error.code).toBe('ERR_DISPOSED');
  });

  it('fails after delete', async () => {
    const other = new ImageEmbeddings();
    await other.load({ modelSource: modelPath, threads: 1 });
    other.delete();
    const error = await errorOf(other.forward(patternPng(8, 8, 1)));
    expect(error.code).toBe('ERR_DISPOSED');
  });
});

describe('preprocessImage', () => {
  it('returns the [1, 3, H, W] tensor and the resized image', async () => {
    const result = await preprocessImage(patternPng(20, 10, 8), { width: 16, height: 12 });
    expect(result.tensor.length).toBe(3 * 16 * 12);
    expect(result.resized.length).toBe(16 * 12 * 3);
    expect(result.original).toEqual({ width: 20, height: 10 });
  });

  it('lays out the resized pixels as planes of v / 255', async () => {
    const result = await preprocessImage(patternPng(16, 12, 9), { width: 16, height: 12 });
    const plane = 16 * 12;
    const expected = new Float32Array(3 * plane);
    for (let i = 0; i < plane; i++) for (let c = 0; c < 3; c++) expected[c * plane + i] = result.resized[i * 3 + c]! / 255;
    expect(bits(result.tensor)).toEqual(bits(expected));
  });

  it('records the phone decode path', async () => {
    const file = path.join(folder, 'decode-path.png');
    writeFileSync(file, patternPng(8, 8, 10));
    const fromUri = await preprocessImage(pathToFileURL(file).href, { width: 8, height: 8 });
    const fromBytes = await preprocessImage(readFileSync(file), { width: 8, height: 8 });
    expect(fromUri.source).toEqual({ kind: 'file-uri', decodePath: 'imread' });
    expect(fromBytes.source).toEqual({ kind: 'bytes', decodePath: 'imdecode' });
  });
});

describe('embedMany', () => {
  it('keeps the input order and isolates failures', async () => {
    const sources = [patternPng(20, 20, 11), seededBytes(2, 64), patternPng(30, 10, 12), patternPng(10, 30, 13)];
    const progress: number[] = [];
    const emitted: number[] = [];
    const results = await embeddings.embedMany(sources, {
      concurrency: 3,
      onProgress: (state) => progress.push(state.done),
      onResult: (result) => {
        emitted.push(result.index);
      },
    });
    expect(results.map((result) => result.index)).toEqual([0, 1, 2, 3]);
    expect(results.map((result) => result.ok)).toEqual([true, false, true, true]);
    expect(emitted).toEqual([0, 1, 2, 3]);
    expect(progress.sort()).toEqual([1, 2, 3, 4]);
  });

  it('matches forward for each source', async () => {
    const sources = [patternPng(21, 17, 14), patternPng(64, 64, 15), patternPng(90, 20, 16)];
    const results = await embeddings.embedMany(sources, { concurrency: 2 });
    for (const [index, result] of results.entries()) {
      if (!result.ok) expect.fail(`source ${index} failed: ${result.error.message}`);
      expect(bits(result.embedding), `source ${index}`).toEqual(bits(await embeddings.forward(sources[index]!)));
    }
  });

  it('reports the failure code', async () => {
    const [result] = await embeddings.embedMany([path.join(folder, 'missing.png')]);
    expect(result?.ok).toBe(false);
    expect(result?.ok === false ? result.error.code : undefined).toBe('ERR_FILE_NOT_FOUND');
  });
});

describe('mapOrdered', () => {
  it('emits in input order when tasks finish out of order', async () => {
    const delays = [30, 5, 20, 1, 10, 0];
    const emitted: number[] = [];
    const results = await mapOrdered(
      delays,
      3,
      async (delay, index) => {
        await new Promise((resolve) => setTimeout(resolve, delay));
        return index * 10;
      },
      (result, index) => {
        emitted.push(index);
        expect(result).toBe(index * 10);
      },
    );
    expect(emitted).toEqual([0, 1, 2, 3, 4, 5]);
    expect(results).toEqual([0, 10, 20, 30, 40, 50]);
  });

  it('rejects a concurrency of 0', async () => {
    const error = await errorOf(mapOrdered([1], 0, async (x) => x, () => undefined));
    expect(error.code).toBe('ERR_INVALID_ARGUMENT');
  });

  it('stops and drains when emit throws', async () => {
    let running = 0;
    let started = 0;
    const failure = new Error('disk full');
    const pending = mapOrdered(
      Array.from({ length: 20 }, (_, i) => i),
      4,
      async (item) => {
        started += 1;
        running += 1;
        await new Promise((resolve) => setTimeout(resolve, 5 + (item % 3) * 5));
        running -= 1;
        return item;
      },
      () => {
        throw failure;
      },
    );
    await expect(pending).rejects.toBe(failure);
    expect(running).toBe(0);
    expect(started).toBeLessThan(20);
  });
});

describe('formatFloat32', () => {
  it('round-trips random float32 bit patterns', () => {
    const patterns = new Uint32Array(seededBytes(3, 4 * 20_000).buffer);
    const values = new Float32Array(patterns.buffer);
    for (let i = 0; i < values.length; i++) {
      if (!Number.isFinite(values[i]!)) continue;
      const text = formatFloat32(values[i]!);
      const back = new Float32Array([Number(JSON.parse(text))]);
      if (new Uint32Array(back.buffer)[0] !== patterns[i]) expect.fail(`0x${patterns[i]!.toString(16)} printed as ${text} reads back as 0x${new Uint32Array(back.buffer)[0]!.toString(16)}`);
    }
  });

  it.each([
    [0.1, '0.1'],
    [1, '1'],
    [-0, '-0'],
    [1e-45, '1e-45'],
    [3.4028234663852886e38, '3.4028235e+38'],
    [16777217, '16777216'],
  ])('prints %s as %s', (value, expected) => {
    expect(formatFloat32(value)).toBe(expected);
  });

  it('uses at most 9 significant digits', () => {
    const values = new Float32Array(seededBytes(4, 4 * 2000).buffer);
    for (const value of values) {
      if (!Number.isFinite(value)) continue;
      const digits = formatFloat32(value).replace(/^-/, '').replace(/e.*$/, '').replace('.', '').replace(/^0+/, '').replace(/0+$/, '');
      expect(digits.length).toBeLessThanOrEqual(9);
    }
  });

  it('writes non-finite values as strings', () => {
    expect([formatFloat32(Number.NaN), formatFloat32(Infinity), formatFloat32(-Infinity)]).toEqual(['"NaN"', '"Infinity"', '"-Infinity"']);
  });
});
