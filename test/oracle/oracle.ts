/**
 * Runs test/oracle/opencv_oracle.py, the OpenCV reference of the preprocessing tests, and
 * loads its .npy results. The script needs a Python 3 with cv2 and NumPy (Debian's
 * python3-opencv); EI_OPENCV_PYTHON names one explicitly.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { decodeNpy } from '../../src/npy.js';

const script = path.join(path.dirname(fileURLToPath(import.meta.url)), 'opencv_oracle.py');

export interface OracleItem {
  id: string;
  path: string;
  read: 'imread' | 'imdecode' | 'npy';
  sizes?: [number, number][];
}

export interface OracleOutput {
  width: number;
  height: number;
  resized: string;
  legacy: string;
  convert: string;
}

export interface OracleResult {
  id: string;
  ok: boolean;
  width?: number;
  height?: number;
  rgb?: string;
  outputs?: OracleOutput[];
}

export interface OracleManifest {
  opencv: string;
  items: OracleResult[];
}

function findPython(): string | undefined {
  const candidates = [process.env.EI_OPENCV_PYTHON, 'python3', '/usr/bin/python3'].filter((c): c is string => !!c);
  for (const candidate of candidates) {
    const probe = spawnSync(candidate, ['-c', 'import cv2, numpy'], { stdio: 'ignore' });
    if (probe.status === 0) return candidate;
  }
  return undefined;
}

/** A Python interpreter that imports cv2 and numpy, or undefined. */
export const oraclePython = findPython();

/** Why the OpenCV tests are skipped, for the test output. */
export const oracleMissing =
  'OpenCV oracle tests skipped: no python3 with cv2 and numpy (apt-get install python3-opencv, or set EI_OPENCV_PYTHON)';

/** Runs the oracle on `items`, writing its .npy files under `outDir`. */
export function runOracle(items: OracleItem[], outDir: string): OracleManifest {
  if (!oraclePython) throw new Error(oracleMissing);
  const run = spawnSync(oraclePython, [script], {
    input: JSON.stringify({ out: outDir, items }),
    maxBuffer: 64 * 1024 * 1024,
    encoding: 'utf8',
  });
  if (run.status !== 0) throw new Error(`opencv_oracle.py failed (status ${String(run.status)}): ${run.stderr}`);
  return JSON.parse(run.stdout) as OracleManifest;
}

export function loadUint8(file: string): Uint8Array {
  return decodeNpy(readFileSync(file), file).data as Uint8Array;
}

export function loadFloat32(file: string): Float32Array {
  return decodeNpy(readFileSync(file), file).data as Float32Array;
}

/** Number of positions where two arrays differ (bitwise for floats), or -1 for different lengths. */
export function countDifferences(actual: ArrayLike<number>, expected: ArrayLike<number>): number {
  if (actual.length !== expected.length) return -1;
  let count = 0;
  for (let i = 0; i < actual.length; i++) {
    if (!Object.is(actual[i], expected[i])) count++;
  }
  return count;
}
