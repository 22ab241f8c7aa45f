/**
 * preprocess() on generated RGB images of many sizes and ratios, compared bit for bit with
 * OpenCV's cv2.resize(INTER_LINEAR) and the two scalings (test/oracle/opencv_oracle.py).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

import { afterAll, beforeAll, describe, expect, test } from 'vitest';

import { encodeNpy } from '../src/npy.js';
import { preprocess, resizeLinear } from '../src/preprocess.js';
import { countDifferences, loadFloat32, loadUint8, oracleMissing, oraclePython, runOracle, type OracleManifest } from './oracle/oracle.js';

/** [source width, source height, target width, target height, what the case covers]. */
const cases: [number, number, number, number, string][] = [
  [640, 480, 224, 224, 'downscale, non-integer ratios'],
  [448, 448, 224, 224, 'exact 2x downscale (OpenCV switches to area)'],
  [448, 450, 224, 224, '2x in one direction only'],
  [672, 672, 224, 224, 'exact 3x downscale'],
  [896, 448, 224, 224, '4x and 2x'],
  [225, 223, 224, 224, 'off by one'],
  [100, 60, 224, 224, 'upscale'],
  [7, 3, 224, 224, 'large upscale from a tiny image'],
  [1, 1, 224, 224, '1x1 source'],
  [1, 57, 224, 224, 'single column'],
  [57, 1, 224, 224, 'single row'],
  [3000, 20, 224, 224, 'extreme landscape'],
  [20, 3000, 224, 224, 'extreme portrait'],
  [224, 224, 224, 224, 'same size (resize skipped)'],
  [300, 200, 256, 256, 'other model size'],
  [1000, 999, 384, 384, 'near-square downscale'],
  [513, 385, 299, 299, 'odd sizes'],
  [800, 600, 1, 1, '1x1 target'],
  [600, 800, 160, 96, 'non-square target'],
  [2, 2, 1, 1, '2x2 to 1x1'],
  [5, 5, 3, 7, 'mixed up and down'],
];

/** Deterministic pixels with a smooth part and a noisy part, so rounding cases occur. */
function makeImage(width: number, height: number, seed: number): Uint8Array {
  const data = new Uint8Array(width * height * 3);
  let state = seed >>> 0;
  for (let i = 0; i < data.length; i++) {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    const pixel = Math.floor(i / 3);
    const x = pixel % width;
    const y = Math.floor(pixel / width);
    const smooth = (x * 7 + y * 3 + (i % 3) * 80) & 0xff;
    data[i] = (state >>> 24) < 96 ? state & 0xff : smooth;
  }
  return data;
}

const work = mkdtempSync(path.join(tmpdir(), 'ei-resize-'));
let manifest: OracleManifest;
const images = cases.map(([w, h], index) => makeImage(w, h, index + 1));

afterAll(() => rmSync(work, { recursive: true, force: true }));

describe.skipIf(!oraclePython)('resize against OpenCV', () => {
  beforeAll(() => {
    const items = cases.map(([w, h, tw, th], index) => {
      const file = path.join(work, `case${index}.npy`);
      writeFileSync(file, encodeNpy({ dtype: 'uint8', shape: [h, w, 3], data: images[index]! }));
      return { id: `case${index}`, path: file, read: 'npy' as const, sizes: [[tw, th]] as [number, number][] };
    });
    manifest = runOracle(items, work);
  });

  test.each(cases.map((c, index) => [c[4], index, c] as const))('%s', async (_name, index, [w, h, tw, th]) => {
    const expected = manifest.items[index]!.outputs![0]!;
    const legacy = await preprocess({ data: images[index]!, width: w, height: h }, { width: tw, height: th, profile: 'rne-legacy' });
    const rne = await preprocess({ data: images[index]!, width: w, height: h }, { width: tw, height: th, profile: 'rne' });

    expect(countDifferences(legacy.resized, loadUint8(expected.resized)), 'resized pixels').toBe(0);
    expect(countDifferences(legacy.tensor, loadFloat32(expected.legacy)), 'rne-legacy tensor').toBe(0);
    expect(countDifferences(rne.tensor, loadFloat32(expected.convert)), 'rne tensor').toBe(0);
    expect(legacy.shape).toEqual([1, 3, th, tw]);
  });

  test('profiles differ in the last bit', () => {
    // Both scalings come from the oracle: this checks that the rne tests above can fail.
    const expected = manifest.items[0]!.outputs![0]!;
    expect(countDifferences(loadFloat32(expected.legacy), loadFloat32(expected.convert))).toBeGreaterThan(0);
  });
});

describe('resize without OpenCV', () => {
  test.runIf(!oraclePython)('oracle missing', () => {
    console.warn(oracleMissing);
    expect(process.env.CI, 'CI must install python3-opencv so the OpenCV tests run').toBeFalsy();
  });

  test('same size copies', async () => {
    const image = makeImage(9, 4, 7);
    const resized = await resizeLinear(image, { width: 9, height: 4, channels: 3 }, 9, 4);
    expect(countDifferences(resized, image)).toBe(0);
  });

  test('constant image stays constant', async () => {
    // Weights of each tap sum to 2048, so a flat image keeps its value at every size.
    const flat = new Uint8Array(13 * 11 * 3).fill(173);
    const resized = await resizeLinear(flat, { width: 13, height: 11, channels: 3 }, 50, 7);
    expect(resized.every((v) => v === 173)).toBe(true);
  });

  test('sharp profile stays close', async () => {
    const image = makeImage(640, 480, 99).map((_, i) => (i % 3) * 60 + ((i / 3) % 640) / 8);
    const exact = await preprocess({ data: image, width: 640, height: 480 }, { width: 224, height: 224 });
    const sharpResult = await preprocess({ data: image, width: 640, height: 480 }, { width: 224, height: 224, profile: 'sharp' });
    let total = 0;
    for (let i = 0; i < exact.resized.length; i++) total += Math.abs(exact.resized[i]! - sharpResult.resized[i]!);
    expect(sharpResult.shape).toEqual([1, 3, 224, 224]);
    expect(total / exact.resized.length).toBeLessThan(3);
    expect(sharpResult.tensor[0]).toBe(Math.fround(sharpResult.resized[0]! / 255));
  });
});
