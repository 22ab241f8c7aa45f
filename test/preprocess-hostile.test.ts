/**
 * decodeImage() and preprocess() on hostile and invalid input: each must fail with a clean
 * EmbedImageError, never crash or hang. OpenCV (when present) confirms that it rejects the
 * same files, except the one case listed in docs/preprocessing.md.
 */
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

import { afterAll, describe, expect, test } from 'vitest';

import { EmbedImageError } from '../src/errors.js';
import { decodeImage, preprocess, rawPixelsToRgb } from '../src/preprocess.js';
import { repoRoot } from './helpers.js';
import { oraclePython, runOracle } from './oracle/oracle.js';

const fixtures = path.join(repoRoot, 'fixtures', 'images');
const hostile = path.join(fixtures, 'hostile');

/** Expected error code per hostile file. */
const expectedCodes: Record<string, string> = {
  'bomb-30000x30000.png': 'ERR_IMAGE_TOO_LARGE',
  'bomb-65500x65500.jpg': 'ERR_IMAGE_DECODE',
  'empty.jpg': 'ERR_IMAGE_DECODE',
  'not-an-image.png': 'ERR_IMAGE_DECODE',
  'truncated.jpg': 'ERR_IMAGE_DECODE',
  'truncated.png': 'ERR_IMAGE_DECODE',
  'truncated-scan.jpg': 'ERR_IMAGE_DECODE',
};

/** OpenCV 4.6 decodes this one, filling the missing blocks with gray. */
const openCvDecodes = new Set(['truncated-scan.jpg']);

const work = mkdtempSync(path.join(tmpdir(), 'ei-hostile-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

async function errorOf(promise: Promise<unknown>): Promise<EmbedImageError> {
  try {
    await promise;
  } catch (error) {
    if (error instanceof EmbedImageError) return error;
    throw error;
  }
  throw new Error('expected an EmbedImageError');
}

describe('hostile files', () => {
  test('every file has a code', () => {
    expect(readdirSync(hostile).sort()).toEqual(Object.keys(expectedCodes).sort());
  });

  test.each(Object.entries(expectedCodes))('%s fails with %s', async (name, code) => {
    const error = await errorOf(decodeImage(readFileSync(path.join(hostile, name)), { name }));
    expect(error.code).toBe(code);
    expect(error.message).toContain(name);
  });

  test.skipIf(!oraclePython)('OpenCV rejects them too', () => {
    const names = Object.keys(expectedCodes);
    const manifest = runOracle(
      names.map((name) => ({ id: name, path: path.join(hostile, name), read: 'imdecode' as const })),
      work,
    );
    for (const item of manifest.items) {
      expect(item.ok, item.id).toBe(openCvDecodes.has(item.id));
    }
  });
});

describe('limits and arguments', () => {
  test('maxPixels rejects large images', async () => {
    const bytes = readFileSync(path.join(fixtures, 'chelsea.png'));
    const error = await errorOf(decodeImage(bytes, { name: 'chelsea.png', maxPixels: 451 * 300 - 1 }));
    expect(error.code).toBe('ERR_IMAGE_TOO_LARGE');
  });

  test('maxPixels admits the exact size', async () => {
    const bytes = readFileSync(path.join(fixtures, 'chelsea.png'));
    const image = await decodeImage(bytes, { maxPixels: 451 * 300 });
    expect(image.width * image.height).toBe(451 * 300);
  });

  test('invalid maxPixels', async () => {
    const error = await errorOf(decodeImage(new Uint8Array([1]), { maxPixels: 0 }));
    expect(error.code).toBe('ERR_INVALID_ARGUMENT');
  });

  test('zero target size', async () => {
    const error = await errorOf(preprocess({ data: new Uint8Array(3), width: 1, height: 1 }, { width: 0, height: 224 }));
    expect(error.code).toBe('ERR_INVALID_ARGUMENT');
  });

  test('unknown profile', async () => {
    const options = { width: 2, height: 2, profile: 'opencv' as 'rne' };
    const error = await errorOf(preprocess({ data: new Uint8Array(3), width: 1, height: 1 }, options));
    expect(error.code).toBe('ERR_INVALID_ARGUMENT');
  });

  test('short pixel buffer', () => {
    expect(() => rawPixelsToRgb({ data: new Uint8Array(11), width: 2, height: 2, format: 'rgb' })).toThrow(/need a Uint8Array of 12 bytes/);
  });

  test('unknown pixel format', () => {
    const pixels = { data: new Uint8Array(12), width: 2, height: 2, format: 'yuv' as 'rgb' };
    expect(() => rawPixelsToRgb(pixels)).toThrow(/raw pixel format/);
  });
});

describe('mutated files', () => {
  // Byte flips and truncations of real files: each must decode or fail with ERR_IMAGE_DECODE.
  const sources = ['chelsea-444.jpg', 'chelsea-arithmetic.jpg', 'palette-alpha.png', 'chelsea-lossy.webp', 'cmyk-adobe.jpg'];

  test.each(sources)('%s survives mutations', async (name) => {
    const original = readFileSync(path.join(fixtures, name));
    let state = 12345;
    const random = () => {
      state = (Math.imul(state, 1103515245) + 12345) >>> 0;
      return state;
    };
    const codes = new Set<string>();
    for (let round = 0; round < 40; round++) {
      const bytes = new Uint8Array(original.subarray(0, round % 4 === 0 ? random() % original.length : original.length));
      for (let flip = 0; flip < 1 + (round % 8); flip++) {
        if (bytes.length > 0) bytes[random() % bytes.length] = random() & 0xff;
      }
      try {
        const image = await decodeImage(bytes, { name });
        expect(image.data.length).toBe(image.width * image.height * 3);
      } catch (error) {
        if (!(error instanceof EmbedImageError)) throw error;
        codes.add(error.code);
      }
    }
    expect([...codes].filter((code) => code !== 'ERR_IMAGE_DECODE')).toEqual([]);
  });
});
