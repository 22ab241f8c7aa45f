/**
 * Shared pieces of the XnnpackBackend node tests: a program around one XNNGraph delegate,
 * a seeded PRNG for inputs, float64 reference helpers and error-bound comparisons.
 *
 * With XNNPACK_SEED_CORPUS=DIR in the environment, every program these helpers run is also
 * written to DIR as a .pte file, a seed corpus for the program fuzzer (`fuzz-corpus/` at the
 * repository root is gitignored for that purpose):
 *   XNNPACK_SEED_CORPUS=fuzz-corpus/xnnpack npx vitest run test/xnnpack-
 */
import { createHash } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';

import { expect } from 'vitest';

import { Program, type Tensor } from '../src/program.js';
import { ProgramBuilder, type Dynamism } from './tooling/pte-writer.js';
import { XnnGraphBuilder, addXnnpackDelegate } from './tooling/xnnpack-writer.js';

/** Unit roundoff of float32 (2^-24): a correctly rounded result is within u·|x| of x. */
export const FLOAT32_U = 2 ** -24;

/** mulberry32: a small seeded PRNG, so every run feeds the same inputs. */
export function makeRng(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Returns `count` float32 values uniform in [low, high). */
export function randomFloats(rng: () => number, count: number, low = -1, high = 1): Float32Array {
  const values = new Float32Array(count);
  for (let i = 0; i < count; i++) values[i] = low + (high - low) * rng();
  return values;
}

export function product(dims: number[]): number {
  return dims.reduce((total, size) => total * size, 1);
}

/** Row-major strides in elements. */
export function stridesOf(dims: number[]): number[] {
  const strides = new Array<number>(dims.length).fill(1);
  for (let i = dims.length - 2; i >= 0; i--) strides[i] = strides[i + 1]! * dims[i + 1]!;
  return strides;
}

/** Row-major multi-index of flat index `flat` over `dims`. */
export function unravel(flat: number, dims: number[]): number[] {
  const index = new Array<number>(dims.length).fill(0);
  for (let d = dims.length - 1; d >= 0; d--) {
    index[d] = flat % dims[d]!;
    flat = Math.floor(flat / dims[d]!);
  }
  return index;
}

/** numpy broadcast shape of two shapes, or undefined when they do not broadcast. */
export function broadcastShape(a: number[], b: number[]): number[] | undefined {
  const rank = Math.max(a.length, b.length);
  const out: number[] = [];
  for (let i = 0; i < rank; i++) {
    const da = a[i - (rank - a.length)] ?? 1;
    const db = b[i - (rank - b.length)] ?? 1;
    if (da !== db && da !== 1 && db !== 1) return undefined;
    out.push(da === 1 ? db : da);
  }
  return out;
}

/** Float64 reference of an elementwise binary op with numpy broadcasting. */
export function broadcastReference(
  a: ArrayLike<number>,
  aDims: number[],
  b: ArrayLike<number>,
  bDims: number[],
  op: (x: number, y: number) => number,
): { dims: number[]; values: Float64Array } {
  const dims = broadcastShape(aDims, bDims);
  if (!dims) throw new Error(`[${aDims}] and [${bDims}] do not broadcast`);
  const values = new Float64Array(product(dims));
  const aStrides = stridesOf(aDims);
  const bStrides = stridesOf(bDims);
  for (let i = 0; i < values.length; i++) {
    const index = unravel(i, dims);
    let ia = 0;
    let ib = 0;
    index.forEach((coordinate, d) => {
      const da = d - (dims.length - aDims.length);
      const db = d - (dims.length - bDims.length);
      if (da >= 0 && aDims[da] !== 1) ia += coordinate * aStrides[da]!;
      if (db >= 0 && bDims[db] !== 1) ib += coordinate * bStrides[db]!;
    });
    values[i] = op(a[ia]!, b[ib]!);
  }
  return { dims, values };
}

/** Writes a program to XNNPACK_SEED_CORPUS, named by its sha256, when that variable is set. */
export function saveSeedProgram(bytes: Uint8Array): void {
  const directory = process.env.XNNPACK_SEED_CORPUS;
  if (!directory) return;
  mkdirSync(directory, { recursive: true });
  const name = createHash('sha256').update(bytes).digest('hex').slice(0, 16);
  writeFileSync(path.join(directory, `xnnpack-${name}.pte`), bytes);
}

export interface RunOptions {
  /**
   * Dynamism of the program's input and output tensors (default 'static'). With
   * 'dynamic_bound' the graph's dims are the upper bounds and calls may pass smaller shapes.
   */
  dynamism?: Dynamism;
  /** Worker threads of the loaded program (default 2). */
  threads?: number;
}

/**
 * Returns a program whose `forward` method is one DelegateCall to the graph: its inputs are
 * the graph's external inputs and its outputs the external outputs, in external-id order.
 */
export function buildGraphProgram(graph: XnnGraphBuilder, options: RunOptions = {}): Uint8Array {
  const program = new ProgramBuilder();
  const forward = program.method('forward');
  const { delegateIndex, built } = addXnnpackDelegate(program, forward, graph);
  const dynamism = options.dynamism ?? 'static';
  const tensorOf = (id: number): number => forward.tensor({ dtype: 'float32', sizes: graph.dims(id), dynamism });
  const inputs = built.externalInputs.map(tensorOf);
  const outputs = built.externalOutputs.map(tensorOf);
  forward.delegateCall(delegateIndex, [...inputs, ...outputs]);
  forward.setInputs(inputs).setOutputs(outputs);
  return program.build();
}

/** An input of a graph call: its data, with a shape that defaults to the graph's dims. */
export interface CallInput {
  data: Float32Array;
  shape?: number[];
}

/** Loads the graph's program, runs `forward` once per input list, and returns each call's outputs. */
export async function runGraphCalls(graph: XnnGraphBuilder, calls: CallInput[][], options: RunOptions = {}): Promise<Tensor[][]> {
  const externalInputs = graph.values.flatMap((value, id) => (value.kind === 'input' ? [id] : []));
  const bytes = buildGraphProgram(graph, options);
  saveSeedProgram(bytes);
  const program = await Program.load(bytes, { threads: options.threads ?? 2 });
  try {
    const results: Tensor[][] = [];
    for (const inputs of calls) {
      const tensors = inputs.map((input, index) => ({ dtype: 'float32' as const, shape: input.shape ?? graph.dims(externalInputs[index]!), data: input.data }));
      const outputs = await program.execute('forward', tensors);
      results.push(outputs as Tensor[]);
    }
    return results;
  } finally {
    program.dispose();
  }
}

/** Runs the graph once with inputs of the graph's dims and returns its outputs. */
export async function runGraph(graph: XnnGraphBuilder, inputs: Float32Array[], options: RunOptions = {}): Promise<Tensor[]> {
  const [outputs] = await runGraphCalls(graph, [inputs.map((data) => ({ data }))], options);
  return outputs!;
}

/** Asserts an output's shape. */
export function expectShape(tensor: Tensor | undefined, shape: number[], label = 'output'): void {
  expect(tensor?.shape, `${label} shape`).toEqual(shape);
}

/**
 * Asserts |actual[i] - expected[i]| <= bound[i] for every element, reporting the first
 * mismatches with their indices. NaN matches only NaN.
 */
export function expectWithin(actual: ArrayLike<number>, expected: ArrayLike<number>, bound: (index: number) => number, label = 'values'): void {
  expect(actual.length, `${label} length`).toBe(expected.length);
  const mismatches: string[] = [];
  let count = 0;
  for (let i = 0; i < expected.length; i++) {
    const got = actual[i]!;
    const want = expected[i]!;
    const close = Number.isNaN(want) ? Number.isNaN(got) : Math.abs(got - want) <= bound(i);
    if (close) continue;
    count++;
    if (mismatches.length < 5) mismatches.push(`[${i}] got ${got}, expected ${want} (bound ${bound(i)})`);
  }
  if (count > 0) expect.fail(`${label}: ${count} of ${expected.length} elements out of bounds: ${mismatches.join('; ')}`);
}

/**
 * Float64 dot products with the magnitude Σ|a_i·b_i| of each, for sum error bounds: float32
 * summation of k products (in any order, fused or not) is within about k·u·Σ|a_i·b_i| of the
 * exact sum (Higham, Accuracy and Stability of Numerical Algorithms, §3.1).
 */
export class Accumulator {
  readonly values: Float64Array;
  readonly magnitudes: Float64Array;

  constructor(count: number) {
    this.values = new Float64Array(count);
    this.magnitudes = new Float64Array(count);
  }

  add(index: number, term: number): void {
    this.values[index]! += term;
    this.magnitudes[index]! += Math.abs(term);
  }

  /** Bound for sums of up to `terms` float32 terms, plus one rounding of the result. */
  bound(terms: number): (index: number) => number {
    return (index) => (terms + 2) * FLOAT32_U * this.magnitudes[index]! + 1e-30;
  }
}

/** A float64 reference tensor: row-major values over `dims`, and for each element a bound on the error of a float32 computation of it. */
export interface Reference {
  dims: number[];
  values: Float64Array;
  bounds: Float64Array;
}

/** Returns `data` as a reference with no error: an input that the graph reads as it is. */
export function exactReference(dims: number[], data: ArrayLike<number>): Reference {
  return { dims: [...dims], values: Float64Array.from(data), bounds: new Float64Array(data.length) };
}

/**
 * Returns the row-major batch indices into two operands of output batch `index` of a batched
 * product, where the operands' batch dims broadcast to `batch` (dims of size 1 stay at 0).
 */
export function batchOperandIndices(index: number, batch: number[], batchA: number[], batchB: number[]): [number, number] {
  const stridesA = stridesOf(batchA);
  const stridesB = stridesOf(batchB);
  let ia = 0;
  let ib = 0;
  unravel(index, batch).forEach((coordinate, d) => {
    const da = d - (batch.length - batchA.length);
    const db = d - (batch.length - batchB.length);
    if (da >= 0 && batchA[da] !== 1) ia += coordinate * stridesA[da]!;
    if (db >= 0 && batchB[db] !== 1) ib += coordinate * stridesB[db]!;
  });
  return [ia, ib];
}
