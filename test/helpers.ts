/** Helpers shared by the tests: fixture paths, tensor construction and float comparison. */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { expect } from 'vitest';

import type { EmbedImageError, ErrorCode } from '../src/errors.js';
import type { DType, Tensor, TensorData, Value } from '../src/program.js';

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

/**
 * Real upstream-written .pte files with `NAME.expected.json` beside them. They live outside
 * the repository, so tests that need them are skipped when the folder is absent.
 */
export const sharedPteDir = path.resolve(repoRoot, '..', 'shared', 'pte');
export const hasSharedPte = existsSync(sharedPteDir);

/** A tensor as `.expected.json` files store it: data is row-major over `shape`. */
export interface JsonTensor {
  dtype: string;
  shape: number[] | null;
  data: number[] | number | boolean;
}

export interface ExpectedCase {
  method: string;
  inputs: JsonTensor[];
  outputs: JsonTensor[];
}

export interface ExpectedFile extends ExpectedCase {
  file: string;
  tolerance: { atol?: number; rtol?: number };
  extra_cases?: ExpectedCase[];
}

/** Reads `NAME.expected.json` from the shared folder. */
export function readExpected(name: string): ExpectedFile {
  return JSON.parse(readFileSync(path.join(sharedPteDir, `${name}.expected.json`), 'utf8')) as ExpectedFile;
}

const constructors: Record<DType, { new (values: ArrayLike<number>): TensorData } | BigInt64ArrayConstructor> = {
  float32: Float32Array,
  float64: Float64Array,
  int64: BigInt64Array,
  int32: Int32Array,
  int16: Int16Array,
  int8: Int8Array,
  uint8: Uint8Array,
  bool: Uint8Array,
};

/** Builds an API tensor from plain numbers (bools as 0/1, int64 from numbers or bigints). */
export function makeTensor(dtype: DType, shape: number[], values: ArrayLike<number | bigint | boolean>): Tensor {
  const list = Array.from(values);
  let data: TensorData;
  if (dtype === 'int64') data = BigInt64Array.from(list, (value) => BigInt(value));
  else data = new (constructors[dtype] as new (values: ArrayLike<number>) => TensorData)(list.map((value) => Number(value)));
  return { dtype, shape, data };
}

/** Converts an `.expected.json` tensor to an API value. */
export function fromJson(tensor: JsonTensor): Value {
  if (tensor.shape === null) {
    if (tensor.dtype === 'Bool') return Boolean(tensor.data);
    return Number(tensor.data);
  }
  return makeTensor(tensor.dtype as DType, tensor.shape, tensor.data as number[]);
}

/** Narrows an execute() output to a tensor, failing with the value's actual kind otherwise. */
export function asTensor(value: Value | undefined, label = 'output'): Tensor {
  if (typeof value !== 'object' || value === null || !('data' in value)) {
    expect.fail(`${label}: expected a tensor, got ${describe(value)}`);
  }
  return value as Tensor;
}

function describe(value: unknown): string {
  if (typeof value === 'bigint') return `${value}n`;
  if (typeof value === 'object' && value !== null) return JSON.stringify(value, (_, item) => (typeof item === 'bigint' ? `${item}n` : item));
  return `${typeof value} ${String(value)}`;
}

export interface Tolerance {
  /** Absolute tolerance (default 0). */
  atol?: number;
  /** Relative tolerance, scaled by |expected| (default 0). */
  rtol?: number;
}

/**
 * Asserts |actual - expected| <= atol + rtol * |expected| element-wise. The failure message
 * lists the first mismatching indices with both values. NaN matches only NaN.
 */
export function expectAllClose(actual: ArrayLike<number | bigint>, expected: ArrayLike<number | bigint>, tolerance: Tolerance = {}, label = 'values'): void {
  const atol = tolerance.atol ?? 0;
  const rtol = tolerance.rtol ?? 0;
  if (actual.length !== expected.length) {
    expect.fail(`${label}: expected ${expected.length} elements, got ${actual.length}`);
  }
  const mismatches: string[] = [];
  let count = 0;
  for (let i = 0; i < expected.length; i++) {
    const got = Number(actual[i]);
    const want = Number(expected[i]);
    const close = Number.isNaN(want) ? Number.isNaN(got) : Math.abs(got - want) <= atol + rtol * Math.abs(want);
    if (close) continue;
    count++;
    if (mismatches.length < 5) mismatches.push(`[${i}] got ${got}, expected ${want}`);
  }
  if (count > 0) {
    expect.fail(`${label}: ${count} of ${expected.length} elements differ beyond atol=${atol}, rtol=${rtol}: ${mismatches.join('; ')}`);
  }
}

/** Asserts a tensor's dtype, shape and values in three separate checks. */
export function expectTensor(value: Value | undefined, dtype: DType, shape: number[], values: ArrayLike<number | bigint>, tolerance: Tolerance = {}, label = 'output'): void {
  const tensor = asTensor(value, label);
  expect(tensor.dtype, `${label} dtype`).toBe(dtype);
  expect(tensor.shape, `${label} shape`).toEqual(shape);
  expectAllClose(tensor.data as ArrayLike<number | bigint>, values, tolerance, `${label} data`);
}

/** Awaits a promise that must reject with an EmbedImageError of `code`; returns the error. */
export async function expectErrorCode(promise: Promise<unknown>, code: ErrorCode): Promise<EmbedImageError> {
  let caught: unknown;
  try {
    await promise;
  } catch (error) {
    caught = error;
  }
  expect(caught, `expected a rejection with ${code}`).toBeInstanceOf(Error);
  expect((caught as EmbedImageError).code, `error code (message: ${(caught as Error).message})`).toBe(code);
  return caught as EmbedImageError;
}

/** Largest absolute elementwise difference of two equally long vectors. */
export function maxAbsDifference(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let max = 0;
  for (let i = 0; i < a.length; i++) max = Math.max(max, Math.abs(a[i]! - b[i]!));
  return max;
}

/** Cosine similarity of two vectors, computed in float64. */
export function cosine(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let dot = 0;
  let normA = 0;
  let normB = 0;
  for (let i = 0; i < a.length; i++) {
    dot += a[i]! * b[i]!;
    normA += a[i]! ** 2;
    normB += b[i]! ** 2;
  }
  return dot / Math.sqrt(normA * normB);
}
