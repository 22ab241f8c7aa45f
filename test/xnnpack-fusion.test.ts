// The XnnpackBackend folds FullyConnected -> Multiply by a constant -> Sigmoid -> Multiply
// (transformers' QuickGELU, x * sigmoid(1.702 x)) into one node at load. These tests check the
// result against a float64 reference, check that the fused and unfused graphs agree bit for
// bit, and check that the fold leaves alone every graph where it would change what is computed.
import { describe, expect, it } from 'vitest';

import { Accumulator, expectShape, expectWithin, makeRng, randomFloats, runGraph } from './xnnpack-harness.js';
import { XNN_INVALID_VALUE_ID, XnnGraphBuilder, type NodeOptions } from './tooling/xnnpack-writer.js';

interface Spec {
  rows: number;
  k: number;
  n: number;
  /** Filter as a constant (packed at load) or as a graph input (the BLAS path). */
  filter: 'constant' | 'input';
  /** Operand order of the two Multiply nodes. */
  scaleFirst?: boolean;
  productFirst?: boolean;
  /** Rank of the 1.702 constant: 0 ([]), 1 ([1]) or equal to x's. */
  scaleRank?: number;
  linearClamp?: NodeOptions['outputMinMax'];
  productClamp?: NodeOptions['outputMinMax'];
  /** Also make the Sigmoid's input an external output, which must stop the fold. */
  exposeScaled?: boolean;
  /** Also read x with a third node (an Add to itself), which must stop the fold. */
  extraReader?: boolean;
}

const SCALE = 1.702;

async function run(spec: Spec, seed: number) {
  const rng = makeRng(seed);
  const input = randomFloats(rng, spec.rows * spec.k, -2, 2);
  const weight = randomFloats(rng, spec.n * spec.k);
  const bias = randomFloats(rng, spec.n);

  const graph = new XnnGraphBuilder();
  const xIn = graph.input([1, spec.rows, spec.k]);
  const w = spec.filter === 'constant' ? graph.constant([spec.n, spec.k], weight) : graph.input([spec.n, spec.k]);
  const b = graph.constant([spec.n], bias);
  const dims = [1, spec.rows, spec.n];
  const x = graph.intermediate(dims);
  graph.fullyConnected(xIn, w, b, x, 0, spec.linearClamp ? { outputMinMax: spec.linearClamp } : undefined);
  const scaleRank = spec.scaleRank ?? 0;
  const c = graph.constant(Array.from({ length: scaleRank }, () => 1), [SCALE]);
  const t = spec.exposeScaled ? graph.output(dims) : graph.intermediate(dims);
  if (spec.scaleFirst) graph.binary('XNNMultiply', c, x, t);
  else graph.binary('XNNMultiply', x, c, t);
  const s = graph.intermediate(dims);
  graph.unary('XNNSigmoid', t, s);
  const y = graph.output(dims);
  const productOptions = spec.productClamp ? { outputMinMax: spec.productClamp } : undefined;
  if (spec.productFirst) graph.binary('XNNMultiply', s, x, y, 0, productOptions);
  else graph.binary('XNNMultiply', x, s, y, 0, productOptions);
  let doubled: number | undefined;
  if (spec.extraReader) {
    doubled = graph.output(dims);
    graph.binary('XNNAdd', x, x, doubled);
  }
  const outputs = await runGraph(graph, spec.filter === 'constant' ? [input] : [input, weight]);

  // Float64 reference: the linear layer, its clamp, QuickGELU, the product's clamp.
  const sums = new Accumulator(spec.rows * spec.n);
  for (let r = 0; r < spec.rows; r++) {
    for (let o = 0; o < spec.n; o++) {
      sums.add(r * spec.n + o, bias[o]!);
      for (let i = 0; i < spec.k; i++) sums.add(r * spec.n + o, input[r * spec.k + i]! * weight[o * spec.k + i]!);
    }
  }
  const clampTo = (value: number, range?: { min: number; max: number }) =>
    range ? Math.min(Math.max(value, range.min), range.max) : value;
  const linear = Array.from(sums.values, (value) => clampTo(value, spec.linearClamp));
  const gelu = linear.map((value) => clampTo(value / (1 + Math.exp(-SCALE * value)), spec.productClamp));
  // |d/dx x·sigmoid(1.702x)| <= 1.13, so the sum's error grows by at most that much; the three
  // float32 steps and exp_fast (relative 2.6e-7) add a few units in the last place.
  const sumBound = sums.bound(spec.k + 1);
  const bound = (i: number) => 1.2 * sumBound(i) + 2e-6 * Math.abs(gelu[i]!) + 1e-30;
  return { outputs, gelu, linear, bound, dims, doubled };
}

function bits(array: Float32Array): Uint32Array {
  return new Uint32Array(array.buffer, array.byteOffset, array.length);
}

describe('QuickGELU fold', () => {
  const cases: [string, Spec][] = [
    ['constant filter, x * c and x * s', { rows: 5, k: 37, n: 40, filter: 'constant' }],
    ['constant filter, c * x and s * x', { rows: 3, k: 19, n: 33, filter: 'constant', scaleFirst: true, productFirst: true }],
    ['filter from an input (BLAS path)', { rows: 4, k: 23, n: 17, filter: 'input' }],
    ['scale of rank 1', { rows: 2, k: 8, n: 5, filter: 'constant', scaleRank: 1 }],
    ['scale of the same rank as x', { rows: 2, k: 8, n: 5, filter: 'constant', scaleRank: 3 }],
    ['clamp on the product', { rows: 6, k: 16, n: 48, filter: 'constant', productClamp: { min: -0.1, max: 0.75 } }],
    ['clamp on the linear layer (not folded)', { rows: 6, k: 16, n: 48, filter: 'constant', linearClamp: { min: -0.5, max: 0.5 } }],
    ['rows above one panel group', { rows: 160, k: 64, n: 70, filter: 'constant' }],
  ];
  let seed = 7100;
  for (const [name, spec] of cases) {
    const caseSeed = seed++;
    it(name, async () => {
      const { outputs, gelu, bound, dims } = await run(spec, caseSeed);
      expectShape(outputs[0], dims);
      expectWithin(outputs[0]!.data as Float32Array, gelu, bound, 'QuickGELU output');
    });
  }

  it('gives the same bits as the unfolded nodes', async () => {
    // Exposing the Sigmoid's input as an output keeps the four nodes apart.
    const spec: Spec = { rows: 50, k: 96, n: 160, filter: 'constant' };
    const folded = await run(spec, 7200);
    const apart = await run({ ...spec, exposeScaled: true }, 7200);
    const y = apart.outputs.length === 2 ? apart.outputs[1]! : apart.outputs[0]!;
    expect(bits(folded.outputs[0]!.data as Float32Array)).toEqual(bits(y.data as Float32Array));
  });

  it('NaN scale gives NaN', async () => {
    // With a NaN scale every x * c is NaN, and so is x * sigmoid(NaN), folded or not. A clamp
    // that drops NaN would give x instead.
    for (const exposeScaled of [false, true]) {
      const graph = new XnnGraphBuilder();
      const xIn = graph.input([1, 1, 20]);
      const identity = new Float32Array(20 * 20);
      for (let i = 0; i < 20; i++) identity[i * 20 + i] = 1;
      const x = graph.intermediate([1, 1, 20]);
      graph.fullyConnected(xIn, graph.constant([20, 20], identity), graph.constant([20], new Float32Array(20)), x);
      const t = exposeScaled ? graph.output([1, 1, 20]) : graph.intermediate([1, 1, 20]);
      graph.binary('XNNMultiply', x, graph.constant([], [Number.NaN]), t);
      const s = graph.intermediate([1, 1, 20]);
      graph.unary('XNNSigmoid', t, s);
      const y = graph.output([1, 1, 20]);
      graph.binary('XNNMultiply', x, s, y);
      const outputs = await runGraph(graph, [Float32Array.from({ length: 20 }, (_, i) => i - 9.5)]);
      const result = outputs[exposeScaled ? 1 : 0]!.data as Float32Array;
      expect(Array.from(result).every((value) => Number.isNaN(value)), `${exposeScaled ? 'unfolded' : 'folded'}: ${Array.from(result).join(', ')}`).toBe(true);
    }
  });

  it('leaves x to a third reader', async () => {
    const { outputs, gelu, linear, bound } = await run({ rows: 3, k: 11, n: 9, filter: 'constant', extraReader: true }, 7300);
    expectWithin(outputs[0]!.data as Float32Array, gelu, bound, 'QuickGELU output');
    const sumBound = (i: number) => 2 * bound(i) + 1e-6 * Math.abs(linear[i]!);
    expectWithin(outputs[1]!.data as Float32Array, linear.map((value) => 2 * value), sumBound, 'x + x output');
  });

  it('leaves an exposed Sigmoid input intact', async () => {
    const { outputs, linear, bound } = await run({ rows: 3, k: 11, n: 9, filter: 'constant', exposeScaled: true }, 7400);
    // Outputs come in external-id order: t was declared before y.
    expectWithin(outputs[0]!.data as Float32Array, linear.map((value) => value * SCALE), (i) => SCALE * bound(i) + 1e-6 * Math.abs(linear[i]!), 'x * 1.702 output');
  });

  it('does not fold a Multiply by a constant of several elements', async () => {
    const graph = new XnnGraphBuilder();
    const xIn = graph.input([2, 4]);
    const weight = new Float32Array([1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0]);
    const w = graph.constant([3, 4], weight);
    const x = graph.intermediate([2, 3]);
    graph.fullyConnected(xIn, w, XNN_INVALID_VALUE_ID, x);
    const c = graph.constant([3], [1, 2, 3]);
    const t = graph.intermediate([2, 3]);
    graph.binary('XNNMultiply', x, c, t);
    const s = graph.intermediate([2, 3]);
    graph.unary('XNNSigmoid', t, s);
    const y = graph.output([2, 3]);
    graph.binary('XNNMultiply', x, s, y);
    const input = new Float32Array([0.5, -1, 2, 9, -0.25, 1.5, -3, 9]);
    const [output] = await runGraph(graph, [input]);
    const x64 = [0.5, -1, 2, -0.25, 1.5, -3];
    const expected = x64.map((value, i) => value / (1 + Math.exp(-[1, 2, 3][i % 3]! * value)));
    expectWithin(output!.data as Float32Array, expected, (i) => 4e-7 * Math.abs(expected[i]!) + 1e-30, 'output');
  });
});
