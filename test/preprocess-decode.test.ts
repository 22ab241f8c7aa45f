/**
 * decodeImage() and preprocess() on the files in fixtures/images, compared bit for bit with
 * OpenCV's cv2.imread and cv2.imdecode (IMREAD_COLOR), cv2.resize(INTER_LINEAR) and the two
 * scalings (test/oracle/opencv_oracle.py).
 */
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

import { afterAll, beforeAll, describe, expect, test } from 'vitest';

import { decodeImage, preprocess, rawPixelsToRgb } from '../src/preprocess.js';
import { repoRoot } from './helpers.js';
import { countDifferences, loadFloat32, loadUint8, oracleMissing, oraclePython, runOracle, type OracleManifest } from './oracle/oracle.js';

const fixtures = path.join(repoRoot, 'fixtures', 'images');
const imageExtensions = new Set(['.jpg', '.png', '.webp', '.gif']);
const files = readdirSync(fixtures)
  .filter((name) => imageExtensions.has(path.extname(name)))
  .sort();

/** Files OpenCV 4.6 cannot read; docs/preprocessing.md explains the choice. */
const notInOpenCv = new Set(['animated.gif']);
const compared = files.filter((name) => !notInOpenCv.has(name));

/** Model input sizes; each fixture is also preprocessed at its own size (resize skipped). */
const sizes: [number, number][] = [
  [224, 224],
  [256, 256],
  [384, 384],
  [160, 96],
];

const work = mkdtempSync(path.join(tmpdir(), 'ei-decode-'));
let imread: OracleManifest;
let imdecode: OracleManifest;

afterAll(() => rmSync(work, { recursive: true, force: true }));

function oracleEntry(manifest: OracleManifest, name: string) {
  const entry = manifest.items.find((item) => item.id === name);
  if (!entry) throw new Error(`no oracle result for ${name}`);
  return entry;
}

describe.skipIf(!oraclePython)('decode against OpenCV', () => {
  beforeAll(() => {
    const items = files.map((name) => ({ id: name, path: path.join(fixtures, name), read: 'imread' as const, sizes }));
    imread = runOracle(items, path.join(work, 'imread'));
    imdecode = runOracle(
      items.map((item) => ({ ...item, read: 'imdecode' as const, sizes: [] })),
      path.join(work, 'imdecode'),
    );
  });

  test.each(compared)('%s decodes', async (name) => {
    const expected = oracleEntry(imread, name);
    const fromBytes = oracleEntry(imdecode, name);
    const image = await decodeImage(readFileSync(path.join(fixtures, name)), { name });

    expect(expected.ok, 'OpenCV decodes it').toBe(true);
    expect([image.width, image.height]).toEqual([expected.width, expected.height]);
    expect(countDifferences(image.data, loadUint8(expected.rgb!)), 'pixels vs imread').toBe(0);
    expect(countDifferences(image.data, loadUint8(fromBytes.rgb!)), 'pixels vs imdecode').toBe(0);
  });

  test.each(compared)('%s preprocesses', async (name) => {
    const expected = oracleEntry(imread, name);
    const image = await decodeImage(readFileSync(path.join(fixtures, name)), { name });
    for (const output of expected.outputs!) {
      const size = `${output.width}x${output.height}`;
      const options = { width: output.width, height: output.height };
      const legacy = await preprocess(image, { ...options, profile: 'rne-legacy' });
      const rne = await preprocess(image, { ...options, profile: 'rne' });

      expect(countDifferences(legacy.resized, loadUint8(output.resized)), `resized ${size}`).toBe(0);
      expect(countDifferences(legacy.tensor, loadFloat32(output.legacy)), `rne-legacy ${size}`).toBe(0);
      expect(countDifferences(rne.tensor, loadFloat32(output.convert)), `rne ${size}`).toBe(0);
    }
  });

  test.each(compared)('%s at its own size', async (name) => {
    // The model size equals the image size, so react-native-executorch skips cv::resize.
    const expected = oracleEntry(imread, name);
    const image = await decodeImage(readFileSync(path.join(fixtures, name)), { name });
    const result = await preprocess(image, { width: image.width, height: image.height });
    const rgb = loadUint8(expected.rgb!);
    let mismatches = 0;
    const plane = image.width * image.height;
    for (let i = 0; i < plane; i++) {
      for (let c = 0; c < 3; c++) {
        if (result.tensor[c * plane + i] !== Math.fround(rgb[3 * i + c]! / 255)) mismatches++;
      }
    }
    expect(mismatches).toBe(0);
  });

  test('animated GIF is not in OpenCV 4.6', async () => {
    const bytes = readFileSync(path.join(fixtures, 'animated.gif'));
    const image = await decodeImage(bytes, { name: 'animated.gif' });
    // The GIF logical screen size, little-endian at bytes 6 to 9.
    expect(oracleEntry(imread, 'animated.gif').ok).toBe(false);
    expect(image.width).toBe(bytes[6]! | (bytes[7]! << 8));
    expect(image.height).toBe(bytes[8]! | (bytes[9]! << 8));
  });

  test('raw formats match RGB', async () => {
    const rgb = loadUint8(oracleEntry(imread, 'chelsea.png').rgb!);
    const { width, height } = oracleEntry(imread, 'chelsea.png') as { width: number; height: number };
    const count = width * height;
    const bgr = new Uint8Array(count * 3);
    const rgba = new Uint8Array(count * 4);
    const bgra = new Uint8Array(count * 4);
    for (let i = 0; i < count; i++) {
      for (let c = 0; c < 3; c++) {
        bgr[3 * i + c] = rgb[3 * i + 2 - c]!;
        rgba[4 * i + c] = rgb[3 * i + c]!;
        bgra[4 * i + c] = rgb[3 * i + 2 - c]!;
      }
      rgba[4 * i + 3] = i & 0xff;
      bgra[4 * i + 3] = 255 - (i & 0xff);
    }
    expect(countDifferences(rawPixelsToRgb({ data: bgr, width, height, format: 'bgr' }).data, rgb), 'bgr').toBe(0);
    expect(countDifferences(rawPixelsToRgb({ data: rgba, width, height, format: 'rgba' }).data, rgb), 'rgba').toBe(0);
    expect(countDifferences(rawPixelsToRgb({ data: bgra, width, height, format: 'bgra' }).data, rgb), 'bgra').toBe(0);
  });

  test('gray raw pixels match OpenCV gray', async () => {
    const entry = oracleEntry(imread, 'camera-gray.png');
    const rgb = loadUint8(entry.rgb!);
    const gray = new Uint8Array(entry.width! * entry.height!);
    for (let i = 0; i < gray.length; i++) gray[i] = rgb[3 * i]!;
    const result = await preprocess({ data: gray, width: entry.width!, height: entry.height!, format: 'gray' }, { width: 224, height: 224 });
    expect(countDifferences(result.tensor, loadFloat32(entry.outputs![0]!.legacy))).toBe(0);
  });
});

test.runIf(!oraclePython)('decode oracle missing', () => {
  console.warn(oracleMissing);
  expect(process.env.CI, 'CI must install python3-opencv so the OpenCV tests run').toBeFalsy();
});
