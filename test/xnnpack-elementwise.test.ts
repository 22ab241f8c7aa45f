// Conformance of the XnnpackBackend's elementwise nodes (binary with numpy broadcasting,
// PReLU, unary math, activations, Clamp, Copy, Convert, Softmax) against float64 references
// computed here from the same float32 inputs. Each test runs a one-node delegate program.
import { describe, expect, it } from 'vitest';

import { expectAllClose } from './helpers.js';
import { FLOAT32_U, broadcastReference, expectShape, makeRng, product, randomFloats, runGraph } from './xnnpack-harness.js';
import { XnnGraphBuilder, type BinaryNode, type NodeOptions, type UnaryNode } from './tooling/xnnpack-writer.js';

// Tolerances. A correctly rounded float32 operation is within u·|x| of the float64 result; two
// roundings (a compiler may turn a division into a reciprocal and a product) stay within 4u.
const ROUNDED = { rtol: 4 * FLOAT32_U };
// libm's float32 exp, log, sin, cos, tanh and erf are accurate to a few ulps, and the composed
// activations (Sigmoid, Gelu, ELU, Hardswish) add up to four roundings: 1e-6 relative. The
// absolute term covers results near zero, where Gelu's 1 + erf(x/√2) cancels (its absolute
// error is about u·|x| for |x| <= 4).
const TRANSCENDENTAL = { rtol: 1e-6, atol: 5e-7 };

const BINARY_REFERENCES: Record<Exclude<BinaryNode, 'XNNPReLU' | 'XNNBatchMatrixMultiply'>, (x: number, y: number) => number> = {
  XNNAdd: (x, y) => x + y,
  XNNSubtract: (x, y) => x - y,
  XNNMultiply: (x, y) => x * y,
  XNNDiv: (x, y) => x / y,
  XNNMinimum: (x, y) => Math.min(x, y),
  XNNMaximum: (x, y) => Math.max(x, y),
};

/** Inputs that keep Div away from zero denominators: |y| in [0.25, 2]. */
function operand(rng: () => number, count: number, divisor: boolean): Float32Array {
  if (!divisor) return randomFloats(rng, count, -3, 3);
  const values = randomFloats(rng, count, 0.25, 2);
  for (let i = 0; i < count; i++) if (rng() < 0.5) values[i] = -values[i]!;
  return values;
}

async function runBinary(member: BinaryNode, aDims: number[], bDims: number[], seed: number, options?: NodeOptions) {
  const rng = makeRng(seed);
  const a = operand(rng, product(aDims), false);
  const b = operand(rng, product(bDims), member === 'XNNDiv');
  const graph = new XnnGraphBuilder();
  const x = graph.input(aDims);
  const y = graph.input(bDims);
  const outDims = broadcastReference(a, aDims, b, bDims, (p) => p).dims;
  const z = graph.output(outDims);
  graph.binary(member, x, y, z, 0, options);
  const [output] = await runGraph(graph, [a, b]);
  return { output: output!, a, b, outDims };
}

describe('binary nodes', () => {
  const cases: [string, number[], number[]][] = [
    ['same shape', [2, 3, 4], [2, 3, 4]],
    ['[2,3,4] with [4]', [2, 3, 4], [4]],
    ['[4] with [2,3,4]', [4], [2, 3, 4]],
    ['[2,1,4] with [3,1]', [2, 1, 4], [3, 1]],
    ['[3,1] with [2,1,4]', [3, 1], [2, 1, 4]],
    ['rank-0 scalar second', [7, 13], []],
    ['rank-0 scalar first', [], [7, 13]],
    ['[1] scalar', [31], [1]],
    ['[5,1,7] with [1,13,1]', [5, 1, 7], [1, 13, 1]],
    ['odd same shape', [1, 31, 17], [1, 31, 17]],
    ['[1,3,5,7] with per-channel [1,3,1,1]', [1, 3, 5, 7], [1, 3, 1, 1]],
    ['per-channel [3,1,1] first, rows split across threads', [3, 1, 1], [2, 3, 67, 129]],
    ['[4,1,6,1] with [5,1,7]', [4, 1, 6, 1], [5, 1, 7]],
  ];
  let seed = 100;
  for (const [member, reference] of Object.entries(BINARY_REFERENCES) as [keyof typeof BINARY_REFERENCES, (x: number, y: number) => number][]) {
    for (const [name, aDims, bDims] of cases) {
      const caseSeed = seed++;
      it(`${member.slice(3)} ${name}`, async () => {
        const { output, a, b, outDims } = await runBinary(member, aDims, bDims, caseSeed);
        const expected = broadcastReference(a, aDims, b, bDims, reference);
        expectShape(output, outDims);
        expectAllClose(output.data as Float32Array, expected.values, ROUNDED, `${member} output`);
      });
    }
  }

  it('Add large broadcast rows', async () => {
    // 16,641 elements: above the 2^14 grain, so the work is split across threads.
    const { output, a, b } = await runBinary('XNNAdd', [129, 129], [129], 7);
    const expected = broadcastReference(a, [129, 129], b, [129], (x, y) => x + y);
    expectAllClose(output.data as Float32Array, expected.values, ROUNDED, 'Add output');
  });
});

describe('binary with constants', () => {
  for (const storage of ['named', 'payload'] as const) {
    it(`Multiply by ${storage} constant`, async () => {
      const rng = makeRng(11);
      const a = randomFloats(rng, 2 * 3 * 5);
      const c = randomFloats(rng, 5);
      const graph = new XnnGraphBuilder();
      const x = graph.input([2, 3, 5]);
      const k = graph.constant([5], c, storage);
      const z = graph.output([2, 3, 5]);
      graph.binary('XNNMultiply', x, k, z);
      const [output] = await runGraph(graph, [a]);
      const expected = broadcastReference(a, [2, 3, 5], c, [5], (p, q) => p * q);
      expectAllClose(output!.data as Float32Array, expected.values, ROUNDED, 'Multiply output');
    });
  }
});

describe('PReLU', () => {
  for (const dims of [[1, 3, 5, 7], [13], [2, 31]]) {
    it(`slopes per channel ${JSON.stringify(dims)}`, async () => {
      const rng = makeRng(21 + dims.length);
      const channels = dims[dims.length - 1]!;
      const a = randomFloats(rng, product(dims), -2, 2);
      const slopes = randomFloats(rng, channels, -0.5, 0.5);
      const graph = new XnnGraphBuilder();
      const x = graph.input(dims);
      const s = graph.constant([channels], slopes);
      const z = graph.output(dims);
      graph.binary('XNNPReLU', x, s, z);
      const [output] = await runGraph(graph, [a]);
      const expected = broadcastReference(a, dims, slopes, [channels], (value, slope) => (value < 0 ? value * slope : value));
      expectAllClose(output!.data as Float32Array, expected.values, ROUNDED, 'PReLU output');
    });
  }
});

/** erf in float64 by its Maclaurin series; for |x| <= 3 the terms stay below 200, so about 1e-13 absolute. */
function erf(x: number): number {
  if (Math.abs(x) > 3) throw new Error(`erf reference only covers |x| <= 3, got ${x}`);
  let term = x;
  let sum = x;
  for (let n = 1; n < 200; n++) {
    term *= (-x * x) / n;
    const next = term / (2 * n + 1);
    sum += next;
    if (Math.abs(next) < 1e-17) break;
  }
  return (2 / Math.sqrt(Math.PI)) * sum;
}

interface UnaryCase {
  member: UnaryNode;
  reference: (x: number) => number;
  low: number;
  high: number;
  tolerance: { rtol?: number; atol?: number };
}

const UNARY_CASES: UnaryCase[] = [
  { member: 'XNNSigmoid', reference: (x) => 1 / (1 + Math.exp(-x)), low: -10, high: 10, tolerance: TRANSCENDENTAL },
  { member: 'XNNTanh', reference: Math.tanh, low: -5, high: 5, tolerance: TRANSCENDENTAL },
  { member: 'XNNGelu', reference: (x) => 0.5 * x * (1 + erf(x / Math.SQRT2)), low: -4, high: 4, tolerance: TRANSCENDENTAL },
  { member: 'XNNHardswish', reference: (x) => (x * Math.min(Math.max(x + 3, 0), 6)) / 6, low: -5, high: 5, tolerance: TRANSCENDENTAL },
  { member: 'XNNAbs', reference: Math.abs, low: -4, high: 4, tolerance: {} },
  { member: 'XNNNegate', reference: (x) => -x, low: -4, high: 4, tolerance: {} },
  { member: 'XNNFloor', reference: Math.floor, low: -4, high: 4, tolerance: {} },
  { member: 'XNNCeiling', reference: Math.ceil, low: -4, high: 4, tolerance: {} },
  { member: 'XNNSquare', reference: (x) => x * x, low: -4, high: 4, tolerance: ROUNDED },
  { member: 'XNNSquareRoot', reference: Math.sqrt, low: 0, high: 10, tolerance: ROUNDED },
  { member: 'XNNReciprocalSquareRoot', reference: (x) => 1 / Math.sqrt(x), low: 0.01, high: 10, tolerance: ROUNDED },
  { member: 'XNNExp', reference: Math.exp, low: -10, high: 10, tolerance: TRANSCENDENTAL },
  { member: 'XNNLog', reference: Math.log, low: 0.01, high: 10, tolerance: TRANSCENDENTAL },
  { member: 'XNNSin', reference: Math.sin, low: -4, high: 4, tolerance: TRANSCENDENTAL },
  { member: 'XNNCos', reference: Math.cos, low: -4, high: 4, tolerance: TRANSCENDENTAL },
  { member: 'XNNCopy', reference: (x) => x, low: -4, high: 4, tolerance: {} },
  { member: 'XNNConvert', reference: (x) => x, low: -4, high: 4, tolerance: {} },
];

/** Random values with exact integers, halves and signed zeros mixed in (for Floor, Ceiling, Abs). */
function unaryInput(seed: number, count: number, low: number, high: number): Float32Array {
  const values = randomFloats(makeRng(seed), count, low, high);
  const specials = [0, -0, 1, -1, 2, -2, 0.5, -0.5, 2.5, -2.5].filter((value) => value >= low && value <= high);
  specials.forEach((value, i) => {
    if (i < count) values[i] = value;
  });
  return values;
}

async function runUnary(member: UnaryNode, dims: number[], input: Float32Array, options?: NodeOptions) {
  const graph = new XnnGraphBuilder();
  const x = graph.input(dims);
  const y = graph.output(dims);
  graph.unary(member, x, y, 0, options);
  const [output] = await runGraph(graph, [input]);
  return output!;
}

describe('unary nodes', () => {
  UNARY_CASES.forEach((entry, index) => {
    it(`${entry.member.slice(3)} [5,7,13]`, async () => {
      const dims = [5, 7, 13];
      const input = unaryInput(300 + index, product(dims), entry.low, entry.high);
      const output = await runUnary(entry.member, dims, input);
      expectShape(output, dims);
      expectAllClose(output.data as Float32Array, Array.from(input, entry.reference), entry.tolerance, `${entry.member} output`);
    });
  });

  it('Floor keeps negative zero', async () => {
    const output = await runUnary('XNNFloor', [2], Float32Array.from([-0, -0.25]));
    expect(Object.is((output.data as Float32Array)[0], -0)).toBe(true);
  });

  it('Sigmoid across threads', async () => {
    // 16,637 elements: above the 2^14 grain, so several threads write the output.
    const dims = [131, 127];
    const input = unaryInput(401, product(dims), -8, 8);
    const output = await runUnary('XNNSigmoid', dims, input);
    expectAllClose(output.data as Float32Array, Array.from(input, (x) => 1 / (1 + Math.exp(-x))), TRANSCENDENTAL, 'Sigmoid output');
  });

  it('Copy of a single element', async () => {
    const output = await runUnary('XNNCopy', [1], Float32Array.from([3.25]));
    expectAllClose(output.data as Float32Array, [3.25], {}, 'Copy output');
  });
});

describe('parameterized activations', () => {
  it('LeakyReLU slope 0.1', async () => {
    const dims = [3, 7, 11];
    const input = unaryInput(501, product(dims), -3, 3);
    const graph = new XnnGraphBuilder();
    const x = graph.input(dims);
    const y = graph.output(dims);
    graph.leakyRelu(0.1, x, y);
    const [output] = await runGraph(graph, [input]);
    // The schema stores the slope as float32.
    const slope = Math.fround(0.1);
    expectAllClose(output!.data as Float32Array, Array.from(input, (v) => (v < 0 ? v * slope : v)), ROUNDED, 'LeakyReLU output');
  });

  it('ELU alpha 1.5', async () => {
    const dims = [2, 13, 5];
    const input = unaryInput(502, product(dims), -6, 3);
    const graph = new XnnGraphBuilder();
    const x = graph.input(dims);
    const y = graph.output(dims);
    graph.elu(1.5, x, y);
    const [output] = await runGraph(graph, [input]);
    expectAllClose(output!.data as Float32Array, Array.from(input, (v) => (v < 0 ? 1.5 * Math.expm1(v) : v)), TRANSCENDENTAL, 'ELU output');
  });

  it('Clamp to [-0.5, 0.75]', async () => {
    const dims = [4, 17];
    const input = unaryInput(503, product(dims), -2, 2);
    const graph = new XnnGraphBuilder();
    const x = graph.input(dims);
    const y = graph.output(dims);
    graph.clamp(x, y, -0.5, 0.75);
    const [output] = await runGraph(graph, [input]);
    expectAllClose(output!.data as Float32Array, Array.from(input, (v) => Math.min(Math.max(v, -0.5), 0.75)), {}, 'Clamp output');
  });

  it('Clamp with one-sided bounds', async () => {
    const input = Float32Array.from([-1e30, -2, 0, 2, 1e30]);
    const graph = new XnnGraphBuilder();
    const x = graph.input([5]);
    const y = graph.output([5]);
    graph.clamp(x, y, -Infinity, 1);
    const [output] = await runGraph(graph, [input]);
    expectAllClose(output!.data as Float32Array, [-1e30, -2, 0, 1, 1], { rtol: FLOAT32_U }, 'Clamp output');
  });
});

describe('output_min_max', () => {
  const bounds = { min: -0.25, max: 0.5 };
  const clampTo = (value: number) => Math.min(Math.max(value, bounds.min), bounds.max);

  for (const member of ['XNNAdd', 'XNNMultiply', 'XNNMaximum'] as const) {
    it(`clamps ${member.slice(3)}`, async () => {
      const { output, a, b } = await runBinary(member, [3, 1, 5], [4, 1], 601, { outputMinMax: bounds });
      const expected = broadcastReference(a, [3, 1, 5], b, [4, 1], (x, y) => clampTo(BINARY_REFERENCES[member](x, y)));
      expectAllClose(output.data as Float32Array, expected.values, ROUNDED, `${member} output`);
    });
  }

  for (const entry of UNARY_CASES.filter((item) => ['XNNTanh', 'XNNSin', 'XNNNegate'].includes(item.member))) {
    it(`clamps ${entry.member.slice(3)}`, async () => {
      const dims = [6, 7];
      const input = unaryInput(602, product(dims), -3, 3);
      const output = await runUnary(entry.member, dims, input, { outputMinMax: bounds });
      expectAllClose(output.data as Float32Array, Array.from(input, (v) => clampTo(entry.reference(v))), entry.tolerance, `${entry.member} output`);
    });
  }

  it('clamps LeakyReLU', async () => {
    const dims = [29];
    const input = unaryInput(603, 29, -6, 6);
    const graph = new XnnGraphBuilder();
    const x = graph.input(dims);
    const y = graph.output(dims);
    graph.leakyRelu(0.125, x, y, { outputMinMax: bounds });
    const [output] = await runGraph(graph, [input]);
    expectAllClose(output!.data as Float32Array, Array.from(input, (v) => clampTo(v < 0 ? v * 0.125 : v)), ROUNDED, 'LeakyReLU output');
  });

  it('applies to each node of a chain', async () => {
    // Add clamped to [0, 1] then Multiply by 4 clamped to [-1, 3]: the first clamp must apply
    // before the product, or values above 1 would reach the second node.
    const rng = makeRng(604);
    const a = randomFloats(rng, 23, -2, 2);
    const b = randomFloats(rng, 23, -2, 2);
    const graph = new XnnGraphBuilder();
    const x = graph.input([23]);
    const y = graph.input([23]);
    const four = graph.constant([1], [4]);
    const sum = graph.intermediate([23]);
    const z = graph.output([23]);
    graph.binary('XNNAdd', x, y, sum, 0, { outputMinMax: { min: 0, max: 1 } });
    graph.binary('XNNMultiply', sum, four, z, 0, { outputMinMax: { min: -1, max: 3 } });
    const [output] = await runGraph(graph, [a, b]);
    const expected = Array.from(a, (value, i) => Math.min(Math.max(4 * Math.min(Math.max(value + b[i]!, 0), 1), -1), 3));
    expectAllClose(output!.data as Float32Array, expected, ROUNDED, 'chain output');
  });
});

describe('Softmax', () => {
  for (const dims of [[3, 13], [2, 5, 31], [1], [7, 1], [4, 100]]) {
    it(`last dim of ${JSON.stringify(dims)}`, async () => {
      const input = randomFloats(makeRng(700 + product(dims)), product(dims), -8, 8);
      const output = await runUnary('XNNSoftmax', dims, input);
      const inner = dims[dims.length - 1]!;
      const expected = new Float64Array(input.length);
      for (let row = 0; row < input.length / inner; row++) {
        const slice = Array.from(input.subarray(row * inner, (row + 1) * inner));
        const max = Math.max(...slice);
        const exps = slice.map((value) => Math.exp(value - max));
        const sum = exps.reduce((total, value) => total + value, 0);
        exps.forEach((value, j) => (expected[row * inner + j] = value / sum));
      }
      // A float32 sum of n exponentials is within n·u relative of the exact sum (n <= 100).
      expectAllClose(output.data as Float32Array, expected, { rtol: 1e-6 + inner * FLOAT32_U, atol: 1e-9 }, 'Softmax output');
    });
  }

  it('keeps large logits finite', async () => {
    const output = await runUnary('XNNSoftmax', [3], Float32Array.from([1000, 999, -1000]));
    const e = Math.exp(-1);
    expectAllClose(output.data as Float32Array, [1 / (1 + e), e / (1 + e), 0], TRANSCENDENTAL, 'Softmax output');
  });
});
