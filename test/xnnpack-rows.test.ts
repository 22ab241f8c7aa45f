// When the only reader of a delegate's output is a select of one token (a transformer's
// `last_hidden_state[:, 0, :]`), the XnnpackBackend computes only the rows up to that token in
// the row-wise nodes before it. These tests run such programs against float64 references,
// with the limit and in the cases where it must not apply, alone and in batches.
import { describe, expect, it } from 'vitest';

import { Program, type Tensor } from '../src/program.js';
import { Accumulator, expectWithin, makeRng, randomFloats } from './xnnpack-harness.js';
import { ProgramBuilder } from './tooling/pte-writer.js';
import { XNN_INVALID_VALUE_ID, XnnGraphBuilder, addXnnpackDelegate } from './tooling/xnnpack-writer.js';

interface Spec {
  /** Leading dims of the hidden state; the select reads dimension `dims.length - 2`. */
  dims: [number, number, number];
  /** The select's dim argument and index. */
  dim: number;
  index: number;
  /** Also return the whole delegate output as a method output. */
  exposeHidden?: boolean;
  /** End the graph with a transpose (which mixes rows) in place of the clamp. */
  transposeBeforeOutput?: boolean;
}

const K = 24;

/**
 * Builds forward(x [outer, rows, K], residual [outer, rows, N]) = select(clamp(residual + FC(x)),
 * dim, index), with the FullyConnected, Add and Clamp in one delegate.
 */
function build(spec: Spec, seed: number) {
  const [outer, rows, n] = spec.dims;
  const rng = makeRng(seed);
  const weight = randomFloats(rng, n * K);
  const bias = randomFloats(rng, n);

  const graph = new XnnGraphBuilder();
  const x = graph.input([outer, rows, K]);
  const residual = graph.input([outer, rows, n]);
  const w = graph.constant([n, K], weight);
  const b = graph.constant([n], bias);
  const projected = graph.fullyConnected(x, w, b, graph.intermediate([outer, rows, n]));
  const sum = graph.binary('XNNAdd', residual, projected, graph.intermediate([outer, rows, n]));
  let hiddenDims = [outer, rows, n];
  if (spec.transposeBeforeOutput) {
    hiddenDims = [outer, n, rows];
    graph.transpose([0, 2, 1], sum, graph.output(hiddenDims));
  } else {
    graph.clamp(sum, graph.output(hiddenDims), -1.5, 1.5);
  }

  const program = new ProgramBuilder();
  const forward = program.method('forward');
  const { delegateIndex } = addXnnpackDelegate(program, forward, graph);
  const xTensor = forward.tensor({ dtype: 'float32', sizes: [outer, rows, K] });
  const residualTensor = forward.tensor({ dtype: 'float32', sizes: [outer, rows, n] });
  const hidden = forward.tensor({ dtype: 'float32', sizes: hiddenDims });
  forward.delegateCall(delegateIndex, [xTensor, residualTensor, hidden]);
  const selectedDims = hiddenDims.filter((_, d) => d !== (spec.dim < 0 ? spec.dim + 3 : spec.dim));
  const selected = forward.tensor({ dtype: 'float32', sizes: selectedDims });
  forward.kernel('aten::select_copy.int_out', [hidden, forward.int(spec.dim), forward.int(spec.index), selected, selected]);
  forward.setInputs([xTensor, residualTensor]).setOutputs(spec.exposeHidden ? [selected, hidden] : [selected]);
  return { bytes: program.build(), weight, bias };
}

/** Float64 reference of the delegate output, [outer, rows, n] (or transposed). */
function reference(spec: Spec, weight: Float32Array, bias: Float32Array, x: Float32Array, residual: Float32Array) {
  const [outer, rows, n] = spec.dims;
  const sums = new Accumulator(outer * rows * n);
  for (let r = 0; r < outer * rows; r++) {
    for (let o = 0; o < n; o++) {
      sums.add(r * n + o, bias[o]!);
      for (let i = 0; i < K; i++) sums.add(r * n + o, x[r * K + i]! * weight[o * K + i]!);
      sums.add(r * n + o, residual[r * n + o]!);
    }
  }
  const bound = sums.bound(K + 2);
  const values = Array.from(sums.values, (value) => (spec.transposeBeforeOutput ? value : Math.min(Math.max(value, -1.5), 1.5)));
  if (!spec.transposeBeforeOutput) return { values, bound };
  // [outer, rows, n] -> [outer, n, rows]
  const transposed = new Array<number>(values.length);
  const bounds = new Array<number>(values.length);
  for (let o = 0; o < outer; o++) {
    for (let r = 0; r < rows; r++) {
      for (let c = 0; c < n; c++) {
        transposed[(o * n + c) * rows + r] = values[(o * rows + r) * n + c]!;
        bounds[(o * n + c) * rows + r] = bound((o * rows + r) * n + c);
      }
    }
  }
  return { values: transposed, bound: (i: number) => bounds[i]! };
}

/** Picks index `index` along `dim` of a row-major [a, b, c] array. */
function select(values: number[], dims: number[], dim: number, index: number): number[] {
  const d = dim < 0 ? dim + 3 : dim;
  const [a, b, c] = dims as [number, number, number];
  const out: number[] = [];
  for (let i = 0; i < a; i++) {
    for (let j = 0; j < b; j++) {
      for (let k = 0; k < c; k++) {
        if ([i, j, k][d] === index) out.push(values[(i * b + j) * c + k]!);
      }
    }
  }
  return out;
}

async function check(spec: Spec, seed: number, calls = 1, maxBatch = 8): Promise<void> {
  const { bytes, weight, bias } = build(spec, seed);
  const [outer, rows, n] = spec.dims;
  const program = await Program.load(bytes, { threads: 2, maxBatch });
  const rng = makeRng(seed + 1);
  const inputs = Array.from({ length: calls }, () => ({
    x: randomFloats(rng, outer * rows * K),
    residual: randomFloats(rng, outer * rows * n),
  }));
  const results = await Promise.all(
    inputs.map(({ x, residual }) =>
      program.execute('forward', [
        { dtype: 'float32', shape: [outer, rows, K], data: x },
        { dtype: 'float32', shape: [outer, rows, n], data: residual },
      ]),
    ),
  );
  program.dispose();
  const hiddenDims = spec.transposeBeforeOutput ? [outer, n, rows] : [outer, rows, n];
  results.forEach((outputs, call) => {
    const { x, residual } = inputs[call]!;
    const { values, bound } = reference(spec, weight, bias, x, residual);
    const expected = select(values, hiddenDims, spec.dim, spec.index);
    const indices = select(values.map((_, i) => i), hiddenDims, spec.dim, spec.index);
    expectWithin((outputs[0] as Tensor).data as Float32Array, expected, (i) => bound(indices[i]!), `call ${call} selected`);
    if (spec.exposeHidden) {
      expectWithin((outputs[1] as Tensor).data as Float32Array, values, bound, `call ${call} hidden`);
    }
  });
}

describe('rows read after a delegate', () => {
  it('computes the token a select reads', () => check({ dims: [1, 9, 40], dim: 1, index: 0 }, 8100));
  it('computes every row up to a later token', () => check({ dims: [1, 9, 40], dim: 1, index: 6 }, 8101));
  it('takes a negative dim', () => check({ dims: [1, 9, 40], dim: -2, index: 4 }, 8102));
  it('works in batches', () => check({ dims: [1, 30, 40], dim: 1, index: 0 }, 8103, 5));
  it('keeps all rows of an output the method also returns', () =>
    check({ dims: [1, 9, 40], dim: 1, index: 0, exposeHidden: true }, 8104));
  it('keeps all rows when the select reads the last dimension', () =>
    check({ dims: [1, 9, 40], dim: 2, index: 3, exposeHidden: false }, 8105));
  it('keeps all rows when a leading dimension is not 1', () => check({ dims: [3, 5, 40], dim: 1, index: 0 }, 8106));
  it('keeps all rows behind a transpose', () =>
    check({ dims: [1, 9, 40], dim: 1, index: 2, transposeBeforeOutput: true }, 8107));

  it('gives the same bits as a program that reads every row', async () => {
    // Exposing the hidden state turns the limit off; the selected token must not change.
    const spec: Spec = { dims: [1, 50, 96], dim: 1, index: 0 };
    const limited = build(spec, 8200);
    const whole = build({ ...spec, exposeHidden: true }, 8200);
    const rng = makeRng(8201);
    const x = randomFloats(rng, 50 * K);
    const residual = randomFloats(rng, 50 * 96);
    const inputs: Tensor[] = [
      { dtype: 'float32', shape: [1, 50, K], data: x },
      { dtype: 'float32', shape: [1, 50, 96], data: residual },
    ];
    const a = await Program.load(limited.bytes);
    const b = await Program.load(whole.bytes);
    const [first] = await a.execute('forward', inputs);
    const [second] = await b.execute('forward', inputs);
    a.dispose();
    b.dispose();
    expect(Array.from((first as Tensor).data as Float32Array)).toEqual(Array.from((second as Tensor).data as Float32Array));
  });
});

/**
 * Programs around one delegate that computes hidden = FC(x) (+ b when `bias` is given), for
 * the readers of `hidden` that a row limit must not cut short. `define` adds the rest of the
 * method after the DelegateCall and returns the method's outputs.
 */
function buildAround(
  rows: number,
  n: number,
  options: { graphDims?: number[]; hiddenSizes?: number[]; dimOrder?: number[]; bias?: 'dynamic' },
  define: (m: ReturnType<ProgramBuilder['method']>, hidden: number, inputs: number[]) => { inputs: number[]; outputs: number[] },
) {
  const rng = makeRng(8300 + rows + n);
  const weight = randomFloats(rng, n * K);
  const graph = new XnnGraphBuilder();
  // The delegate's dims, in memory order: [1, rows, n] unless given.
  const graphDims = options.graphDims ?? [1, rows, n];
  const xDims = [...graphDims.slice(0, -1), K];
  const x = graph.input(xDims);
  const w = graph.constant([n, K], weight);
  if (options.bias) {
    const b = graph.input([1, rows, n]);
    const product = graph.fullyConnected(x, w, XNN_INVALID_VALUE_ID, graph.intermediate(graphDims));
    graph.binary('XNNAdd', product, b, graph.output(graphDims));
  } else {
    graph.fullyConnected(x, w, XNN_INVALID_VALUE_ID, graph.output(graphDims));
  }
  const program = new ProgramBuilder();
  const forward = program.method('forward');
  const { delegateIndex } = addXnnpackDelegate(program, forward, graph);
  const xTensor = forward.tensor({ dtype: 'float32', sizes: xDims });
  const delegateInputs = [xTensor];
  if (options.bias) delegateInputs.push(forward.tensor({ dtype: 'float32', sizes: [1, rows, n], dynamism: 'dynamic_bound' }));
  const hidden = forward.tensor({ dtype: 'float32', sizes: options.hiddenSizes ?? graphDims, dimOrder: options.dimOrder });
  forward.delegateCall(delegateIndex, [...delegateInputs, hidden]);
  const io = define(forward, hidden, delegateInputs);
  forward.setInputs(io.inputs).setOutputs(io.outputs);
  return { bytes: program.build(), weight };
}

/** Float64 rows of x [rows, K] times weight [n, K]^T, as [rows][n]. */
function products(x: Float32Array, weight: Float32Array, rows: number, n: number): number[][] {
  return Array.from({ length: rows }, (_, r) =>
    Array.from({ length: n }, (_, o) => {
      let sum = 0;
      for (let i = 0; i < K; i++) sum += x[r * K + i]! * weight[o * K + i]!;
      return sum;
    }),
  );
}

const close = (actual: ArrayLike<number>, expected: number[], label: string) =>
  expectWithin(actual, expected, (i) => 1e-5 * (1 + Math.abs(expected[i]!)), label);

describe('rows a limit must keep', () => {
  it('keeps rows that a list reads', async () => {
    // select(hidden, 1, 0) and cat([hidden], 1): the cat reads every row through its list.
    const rows = 6;
    const n = 8;
    const { bytes, weight } = buildAround(rows, n, {}, (m, hidden, inputs) => {
      const selected = m.tensor({ dtype: 'float32', sizes: [1, n] });
      m.kernel('aten::select_copy.int_out', [hidden, m.int(1), m.int(0), selected, selected]);
      const joined = m.tensor({ dtype: 'float32', sizes: [1, rows, n] });
      m.kernel('aten::cat.out', [m.tensorList([hidden]), m.int(1), joined, joined]);
      return { inputs, outputs: [selected, joined] };
    });
    const x = randomFloats(makeRng(8310), rows * K);
    const program = await Program.load(bytes);
    const [, joined] = await program.execute('forward', [{ dtype: 'float32', shape: [1, rows, K], data: x }]);
    program.dispose();
    close((joined as Tensor).data as Float32Array, products(x, weight, rows, n).flat(), 'cat output');
  });

  it('follows a select index given by the caller', async () => {
    const rows = 6;
    const n = 8;
    let index = 0;
    const { bytes, weight } = buildAround(rows, n, {}, (m, hidden, inputs) => {
      index = m.int(0);
      const selected = m.tensor({ dtype: 'float32', sizes: [1, n] });
      m.kernel('aten::select_copy.int_out', [hidden, m.int(1), index, selected, selected]);
      return { inputs: [...inputs, index], outputs: [selected] };
    });
    const x = randomFloats(makeRng(8311), rows * K);
    const program = await Program.load(bytes);
    const [selected] = await program.execute('forward', [{ dtype: 'float32', shape: [1, rows, K], data: x }, 3]);
    program.dispose();
    close((selected as Tensor).data as Float32Array, products(x, weight, rows, n)[3]!, 'row 3');
  });

  it('reads rows in memory order for a channels-last output', async () => {
    // hidden is logically [1, 1, H, W] but stored [1, H, W, 1]: one graph row is one element.
    const height = 4;
    const width = 5;
    const layout = { graphDims: [1, height, width, 1], hiddenSizes: [1, 1, height, width], dimOrder: [0, 2, 3, 1] };
    const { bytes, weight } = buildAround(height * width, 1, layout, (m, hidden, inputs) => {
      const selected = m.tensor({ dtype: 'float32', sizes: [1, 1, width] });
      m.kernel('aten::select_copy.int_out', [hidden, m.int(2), m.int(1), selected, selected]);
      return { inputs, outputs: [selected] };
    });
    const x = randomFloats(makeRng(8312), height * width * K);
    const program = await Program.load(bytes);
    const [selected] = await program.execute('forward', [{ dtype: 'float32', shape: [1, height, width, K], data: x }]);
    program.dispose();
    const all = products(x, weight, height * width, 1).flat();
    close((selected as Tensor).data as Float32Array, all.slice(width, 2 * width), 'row h = 1');
  });

  it('computes every row when an operand broadcasts at run time', async () => {
    // b is [1, rows, n] in the graph but arrives as [1, 1, n], so it adds to every row.
    const rows = 6;
    const n = 8;
    const { bytes, weight } = buildAround(rows, n, { bias: 'dynamic' }, (m, hidden, inputs) => {
      const selected = m.tensor({ dtype: 'float32', sizes: [1, n] });
      m.kernel('aten::select_copy.int_out', [hidden, m.int(1), m.int(2), selected, selected]);
      return { inputs, outputs: [selected] };
    });
    const rng = makeRng(8313);
    const x = randomFloats(rng, rows * K);
    const b = randomFloats(rng, n);
    const program = await Program.load(bytes);
    const [selected] = await program.execute('forward', [
      { dtype: 'float32', shape: [1, rows, K], data: x },
      { dtype: 'float32', shape: [1, 1, n], data: b },
    ]);
    program.dispose();
    close((selected as Tensor).data as Float32Array, products(x, weight, rows, n)[2]!.map((value, o) => value + b[o]!), 'row 2');
  });
});
