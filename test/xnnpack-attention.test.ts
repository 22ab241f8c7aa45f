/**
 * The fused attention block (addon/backends/attention.cpp). It is a BatchMatrixMultiply of the
 * queries by the transposed keys, a Multiply by the scale, a Softmax and a BatchMatrixMultiply
 * by the values, with the heads split and merged by reshapes and transposes as
 * test/tooling/clip-program.ts lowers transformers' CLIP attention. The backend runs the block
 * as one pass per head when the shapes fit the kernel (at most 64 keys and 64 value columns),
 * and as separate nodes otherwise. Both must match a float64 computation.
 */
import { describe, expect, it } from 'vitest';
import { Program, type Tensor } from '../src/index.js';
import { XNN_FLAG_TRANSPOSE_WEIGHTS, XnnGraphBuilder } from './tooling/xnnpack-writer.js';
import { buildGraphProgram, expectShape, expectWithin, FLOAT32_U, makeRng, randomFloats, runGraph } from './xnnpack-harness.js';

interface Sizes {
  heads: number;
  /** Query count. */
  m: number;
  /** Key count, which is also the value count. */
  n: number;
  /** Query and key dims per head. */
  dk: number;
  /** Value dims per head. */
  dv: number;
}

/** Inputs [1, m, H·dk] queries, [1, n, H·dk] keys, [1, n, H·dv] values; output [1, m, H·dv]. */
function buildAttention({ heads: h, m, n, dk, dv }: Sizes, scale: number): XnnGraphBuilder {
  const graph = new XnnGraphBuilder();
  const queries = graph.input([1, m, h * dk]);
  const keys = graph.input([1, n, h * dk]);
  const values = graph.input([1, n, h * dv]);
  const output = graph.output([1, m, h * dv]);
  // view(1, S, -1, head_dim).transpose(1, 2): [1, H, S, head_dim].
  const splitHeads = (x: number, s: number, dh: number): number => {
    const split = graph.reshape([1, s, 0, dh], x, graph.intermediate([1, s, h, dh]));
    return graph.transpose([0, 2, 1, 3], split, graph.intermediate([1, h, s, dh]));
  };
  const q3 = graph.reshape([h, m, dk], splitHeads(queries, m, dk), graph.intermediate([h, m, dk]));
  const keyT = graph.transpose([0, 1, 3, 2], splitHeads(keys, n, dk), graph.intermediate([1, h, dk, n]));
  const keyT3 = graph.reshape([h, dk, n], keyT, graph.intermediate([h, dk, n]));
  const scores3 = graph.binary('XNNBatchMatrixMultiply', q3, keyT3, graph.intermediate([h, m, n]));
  const scores = graph.reshape([1, h, m, n], scores3, graph.intermediate([1, h, m, n]));
  const scaled = graph.binary('XNNMultiply', scores, graph.constant([], [scale]), graph.intermediate([1, h, m, n]));
  const probabilities = graph.unary('XNNSoftmax', scaled, graph.intermediate([1, h, m, n]));
  const probabilities3 = graph.reshape([h, m, n], probabilities, graph.intermediate([h, m, n]));
  const v3 = graph.reshape([h, n, dv], splitHeads(values, n, dv), graph.intermediate([h, n, dv]));
  const context3 = graph.binary('XNNBatchMatrixMultiply', probabilities3, v3, graph.intermediate([h, m, dv]));
  const context = graph.reshape([1, h, m, dv], context3, graph.intermediate([1, h, m, dv]));
  const merged = graph.transpose([0, 2, 1, 3], context, graph.intermediate([1, m, h, dv]));
  graph.reshape([1, m, 0], merged, output);
  return graph;
}

interface Expected {
  values: Float64Array;
  bounds: Float64Array;
}

/**
 * Float64 attention with a first-order bound on a float32 computation's error. The scores carry
 * their summation error (dk + 2 roundings, Higham §3.1) and the scale's rounding. A probability's
 * relative error adds its score's and the row maximum's errors to the exponential (3 ulp), the
 * row sum (n + 2 roundings) and the reciprocal. The output adds its own sum's error over n
 * terms. Subnormal probabilities may count as zero, hence a tiny absolute slack.
 */
function attentionReference({ heads: h, m, n, dk, dv }: Sizes, scale: number, q: Float32Array, k: Float32Array, v: Float32Array): Expected {
  const values = new Float64Array(m * h * dv);
  const bounds = new Float64Array(m * h * dv);
  for (let head = 0; head < h; head++) {
    for (let i = 0; i < m; i++) {
      const scores = new Float64Array(n);
      const scoreErrors = new Float64Array(n);
      for (let j = 0; j < n; j++) {
        let sum = 0;
        let magnitude = 0;
        for (let d = 0; d < dk; d++) {
          const term = q[i * h * dk + head * dk + d]! * k[j * h * dk + head * dk + d]!;
          sum += term;
          magnitude += Math.abs(term);
        }
        scores[j] = sum * scale;
        scoreErrors[j] = ((dk + 2) * magnitude + Math.abs(sum)) * FLOAT32_U * Math.abs(scale);
      }
      const maximum = Math.max(...scores);
      const worstScore = Math.max(...scoreErrors);
      const exps = Array.from(scores, (s) => Math.exp(s - maximum));
      const total = exps.reduce((a, b) => a + b, 0);
      const probabilities = exps.map((e) => e / total);
      for (let e = 0; e < dv; e++) {
        let sum = 0;
        let carried = 0;
        let magnitude = 0;
        for (let j = 0; j < n; j++) {
          const value = v[j * h * dv + head * dv + e]!;
          const p = probabilities[j]!;
          sum += p * value;
          magnitude += Math.abs(p * value);
          const relative = 2 * (scoreErrors[j]! + worstScore) + (n + 12) * FLOAT32_U;
          carried += p * relative * Math.abs(value);
        }
        const index = i * h * dv + head * dv + e;
        values[index] = sum;
        bounds[index] = carried + (n + 2) * FLOAT32_U * magnitude + 1e-30;
      }
    }
  }
  return { values, bounds };
}

interface Case {
  label: string;
  sizes: Sizes;
  /** Factor on the queries, which widens the softmax. */
  spread?: number;
}

const CASES: Case[] = [
  { label: 'ViT-B/32 (12 heads, 50 tokens, 64 dims)', sizes: { heads: 12, m: 50, n: 50, dk: 64, dv: 64 } },
  { label: 'one of everything', sizes: { heads: 1, m: 1, n: 1, dk: 1, dv: 1 } },
  { label: 'odd sizes', sizes: { heads: 2, m: 7, n: 17, dk: 3, dv: 5 } },
  { label: '64 keys and deep keys', sizes: { heads: 3, m: 13, n: 64, dk: 70, dv: 16 } },
  { label: 'keys in one block', sizes: { heads: 2, m: 6, n: 16, dk: 16, dv: 48 } },
  { label: '65 keys, past the fused kernel', sizes: { heads: 2, m: 5, n: 65, dk: 8, dv: 8 } },
  { label: '65 value columns, past the fused kernel', sizes: { heads: 2, m: 5, n: 9, dk: 8, dv: 65 } },
  { label: 'a wide softmax (probabilities down to subnormals)', sizes: { heads: 2, m: 9, n: 33, dk: 16, dv: 16 }, spread: 40 },
];

describe('attention block', () => {
  CASES.forEach(({ label, sizes, spread = 1 }, index) => {
    it(`matches float64: ${label}`, async () => {
      const rng = makeRng(7100 + index);
      const { heads: h, m, n, dk, dv } = sizes;
      const scale = dk ** -0.5;
      const q = randomFloats(rng, m * h * dk).map((x) => x * spread);
      const k = randomFloats(rng, n * h * dk);
      const v = randomFloats(rng, n * h * dv);
      const [result] = await runGraph(buildAttention(sizes, scale), [q, k, v]);
      const expected = attentionReference(sizes, scale, q, k, v);
      expectShape(result, [1, m, h * dv]);
      expectWithin(result!.data as Float32Array, expected.values, (i) => 2 * expected.bounds[i]!, label);
    });
  });

  it('NaN key gives NaN rows', async () => {
    // A NaN score makes its row's sum NaN, so every output of the row is NaN, fused (4 keys)
    // or not (65 keys).
    for (const n of [4, 65]) {
      const sizes: Sizes = { heads: 1, m: 3, n, dk: 4, dv: 4 };
      const rng = makeRng(7300 + n);
      const q = randomFloats(rng, 3 * 4);
      const k = randomFloats(rng, n * 4);
      const v = randomFloats(rng, n * 4);
      k[5] = Number.NaN;
      const [result] = await runGraph(buildAttention(sizes, 0.5), [q, k, v]);
      const values = Array.from(result!.data as Float32Array);
      expect(values.every((value) => Number.isNaN(value)), `${n} keys: ${values.join(', ')}`).toBe(true);
    }
  });

  /** What a layout case adds between the scores and the second product. */
  interface LayoutSteps {
    probabilities: number;
    valueRows: number;
    outputRows: number;
  }

  /**
   * Runs q [2, m, 4] times k [2, n, 4] (the product with the transpose flag), then the steps
   * that `build` adds up to the probabilities, then their product with v [2, valueRows, 3].
   * Returns the output and `expected` of the float64 scores (0.5 q k^T, one [m, n] per head).
   */
  async function layoutCase(
    m: number,
    n: number,
    build: (graph: XnnGraphBuilder, scores: number) => LayoutSteps,
    expected: (scores: Float64Array[], v: Float32Array) => Float64Array,
  ) {
    const graph = new XnnGraphBuilder();
    const q = graph.input([2, m, 4]);
    const k = graph.input([2, n, 4]);
    const scores = graph.binary('XNNBatchMatrixMultiply', q, k, graph.intermediate([2, m, n]), XNN_FLAG_TRANSPOSE_WEIGHTS);
    const { probabilities, valueRows, outputRows } = build(graph, scores);
    const v = graph.input([2, valueRows, 3]);
    graph.binary('XNNBatchMatrixMultiply', probabilities, v, graph.output([2, outputRows, 3]));

    const rng = makeRng(7400 + m + n);
    const qData = randomFloats(rng, 2 * m * 4, -2, 2);
    const kData = randomFloats(rng, 2 * n * 4, -2, 2);
    const vData = randomFloats(rng, 2 * valueRows * 3);
    const headScores: Float64Array[] = [];
    for (let head = 0; head < 2; head++) {
      const s = new Float64Array(m * n);
      for (let i = 0; i < m; i++) {
        for (let j = 0; j < n; j++) {
          let sum = 0;
          for (let d = 0; d < 4; d++) sum += qData[(head * m + i) * 4 + d]! * kData[(head * n + j) * 4 + d]!;
          s[i * n + j] = 0.5 * sum;
        }
      }
      headScores.push(s);
    }
    const [result] = await runGraph(graph, [qData, kData, vData]);
    return { result: result!.data as Float32Array, want: expected(headScores, vData) };
  }

  /** Returns the softmax of each row of `scores` (rows of `width`). */
  function softmaxRows(scores: Float64Array, width: number): Float64Array {
    const out = new Float64Array(scores.length);
    for (let r = 0; r < scores.length / width; r++) {
      const row = scores.subarray(r * width, (r + 1) * width);
      const max = Math.max(...row);
      const e = Array.from(row, (x) => Math.exp(x - max));
      const total = e.reduce((a, b) => a + b, 0);
      e.forEach((x, j) => (out[r * width + j] = x / total));
    }
    return out;
  }

  /** Returns the transpose of a row-major [rows, columns] matrix. */
  function transposed(matrix: Float64Array, rows: number, columns: number): Float64Array {
    const out = new Float64Array(matrix.length);
    for (let i = 0; i < rows; i++) {
      for (let j = 0; j < columns; j++) out[j * rows + i] = matrix[i * columns + j]!;
    }
    return out;
  }

  /** Returns each head's [rows, inner] probabilities times its [inner, 3] values, as [2, rows, 3]. */
  function timesValues(probabilities: Float64Array[], v: Float32Array, rows: number, inner: number): Float64Array {
    const out = new Float64Array(probabilities.length * rows * 3);
    probabilities.forEach((p, head) => {
      for (let i = 0; i < rows; i++) {
        for (let e = 0; e < 3; e++) {
          let sum = 0;
          for (let j = 0; j < inner; j++) sum += p[i * inner + j]! * v[(head * inner + j) * 3 + e]!;
          out[(head * rows + i) * 3 + e] = sum;
        }
      }
    });
    return out;
  }

  it('transposed probabilities stay unfused', async () => {
    // out = softmax(q k^T)^T v with m = n: the shapes fit the fused kernel, the layout does not.
    const m = 5;
    const { result, want } = await layoutCase(
      m,
      m,
      (graph, scores) => {
        const scaled = graph.binary('XNNMultiply', scores, graph.constant([], [0.5]), graph.intermediate([2, m, m]));
        const p = graph.unary('XNNSoftmax', scaled, graph.intermediate([2, m, m]));
        return { probabilities: graph.transpose([0, 2, 1], p, graph.intermediate([2, m, m])), valueRows: m, outputRows: m };
      },
      (scores, v) => timesValues(scores.map((s) => transposed(softmaxRows(s, m), m, m)), v, m, m),
    );
    expectWithin(result, want, () => 1e-5, 'transposed probabilities');
  });

  it('regrouped softmax rows stay unfused', async () => {
    // The scores are reshaped to [2, m * n] for the softmax and back to [2, m, n] after it, so
    // each softmax row spans all of a head's scores.
    const m = 3;
    const n = 4;
    const { result, want } = await layoutCase(
      m,
      n,
      (graph, scores) => {
        const flat = graph.reshape([2, m * n], scores, graph.intermediate([2, m * n]));
        const scaled = graph.binary('XNNMultiply', flat, graph.constant([], [0.5]), graph.intermediate([2, m * n]));
        const p = graph.unary('XNNSoftmax', scaled, graph.intermediate([2, m * n]));
        return { probabilities: graph.reshape([2, m, n], p, graph.intermediate([2, m, n])), valueRows: n, outputRows: m };
      },
      (scores, v) => timesValues(scores.map((s) => softmaxRows(s, m * n)), v, m, n),
    );
    expectWithin(result, want, () => 1e-5, 'regrouped softmax');
  });

  it('8 concurrent calls, 2 threads and 1', async () => {
    // The first call runs alone and the seven behind it as one batch. On two threads that
    // batch runs in two shares (3 and 4 calls), each on one thread.
    const sizes: Sizes = { heads: 4, m: 20, n: 20, dk: 32, dv: 32 };
    const scale = 32 ** -0.5;
    const rng = makeRng(7200);
    const bytes = buildGraphProgram(buildAttention(sizes, scale));
    const calls = Array.from({ length: 8 }, () => ({
      q: randomFloats(rng, 20 * 4 * 32),
      k: randomFloats(rng, 20 * 4 * 32),
      v: randomFloats(rng, 20 * 4 * 32),
    }));
    for (const threads of [2, 1]) {
      const program = await Program.load(bytes, { threads, maxBatch: 8 });
      let results: Tensor[][];
      try {
        const tensor = (data: Float32Array) => ({ dtype: 'float32' as const, shape: [1, 20, 128], data });
        results = (await Promise.all(calls.map(({ q, k, v }) => program.execute('forward', [tensor(q), tensor(k), tensor(v)])))) as Tensor[][];
      } finally {
        program.dispose();
      }
      expect(results).toHaveLength(8);
      results.forEach(([result], call) => {
        const { q, k, v } = calls[call]!;
        const expected = attentionReference(sizes, scale, q, k, v);
        expectWithin(result!.data as Float32Array, expected.values, (i) => 2 * expected.bounds[i]!, `${threads} threads, call ${call}`);
      });
    }
  });
});
