// Input diagnosis: each heuristic on tensors built here with a known cause, and the compare
// command's --inputs-a/--inputs-b path.
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

import { describe, expect, it } from 'vitest';

import { main } from '../src/cli.js';
import { diagnoseInputs } from '../src/diagnose.js';
import { encodeNpy } from '../src/npy.js';
import type { Tensor } from '../src/program.js';

const SIZE = 32;

/** A [1, 3, H, W] float32 tensor with values level/255 from `pixel(c, y, x)` in levels 0..255. */
function image(pixel: (c: number, y: number, x: number) => number, height = SIZE, width = SIZE): Tensor {
  const data = new Float32Array(3 * height * width);
  for (let c = 0; c < 3; c++) {
    for (let y = 0; y < height; y++) {
      for (let x = 0; x < width; x++) data[(c * height + y) * width + x] = Math.min(255, Math.max(0, Math.round(pixel(c, y, x)))) / 255;
    }
  }
  return { dtype: 'float32', shape: [1, 3, height, width], data };
}

/** A detailed, asymmetric scene: smooth gradients, a bright square and some hash texture. */
function scene(c: number, y: number, x: number): number {
  const square = x >= 5 && x < 14 && y >= 8 && y < 20 ? 90 : 0;
  const texture = ((x * 73 + y * 151 + c * 29) % 17) * 2;
  return 20 + 4 * x + 2 * y + 30 * c + square + texture;
}

const base = image(scene);
const pixelAt = (tensor: Tensor, c: number, y: number, x: number): number => {
  const [, , height, width] = tensor.shape as [number, number, number, number];
  return (tensor.data[(c * height + y) * width + x] as number) * 255;
};

describe('diagnoseInputs', () => {
  it('says equal for identical inputs', () => {
    const result = diagnoseInputs(base, image(scene));
    expect(result.cause).toBe('equal');
    expect(result.message).toMatch(/^inputs equal: the model outputs differ/);
  });

  it('finds last-bit scaling differences', () => {
    // x * (1/255) instead of x / 255: the same pixels, rounded differently in float32.
    const data = new Float32Array(base.data.length);
    const reciprocal = Math.fround(1 / 255);
    for (let i = 0; i < data.length; i++) data[i] = Math.fround(Math.round((base.data[i] as number) * 255) * reciprocal);
    const result = diagnoseInputs(base, { ...base, data });
    expect(result.cause).toBe('scaling');
    expect(result.differingPixels).toBeGreaterThan(0);
    expect(result.message).toMatch(/last-bit float differences only \(at most 1 ulp\)/);
  });

  it('finds a 90 degree rotation', () => {
    // B is A rotated 90° clockwise: B(y, x) = A(H - 1 - x, y).
    const rotated = image((c, y, x) => pixelAt(base, c, SIZE - 1 - x, y));
    const result = diagnoseInputs(base, rotated);
    expect(result.cause).toBe('orientation');
    expect(result.message).toMatch(/B matches A rotated 90° clockwise/);
  });

  it('finds a horizontal flip', () => {
    const flipped = image((c, y, x) => pixelAt(base, c, y, SIZE - 1 - x));
    const result = diagnoseInputs(base, flipped);
    expect(result.cause).toBe('orientation');
    expect(result.message).toMatch(/flipped left to right/);
  });

  it('finds a rotation of a non-square input', () => {
    const wide = image(scene, 24, 32);
    const rotated = image((c, y, x) => pixelAt(wide, c, 23 - x, y), 32, 24);
    const result = diagnoseInputs(wide, rotated);
    expect(result.cause).toBe('orientation');
    expect(result.message).toMatch(/rotated 90° clockwise/);
  });

  it('finds swapped channels', () => {
    const bgr = image((c, y, x) => pixelAt(base, 2 - c, y, x));
    const result = diagnoseInputs(base, bgr);
    expect(result.cause).toBe('channels');
    expect(result.message).toMatch(/BGR order/);
  });

  it('finds a one-pixel shift', () => {
    const shifted = image((c, y, x) => pixelAt(base, c, y, Math.min(SIZE - 1, x + 1)));
    const result = diagnoseInputs(base, shifted);
    expect(result.cause).toBe('shift');
    expect(result.message).toMatch(/moved 1 pixel right/);
  });

  it('finds per-channel colour shifts', () => {
    // A gamma-like curve on red, and constant offsets on green and blue.
    const profiled = image((c, y, x) => {
      const value = pixelAt(base, c, y, x);
      if (c === 0) return 255 * (value / 255) ** 0.9;
      return value + (c === 1 ? -3 : 2);
    });
    const result = diagnoseInputs(base, profiled);
    expect(result.cause).toBe('colour');
    expect(result.message).toMatch(/R \+\d+(\.\d)?, G -3, B \+\d/);
  });

  it('finds resize differences at edges', () => {
    // Blur only across strong edges, as a different resize filter does: flat areas stay equal.
    const blurred = image((c, y, x) => {
      const value = pixelAt(base, c, y, x);
      const left = pixelAt(base, c, y, Math.max(0, x - 1));
      const right = pixelAt(base, c, y, Math.min(SIZE - 1, x + 1));
      return Math.abs(right - left) > 40 ? (left + 2 * value + right) / 4 : value;
    });
    const result = diagnoseInputs(base, blurred);
    expect(result.cause).toBe('resize');
    expect(result.message).toMatch(/concentrated at edges/);
  });

  it('finds border differences', () => {
    const bordered = image((c, y, x) => pixelAt(base, c, y, x) + (x === 0 || y === 0 || x === SIZE - 1 || y === SIZE - 1 ? 3 : 0));
    const result = diagnoseInputs(base, bordered);
    expect(result.cause).toBe('resize');
    expect(result.message).toMatch(/in the 2-pixel border/);
  });

  it('reports an unknown cause for another image', () => {
    const other = image((c, y, x) => ((x * 37 + y * 91 + c * 53) * 7) % 256);
    const result = diagnoseInputs(base, other);
    expect(result.cause).toBe('unknown');
    expect(result.message).toMatch(/no single cause recognised/);
  });

  it('reports different shapes', () => {
    const result = diagnoseInputs(base, image(scene, 16, 16));
    expect(result.cause).toBe('shape');
  });

  it('counts differing pixels and levels', () => {
    const changed = image((c, y, x) => pixelAt(base, c, y, x) + (y === 3 && x < 5 && c === 1 ? 7 : 0));
    const result = diagnoseInputs(base, changed);
    expect(result.differingPixels).toBe(5);
    expect(result.maxDifference).toBeCloseTo(7, 4);
    expect(result.message).toMatch(/^inputs differ: 5 of 1024 pixels, max 7 levels/);
  });

  it('reads uint8 HWC against float CHW', () => {
    const bytes = new Uint8Array(SIZE * SIZE * 3);
    for (let y = 0; y < SIZE; y++) for (let x = 0; x < SIZE; x++) for (let c = 0; c < 3; c++) bytes[(y * SIZE + x) * 3 + c] = Math.round(pixelAt(base, c, y, x));
    const result = diagnoseInputs(base, { dtype: 'uint8', shape: [SIZE, SIZE, 3], data: bytes });
    expect(result.cause).toBe('equal');
  });
});

describe('compare with input folders', () => {
  it('prints the diagnosis of a failing pair', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'ei-diagnose-'));
    for (const side of ['a', 'b']) mkdirSync(path.join(dir, side));
    const rotated = image((c, y, x) => pixelAt(base, c, SIZE - 1 - x, y));
    writeFileSync(path.join(dir, 'a', 'cat.jpg.npy'), encodeNpy(base));
    writeFileSync(path.join(dir, 'b', 'cat.npy'), encodeNpy(rotated));
    writeFileSync(path.join(dir, 'a.json'), JSON.stringify([{ path: 'photos/cat.jpg', embedding: [1, 0, 0] }]));
    writeFileSync(path.join(dir, 'b.json'), JSON.stringify([{ path: 'file:///sdcard/cat.jpg', embedding: [0.8, 0.6, 0] }]));
    let stdout = '';
    const status = await main(['node', 'embed-image', 'compare', path.join(dir, 'a.json'), path.join(dir, 'b.json'), '--inputs-a', path.join(dir, 'a'), '--inputs-b', path.join(dir, 'b')], {
      stdout: (text) => (stdout += text),
      stderr: () => undefined,
    });
    expect(status).toBe(1);
    expect(stdout).toMatch(/likely cause: orientation: B matches A rotated 90° clockwise/);
  });
});
