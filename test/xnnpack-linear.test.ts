// Conformance of the XnnpackBackend's matrix nodes (FullyConnected, BatchMatrixMultiply,
// ScaledDotProductAttention) against float64 references. Sums are compared with the float32
// summation error bound k·u·Σ|a_i·b_i| (see Accumulator), which any order of summation meets.
import { describe, expect, it } from 'vitest';

import { expectAllClose } from './helpers.js';
import { Program, type Tensor } from '../src/program.js';
import { Accumulator, batchOperandIndices, broadcastShape, buildGraphProgram, expectShape, expectWithin, makeRng, product, randomFloats, runGraph } from './xnnpack-harness.js';
import { XNN_FLAG_TRANSPOSE_WEIGHTS, XNN_INVALID_VALUE_ID, XnnGraphBuilder, type NodeOptions } from './tooling/xnnpack-writer.js';

interface FullyConnectedCase {
  inputDims: number[];
  outChannels: number;
  bias: boolean;
  transposed: boolean;
}

async function checkFullyConnected(spec: FullyConnectedCase, seed: number, options?: NodeOptions): Promise<void> {
  const rng = makeRng(seed);
  const k = spec.inputDims[spec.inputDims.length - 1]!;
  const n = spec.outChannels;
  const m = product(spec.inputDims) / k;
  const input = randomFloats(rng, m * k);
  // The weight as a [n, k] matrix; the [k, n] layout stores its transpose.
  const weight = randomFloats(rng, n * k);
  const stored = new Float32Array(n * k);
  for (let o = 0; o < n; o++) for (let i = 0; i < k; i++) stored[spec.transposed ? i * n + o : o * k + i] = weight[o * k + i]!;
  const bias = randomFloats(rng, n);

  const graph = new XnnGraphBuilder();
  const x = graph.input(spec.inputDims);
  const w = graph.constant(spec.transposed ? [k, n] : [n, k], stored);
  const b = spec.bias ? graph.constant([n], bias) : XNN_INVALID_VALUE_ID;
  const outDims = [...spec.inputDims.slice(0, -1), n];
  const y = graph.output(outDims);
  graph.fullyConnected(x, w, b, y, spec.transposed ? XNN_FLAG_TRANSPOSE_WEIGHTS : 0, options);
  const [output] = await runGraph(graph, [input]);

  const sums = new Accumulator(m * n);
  for (let r = 0; r < m; r++) {
    for (let o = 0; o < n; o++) {
      if (spec.bias) sums.add(r * n + o, bias[o]!);
      for (let i = 0; i < k; i++) sums.add(r * n + o, input[r * k + i]! * weight[o * k + i]!);
    }
  }
  const low = options?.outputMinMax?.min ?? -Infinity;
  const high = options?.outputMinMax?.max ?? Infinity;
  const expected = sums.values.map((value) => Math.min(Math.max(value, low), high));
  expectShape(output, outDims);
  expectWithin(output!.data as Float32Array, expected, sums.bound(k + 1), 'FullyConnected output');
}

describe('FullyConnected', () => {
  const shapes: [number[], number][] = [
    [[3, 7], 5],
    [[2, 3, 13], 31],
    [[1, 1], 1],
    [[5, 1], 3],
    [[17], 4],
    [[1, 64], 17],
  ];
  let seed = 1000;
  for (const [inputDims, outChannels] of shapes) {
    for (const transposed of [false, true]) {
      for (const bias of [true, false]) {
        const caseSeed = seed++;
        const name = `${JSON.stringify(inputDims)} to ${outChannels}${bias ? ' with bias' : ''}${transposed ? ' [in, out]' : ''}`;
        it(name, async () => {
          await checkFullyConnected({ inputDims, outChannels, bias, transposed }, caseSeed);
        });
      }
    }
  }

  it('large product across threads', async () => {
    // 64·130·128 multiply-adds (above the 2^20 threshold) over three column blocks of 64.
    await checkFullyConnected({ inputDims: [64, 128], outChannels: 130, bias: true, transposed: false }, 1100);
  });

  it('large [in, out] product', async () => {
    await checkFullyConnected({ inputDims: [2, 33, 97], outChannels: 131, bias: true, transposed: true }, 1101);
  });

  it('clamps with output_min_max', async () => {
    await checkFullyConnected({ inputDims: [4, 9], outChannels: 6, bias: true, transposed: false }, 1102, { outputMinMax: { min: -0.3, max: 0.4 } });
  });

  it('shares its filter with other nodes', async () => {
    // The filter [4, 4] feeds two FullyConnected nodes and a Multiply, so a backend that
    // repacks or releases the filter's bytes at load must still give the Multiply the originals.
    const rng = makeRng(1104);
    const input = randomFloats(rng, 4 * 4);
    const weight = randomFloats(rng, 16);
    const graph = new XnnGraphBuilder();
    const x = graph.input([4, 4]);
    const w = graph.constant([4, 4], weight);
    const first = graph.intermediate([4, 4]);
    const second = graph.output([4, 4]);
    const scaled = graph.output([4, 4]);
    graph.fullyConnected(x, w, XNN_INVALID_VALUE_ID, first);
    graph.fullyConnected(first, w, XNN_INVALID_VALUE_ID, second);
    graph.binary('XNNMultiply', x, w, scaled);
    const [secondOutput, scaledOutput] = await runGraph(graph, [input]);

    const once = new Accumulator(16);
    for (let r = 0; r < 4; r++) for (let o = 0; o < 4; o++) for (let i = 0; i < 4; i++) once.add(r * 4 + o, input[r * 4 + i]! * weight[o * 4 + i]!);
    const twice = new Accumulator(16);
    for (let r = 0; r < 4; r++) for (let o = 0; o < 4; o++) for (let i = 0; i < 4; i++) twice.add(r * 4 + o, once.values[r * 4 + i]! * weight[o * 4 + i]!);
    // The second product sums rounded first results: its bound adds the first bound times |w| <= 1.
    const firstBound = once.bound(4);
    const secondBound = twice.bound(4);
    expectWithin(secondOutput!.data as Float32Array, twice.values, (i) => secondBound(i) + 4 * Math.max(...Array.from({ length: 16 }, (_, j) => firstBound(j))), 'second FullyConnected output');
    expectAllClose(scaledOutput!.data as Float32Array, Array.from(input, (value, i) => value * weight[i]!), { rtol: 2 ** -23 }, 'Multiply output');
  });

  it('runs concurrent calls of different row counts as one batch', async () => {
    // With dynamic shapes, the calls batched into one product each bring their own rows.
    const rng = makeRng(1105);
    const k = 40;
    const n = 70;
    const weight = randomFloats(rng, n * k);
    const bias = randomFloats(rng, n);

    const graph = new XnnGraphBuilder();
    const x = graph.input([1, 30, k]);
    const w = graph.constant([n, k], weight);
    const b = graph.constant([n], bias);
    const y = graph.output([1, 30, n]);
    graph.fullyConnected(x, w, b, y, 0, { outputMinMax: { min: -2, max: 2 } });

    const program = await Program.load(buildGraphProgram(graph, { dynamism: 'dynamic_bound' }), { threads: 2, maxBatch: 8 });
    const rows = [30, 1, 17, 30, 5, 29, 2, 13, 30];
    const inputs = rows.map((m) => randomFloats(rng, m * k));
    const outputs = await Promise.all(
      inputs.map((data, i) => program.execute('forward', [{ dtype: 'float32', shape: [1, rows[i]!, k], data }])),
    );
    program.dispose();

    outputs.forEach((output, call) => {
      const m = rows[call]!;
      const input = inputs[call]!;
      const sums = new Accumulator(m * n);
      for (let r = 0; r < m; r++) {
        for (let o = 0; o < n; o++) {
          sums.add(r * n + o, bias[o]!);
          for (let i = 0; i < k; i++) sums.add(r * n + o, input[r * k + i]! * weight[o * k + i]!);
        }
      }
      const tensor = output[0] as Tensor;
      expectShape(tensor, [1, m, n], `call ${call} output`);
      expectWithin(tensor.data as Float32Array, sums.values.map((value) => Math.min(Math.max(value, -2), 2)), sums.bound(k + 1), `call ${call} output`);
    });
  });

  it('reads its filter from an input', async () => {
    const rng = makeRng(1103);
    const input = randomFloats(rng, 2 * 3);
    const weight = randomFloats(rng, 4 * 3);
    const graph = new XnnGraphBuilder();
    const x = graph.input([2, 3]);
    const w = graph.input([4, 3]);
    const y = graph.output([2, 4]);
    graph.fullyConnected(x, w, XNN_INVALID_VALUE_ID, y);
    const [output] = await runGraph(graph, [input, weight]);
    const sums = new Accumulator(8);
    for (let r = 0; r < 2; r++) for (let o = 0; o < 4; o++) for (let i = 0; i < 3; i++) sums.add(r * 4 + o, input[r * 3 + i]! * weight[o * 3 + i]!);
    expectWithin(output!.data as Float32Array, sums.values, sums.bound(3), 'FullyConnected output');
  });
});

/** Float64 batch matrix product with broadcast batch dims; b is [.., k, n] or [.., n, k] when transposed. */
function batchMatmulReference(a: Float32Array, aDims: number[], b: Float32Array, bDims: number[], transposed: boolean) {
  const m = aDims[aDims.length - 2]!;
  const k = aDims[aDims.length - 1]!;
  const n = transposed ? bDims[bDims.length - 2]! : bDims[bDims.length - 1]!;
  const batchA = aDims.slice(0, -2);
  const batchB = bDims.slice(0, -2);
  const batch = broadcastShape(batchA, batchB)!;
  const batches = product(batch);
  const sums = new Accumulator(batches * m * n);
  for (let bi = 0; bi < batches; bi++) {
    const [ia, ib] = batchOperandIndices(bi, batch, batchA, batchB);
    for (let r = 0; r < m; r++) {
      for (let c = 0; c < n; c++) {
        for (let i = 0; i < k; i++) {
          const left = a[ia * m * k + r * k + i]!;
          const right = transposed ? b[ib * n * k + c * k + i]! : b[ib * k * n + i * n + c]!;
          sums.add((bi * m + r) * n + c, left * right);
        }
      }
    }
  }
  return { dims: [...batch, m, n], sums, k };
}

describe('BatchMatrixMultiply', () => {
  const cases: [string, number[], number[], boolean][] = [
    ['[2,3,4] by [2,4,5]', [2, 3, 4], [2, 4, 5], false],
    ['[2,3,4] by transposed [2,5,4]', [2, 3, 4], [2, 5, 4], true],
    ['batch broadcast [2,1,3,4] by [1,3,4,5]', [2, 1, 3, 4], [1, 3, 4, 5], false],
    ['batch broadcast transposed', [1, 3, 7, 13], [2, 1, 5, 13], true],
    ['rank-2 B', [3, 2, 5], [5, 7], false],
    ['rank-2 A', [7, 13], [4, 13, 3], false],
    ['odd sizes', [1, 31, 17], [1, 17, 13], false],
    ['single elements', [1, 1, 1], [1, 1, 1], false],
    ['plain matrices', [5, 6], [6, 3], false],
  ];
  cases.forEach(([name, aDims, bDims, transposed], index) => {
    it(name, async () => {
      const rng = makeRng(1200 + index);
      const a = randomFloats(rng, product(aDims));
      const b = randomFloats(rng, product(bDims));
      const reference = batchMatmulReference(a, aDims, b, bDims, transposed);
      const graph = new XnnGraphBuilder();
      const x = graph.input(aDims);
      const y = graph.input(bDims);
      const z = graph.output(reference.dims);
      graph.binary('XNNBatchMatrixMultiply', x, y, z, transposed ? XNN_FLAG_TRANSPOSE_WEIGHTS : 0);
      const [output] = await runGraph(graph, [a, b]);
      expectShape(output, reference.dims);
      expectWithin(output!.data as Float32Array, reference.sums.values, reference.sums.bound(reference.k), 'BatchMatrixMultiply output');
    });
  });

  it('clamps with output_min_max', async () => {
    const rng = makeRng(1250);
    const a = randomFloats(rng, 2 * 4 * 6, -2, 2);
    const b = randomFloats(rng, 2 * 6 * 3, -2, 2);
    const reference = batchMatmulReference(a, [2, 4, 6], b, [2, 6, 3], false);
    const graph = new XnnGraphBuilder();
    const x = graph.input([2, 4, 6]);
    const y = graph.input([2, 6, 3]);
    const z = graph.output(reference.dims);
    graph.binary('XNNBatchMatrixMultiply', x, y, z, 0, { outputMinMax: { min: -1, max: 1.5 } });
    const [output] = await runGraph(graph, [a, b]);
    const expected = reference.sums.values.map((value) => Math.min(Math.max(value, -1), 1.5));
    expectWithin(output!.data as Float32Array, expected, reference.sums.bound(6), 'BatchMatrixMultiply output');
  });
});

describe('ScaledDotProductAttention', () => {
  /** softmax((q·scale)·kᵀ + mask)·v per head, in float64. */
  function attentionReference(q: Float32Array, k: Float32Array, v: Float32Array, scale: Float32Array, mask: Float32Array, heads: number, t: number, u: number, c: number, d: number): Float64Array {
    const out = new Float64Array(heads * t * d);
    for (let h = 0; h < heads; h++) {
      for (let i = 0; i < t; i++) {
        const logits = new Float64Array(u);
        for (let j = 0; j < u; j++) {
          let sum = 0;
          for (let x = 0; x < c; x++) sum += q[(h * t + i) * c + x]! * scale[x]! * k[(h * u + j) * c + x]!;
          logits[j] = sum + mask[i * u + j]!;
        }
        const max = Math.max(...logits);
        const weights = Array.from(logits, (value) => Math.exp(value - max));
        const total = weights.reduce((acc, value) => acc + value, 0);
        for (let y = 0; y < d; y++) {
          let sum = 0;
          for (let j = 0; j < u; j++) sum += (weights[j]! / total) * v[(h * u + j) * d + y]!;
          out[(h * t + i) * d + y] = sum;
        }
      }
    }
    return out;
  }

  const cases: [string, number[], number, number, number, boolean][] = [
    // name, leading dims [batch, heads], T, U, C (and D below), causal mask
    ['one head', [1, 1], 4, 6, 8, false],
    ['two batches of three heads', [2, 3], 5, 7, 4, false],
    ['causal mask', [1, 2], 6, 6, 5, true],
    ['single token', [1, 1], 1, 1, 1, false],
  ];
  cases.forEach(([name, leading, t, u, c, causal], index) => {
    it(name, async () => {
      const d = c + 3;
      const heads = product(leading);
      const rng = makeRng(1300 + index);
      const q = randomFloats(rng, heads * t * c, -2, 2);
      const k = randomFloats(rng, heads * u * c, -2, 2);
      const v = randomFloats(rng, heads * u * d);
      const scale = new Float32Array(c).fill(1 / Math.sqrt(c));
      const mask = causal ? Float32Array.from({ length: t * u }, (_, i) => (i % u <= Math.floor(i / u) ? 0 : -Infinity)) : randomFloats(rng, t * u, -1, 1);
      const graph = new XnnGraphBuilder();
      const qi = graph.input([...leading, t, c]);
      const ki = graph.input([...leading, u, c]);
      const vi = graph.input([...leading, u, d]);
      const si = graph.constant([c], scale);
      const mi = graph.input([t, u]);
      const out = graph.output([...leading, t, d]);
      graph.scaledDotProductAttention({ query: qi, key: ki, value: vi, scale: si, mask: mi }, out);
      const [output] = await runGraph(graph, [q, k, v, mask]);
      const expected = attentionReference(q, k, v, scale, mask, heads, t, u, c, d);
      expectShape(output, [...leading, t, d]);
      // Logits are sums of C <= 8 products of magnitude <= 4 (error ~1e-6 absolute), and
      // exp turns an absolute logit error into the same relative weight error; the output
      // averages values of magnitude <= 1, so 1e-5 absolute bounds the result.
      expectAllClose(output!.data as Float32Array, expected, { atol: 1e-5, rtol: 1e-5 }, 'attention output');
    });
  });

  it('rejects key heads that differ from the query', async () => {
    // XNNPACK requires equal batch and head dims (multi-query keys omit the head dim instead).
    const graph = new XnnGraphBuilder();
    const qi = graph.input([1, 4, 3, 2]);
    const ki = graph.input([1, 1, 5, 2]);
    const vi = graph.input([1, 1, 5, 2]);
    const si = graph.constant([2], [1, 1]);
    const mi = graph.input([3, 5]);
    const out = graph.output([1, 4, 3, 2]);
    graph.scaledDotProductAttention({ query: qi, key: ki, value: vi, scale: si, mask: mi }, out);
    const inputs = [new Float32Array(24), new Float32Array(10), new Float32Array(10), new Float32Array(15)];
    await expect(runGraph(graph, inputs)).rejects.toMatchObject({ code: 'ERR_DELEGATE', message: expect.stringContaining('ScaledDotProductAttention') });
  });
});

describe('BatchMatrixMultiply with empty matrices', () => {
  // A row-major [rows, 0] matrix has a row stride of 0, which must still count as a matrix
  // (strided views once rejected it).
  it('returns zeros for an inner dim of 0', async () => {
    const graph = new XnnGraphBuilder();
    const a = graph.input([2, 3, 0]);
    const b = graph.input([2, 0, 4]);
    const output = graph.output([2, 3, 4]);
    graph.binary('XNNBatchMatrixMultiply', a, b, output);

    const [result] = await runGraph(graph, [new Float32Array(0), new Float32Array(0)]);

    // Every element is an empty sum, exactly 0.
    expectShape(result, [2, 3, 4]);
    expect(Array.from(result!.data as Float32Array)).toEqual(new Array<number>(24).fill(0));
  });

  it('returns an empty result for 0 columns', async () => {
    const graph = new XnnGraphBuilder();
    const a = graph.input([2, 3, 4]);
    const b = graph.input([2, 4, 0]);
    const output = graph.output([2, 3, 0]);
    graph.binary('XNNBatchMatrixMultiply', a, b, output);

    const [result] = await runGraph(graph, [new Float32Array(24), new Float32Array(0)]);

    expectShape(result, [2, 3, 0]);
    expect((result!.data as Float32Array).length).toBe(0);
  });
});
