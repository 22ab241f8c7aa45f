// BatchMatrixMultiply read and written through StaticReshape and StaticTranspose chains.
// At load the XnnpackBackend lets a product read its operands and write its result through
// strided views of the chains around it, and skips the chain nodes. Per call it falls back to
// running those nodes when a reshape cannot be expressed as strides for that call's shapes.
// Every case here checks values against a float64 reference built from index maps: layout
// nodes move values exactly, and each product is held to the float32 summation bound
// (k + 2)·u·Σ|a_i·b_i| that the Accumulator of the harness uses.
import { describe, expect, it } from 'vitest';

import { Program, type Tensor } from '../src/program.js';
import { Accumulator, FLOAT32_U, batchOperandIndices, broadcastShape, buildGraphProgram, exactReference, expectShape, expectWithin, makeRng, product, randomFloats, runGraph, stridesOf, unravel, type Reference } from './xnnpack-harness.js';
import { XNN_FLAG_TRANSPOSE_WEIGHTS, XnnGraphBuilder, type NodeOptions } from './tooling/xnnpack-writer.js';

/** A StaticTranspose (output dim i is input dim perm[i]) or a StaticReshape (0 is the inferred dim). */
type LayoutStep = { transpose: number[] } | { reshape: number[] };


/** Resolves the inferred dim (0) of a StaticReshape's new shape. */
function reshapeDims(dims: number[], newShape: number[]): number[] {
  const known = product(newShape.filter((size) => size !== 0));
  return newShape.map((size) => (size === 0 ? product(dims) / known : size));
}

function stepDims(dims: number[], step: LayoutStep): number[] {
  return 'transpose' in step ? step.transpose.map((axis) => dims[axis]!) : reshapeDims(dims, step.reshape);
}

function transposeReference(tensor: Reference, perm: number[]): Reference {
  const dims = perm.map((axis) => tensor.dims[axis]!);
  const strides = stridesOf(tensor.dims);
  const count = product(dims);
  const values = new Float64Array(count);
  const bounds = new Float64Array(count);
  for (let i = 0; i < count; i++) {
    const index = unravel(i, dims);
    const source = index.reduce((offset, coordinate, d) => offset + coordinate * strides[perm[d]!]!, 0);
    values[i] = tensor.values[source]!;
    bounds[i] = tensor.bounds[source]!;
  }
  return { dims, values, bounds };
}

/** Reshapes a reference tensor. A row-major reshape keeps the element order, so only the dims change. */
function reshapeReference(tensor: Reference, newShape: number[]): Reference {
  return { dims: reshapeDims(tensor.dims, newShape), values: tensor.values, bounds: tensor.bounds };
}

function applyStepsReference(tensor: Reference, steps: LayoutStep[]): Reference {
  let current = tensor;
  for (const step of steps) current = 'transpose' in step ? transposeReference(current, step.transpose) : reshapeReference(current, step.reshape);
  return current;
}

/**
 * Adds one StaticTranspose or StaticReshape node per step after value `id` and returns the
 * last step's output. That output is `last` when given, else a new intermediate value.
 */
function addLayoutSteps(graph: XnnGraphBuilder, id: number, steps: LayoutStep[], last?: number): number {
  let current = id;
  steps.forEach((step, index) => {
    const dims = stepDims(graph.dims(current), step);
    const output = index === steps.length - 1 && last !== undefined ? last : graph.intermediate(dims);
    if ('transpose' in step) graph.transpose(step.transpose, current, output);
    else graph.reshape(step.reshape, current, output);
    current = output;
  });
  return current;
}

/**
 * Computes a float64 batch matrix product with numpy batch broadcasting. b is [.., k, n], or
 * [.., n, k] when `transposed`. The bound of each element is the first-order error carried in
 * from the operands' bounds plus the float32 summation bound of k products.
 */
function matmulReference(a: Reference, b: Reference, transposed = false): Reference {
  const m = a.dims[a.dims.length - 2]!;
  const k = a.dims[a.dims.length - 1]!;
  const n = transposed ? b.dims[b.dims.length - 2]! : b.dims[b.dims.length - 1]!;
  expect(transposed ? b.dims[b.dims.length - 1] : b.dims[b.dims.length - 2], 'reference operands share k').toBe(k);

  const batchA = a.dims.slice(0, -2);
  const batchB = b.dims.slice(0, -2);
  const batch = broadcastShape(batchA, batchB);
  if (!batch) throw new Error(`batch dims [${batchA}] and [${batchB}] do not broadcast`);
  const batches = product(batch);
  const count = batches * m * n;
  const sums = new Accumulator(count);
  const carried = new Float64Array(count);

  for (let bi = 0; bi < batches; bi++) {
    const [ia, ib] = batchOperandIndices(bi, batch, batchA, batchB);

    for (let r = 0; r < m; r++) {
      for (let c = 0; c < n; c++) {
        const out = (bi * m + r) * n + c;
        for (let i = 0; i < k; i++) {
          const left = ia * m * k + r * k + i;
          const right = transposed ? ib * n * k + c * k + i : ib * k * n + i * n + c;
          const x = a.values[left]!;
          const y = b.values[right]!;
          const ex = a.bounds[left]!;
          const ey = b.bounds[right]!;
          sums.add(out, x * y);
          carried[out]! += ex * Math.abs(y) + Math.abs(x) * ey + ex * ey;
        }
      }
    }
  }

  const summation = sums.bound(k);
  const bounds = carried.map((value, i) => value + summation(i));
  return { dims: [...batch, m, n], values: sums.values, bounds };
}

function clampReference(tensor: Reference, min: number, max: number): Reference {
  // Clamping never moves two values further apart, so the bounds stay.
  return { ...tensor, values: tensor.values.map((value) => Math.min(Math.max(value, min), max)) };
}

/** An operand of a product: a graph input or constant of `dims`, then layout steps. */
interface OperandSpec {
  dims: number[];
  steps: LayoutStep[];
  constant?: boolean;
}

interface ChainCase {
  name: string;
  a: OperandSpec;
  b: OperandSpec;
  /** Layout steps after the product; the last one writes the graph output. */
  out: LayoutStep[];
  transposed?: boolean;
  options?: NodeOptions;
}

/** Builds input/constant → steps → BatchMatrixMultiply → steps → output, runs it and checks the output. */
async function checkChainCase(spec: ChainCase, seed: number): Promise<void> {
  const rng = makeRng(seed);
  const graph = new XnnGraphBuilder();
  const inputs: Float32Array[] = [];
  const operand = (operandSpec: OperandSpec): { id: number; reference: Reference } => {
    const data = randomFloats(rng, product(operandSpec.dims));
    let id: number;
    if (operandSpec.constant) {
      id = graph.constant(operandSpec.dims, data);
    } else {
      id = graph.input(operandSpec.dims);
      inputs.push(data);
    }
    return {
      id: addLayoutSteps(graph, id, operandSpec.steps),
      reference: applyStepsReference(exactReference(operandSpec.dims, data), operandSpec.steps),
    };
  };
  const a = operand(spec.a);
  const b = operand(spec.b);

  let expected = matmulReference(a.reference, b.reference, spec.transposed ?? false);
  const clamp = spec.options?.outputMinMax;
  if (clamp) {
    const unclamped = expected;
    expected = clampReference(expected, clamp.min, clamp.max);
    expect(expected.values.some((value, i) => value !== unclamped.values[i]), `${spec.name}: the clamp changes some values`).toBe(true);
  }
  const productDims = expected.dims;
  expected = applyStepsReference(expected, spec.out);

  const output = graph.output(expected.dims);
  const productValue = spec.out.length === 0 ? output : graph.intermediate(productDims);
  graph.binary('XNNBatchMatrixMultiply', a.id, b.id, productValue, spec.transposed ? XNN_FLAG_TRANSPOSE_WEIGHTS : 0, spec.options);
  addLayoutSteps(graph, productValue, spec.out, output);

  const [result] = await runGraph(graph, inputs);
  expectShape(result, expected.dims);
  expectWithin(result!.data as Float32Array, expected.values, (i) => expected.bounds[i]!, `${spec.name} output`);
}

describe('BatchMatrixMultiply through layout chains', () => {
  const cases: ChainCase[] = [
    {
      // The output chain ends at the graph output, so the product writes the caller's tensor
      // with a row stride of 10 (rows of one batch interleave with the other batch's).
      name: 'output chain to graph output',
      a: { dims: [2, 3, 4], steps: [] },
      b: { dims: [2, 4, 5], steps: [] },
      out: [{ reshape: [1, 2, 3, 5] }, { transpose: [0, 2, 1, 3] }],
    },
    {
      // [2,4,3] transposed to [2,3,4] has a last dim with stride 3, so the product gathers it.
      name: 'transposed operand with strided rows',
      a: { dims: [2, 4, 3], steps: [{ transpose: [0, 2, 1] }] },
      b: { dims: [2, 4, 5], steps: [] },
      out: [],
    },
    {
      // [3,2,4] transposed to [2,3,4] keeps rows contiguous, with a row stride of 8 (10 for b).
      name: 'transposed operand with contiguous rows',
      a: { dims: [3, 2, 4], steps: [{ transpose: [1, 0, 2] }] },
      b: { dims: [4, 2, 5], steps: [{ transpose: [1, 0, 2] }] },
      out: [],
    },
    {
      name: 'chains on both operands and the result',
      a: { dims: [1, 5, 12], steps: [{ reshape: [1, 5, 0, 4] }, { transpose: [0, 2, 1, 3] }, { reshape: [3, 5, 4] }] },
      b: { dims: [1, 6, 12], steps: [{ reshape: [1, 6, 3, 4] }, { transpose: [0, 2, 3, 1] }, { reshape: [3, 4, 6] }] },
      out: [{ reshape: [1, 3, 5, 6] }, { transpose: [0, 2, 1, 3] }, { reshape: [1, 5, 0] }],
    },
    {
      // Batch dims [2,3] against a rank-2 operand that every batch shares.
      name: 'broadcast rank-2 operand',
      a: { dims: [2, 4, 3, 5], steps: [{ transpose: [0, 2, 1, 3] }] },
      b: { dims: [5, 6], steps: [] },
      out: [{ transpose: [1, 0, 2, 3] }, { reshape: [3, 8, 6] }],
    },
    {
      // b's view is [1,3,5,6] with a leading dim of 1 broadcast against a's batch of 2, and its
      // last dim has stride 15, so it is gathered before the product.
      name: 'broadcast batch dims through a chain',
      a: { dims: [2, 1, 4, 5], steps: [] },
      b: { dims: [6, 3, 5], steps: [{ transpose: [1, 2, 0] }, { reshape: [1, 3, 5, 6] }] },
      out: [{ reshape: [6, 4, 6] }],
    },
    {
      // With XNN_FLAG_TRANSPOSE_WEIGHTS the second operand is [n, k]; here its view has
      // strided columns and is gathered.
      name: 'transpose flag with gathered operand',
      a: { dims: [2, 3, 4], steps: [] },
      b: { dims: [2, 4, 5], steps: [{ transpose: [0, 2, 1] }] },
      out: [{ transpose: [1, 0, 2] }],
      transposed: true,
    },
    {
      // The [n, k] operand's rows are contiguous with a row stride of 8.
      name: 'transpose flag with strided rows',
      a: { dims: [3, 2, 4], steps: [{ transpose: [1, 0, 2] }] },
      b: { dims: [5, 2, 4], steps: [{ transpose: [1, 0, 2] }] },
      out: [{ reshape: [1, 2, 3, 5] }, { transpose: [0, 2, 1, 3] }],
      transposed: true,
    },
    {
      name: 'constant operand through a transpose',
      a: { dims: [2, 3, 4], steps: [] },
      b: { dims: [5, 4], steps: [{ transpose: [1, 0] }], constant: true },
      out: [{ reshape: [6, 5] }],
    },
    {
      // [2,3,4] transposed to [2,4,3] and reshaped to [1,8,3] merges dims that are no longer
      // contiguous, so no strides express it and the chain nodes run.
      name: 'fallback for a merge after a transpose',
      a: { dims: [2, 3, 4], steps: [{ transpose: [0, 2, 1] }, { reshape: [1, 8, 3] }] },
      b: { dims: [1, 3, 5], steps: [] },
      out: [],
    },
    {
      // Walking back from the output, [3,2,4] seen as [2,3,4] through the transpose cannot be
      // reshaped to the product's [1,6,4], so the output chain nodes run.
      name: 'fallback in the output chain',
      a: { dims: [1, 6, 5], steps: [] },
      b: { dims: [5, 4], steps: [] },
      out: [{ reshape: [2, 3, 4] }, { transpose: [1, 0, 2] }],
    },
    {
      // The product's result seen through the output chain has strided columns, which a
      // BLAS matrix cannot have, so the output chain nodes run.
      name: 'fallback for a transposed result',
      a: { dims: [2, 3, 5], steps: [] },
      b: { dims: [2, 5, 4], steps: [] },
      out: [{ transpose: [0, 2, 1] }, { reshape: [8, 3] }],
    },
  ];
  cases.forEach((spec, index) => {
    it(spec.name, async () => {
      await checkChainCase(spec, 4000 + index);
    });
  });
});

describe('BatchMatrixMultiply clamps with layout chains', () => {
  it('clamps before an output chain', async () => {
    // A clamped product keeps its output chain, which must see the clamped values.
    await checkChainCase(
      {
        name: 'clamped product',
        a: { dims: [2, 4, 3], steps: [{ transpose: [0, 2, 1] }] },
        b: { dims: [2, 4, 6], steps: [] },
        out: [{ reshape: [1, 2, 3, 6] }, { transpose: [0, 2, 1, 3] }],
        options: { outputMinMax: { min: -0.25, max: 0.375 } },
      },
      4100,
    );
  });

  it('applies a clamp on a chain node', async () => {
    // x [2,4,3] → Transpose with output_min_max → BMM → Reshape with output_min_max → output.
    // Each clamp must apply, so neither node may be skipped as a pure layout change. The
    // bounds are exact in float32, so the output must lie within them.
    const rng = makeRng(4101);
    const aData = randomFloats(rng, 24);
    const bData = randomFloats(rng, 2 * 4 * 5);
    const graph = new XnnGraphBuilder();
    const a = graph.input([2, 4, 3]);
    const b = graph.input([2, 4, 5]);
    const aT = graph.transpose([0, 2, 1], a, graph.intermediate([2, 3, 4]), { outputMinMax: { min: -0.5, max: 0.5 } });
    const productValue = graph.binary('XNNBatchMatrixMultiply', aT, b, graph.intermediate([2, 3, 5]));
    const output = graph.output([6, 5]);
    graph.reshape([6, 5], productValue, output, { outputMinMax: { min: -0.25, max: 0.25 } });
    const [result] = await runGraph(graph, [aData, bData]);

    const transposedA = transposeReference(exactReference([2, 4, 3], aData), [0, 2, 1]);
    const clampedA = clampReference(transposedA, -0.5, 0.5);
    expect(clampedA.values.some((value, i) => value !== transposedA.values[i]), 'the first clamp changes some input values').toBe(true);
    const expected = clampReference(matmulReference(clampedA, exactReference([2, 4, 5], bData)), -0.25, 0.25);
    expectShape(result, [6, 5]);
    expectWithin(result!.data as Float32Array, expected.values, (i) => expected.bounds[i]!, 'clamped chain output');
    const data = result!.data as Float32Array;
    expect(Math.max(...data), 'max after the output clamp').toBe(0.25);
    expect(Math.min(...data), 'min after the output clamp').toBe(-0.25);
  });
});

describe('layout chains with other readers', () => {
  it('keeps a transposed operand that is also a graph output', async () => {
    const rng = makeRng(4200);
    const aData = randomFloats(rng, 24);
    const bData = randomFloats(rng, 2 * 4 * 5);
    const graph = new XnnGraphBuilder();
    const a = graph.input([2, 4, 3]);
    const b = graph.input([2, 4, 5]);
    const transposed = graph.output([2, 3, 4]);
    graph.transpose([0, 2, 1], a, transposed);
    const productOutput = graph.output([2, 3, 5]);
    graph.binary('XNNBatchMatrixMultiply', transposed, b, productOutput);
    const [transposedResult, productResult] = await runGraph(graph, [aData, bData]);

    const aT = transposeReference(exactReference([2, 4, 3], aData), [0, 2, 1]);
    expectShape(transposedResult, [2, 3, 4], 'transposed output');
    expectWithin(transposedResult!.data as Float32Array, aT.values, () => 0, 'transposed output');
    const expected = matmulReference(aT, exactReference([2, 4, 5], bData));
    expectShape(productResult, [2, 3, 5], 'product output');
    expectWithin(productResult!.data as Float32Array, expected.values, (i) => expected.bounds[i]!, 'product output');
  });

  it('keeps a transposed operand that an Add reads', async () => {
    // x → Reshape → Transpose → t. Both the product and an Add with a constant read t.
    const rng = makeRng(4201);
    const aData = randomFloats(rng, 24);
    const bData = randomFloats(rng, 2 * 4 * 5);
    const shift = randomFloats(rng, 4);
    const graph = new XnnGraphBuilder();
    const a = graph.input([24]);
    const b = graph.input([2, 4, 5]);
    const reshaped = graph.reshape([2, 4, 3], a, graph.intermediate([2, 4, 3]));
    const transposed = graph.transpose([0, 2, 1], reshaped, graph.intermediate([2, 3, 4]));
    const shifted = graph.output([2, 3, 4]);
    graph.binary('XNNAdd', transposed, graph.constant([4], shift), shifted);
    const productOutput = graph.output([2, 3, 5]);
    graph.binary('XNNBatchMatrixMultiply', transposed, b, productOutput);
    const [shiftedResult, productResult] = await runGraph(graph, [aData, bData]);

    const aT = transposeReference(exactReference([2, 4, 3], aData), [0, 2, 1]);
    const expectedShifted = aT.values.map((value, i) => value + shift[i % 4]!);
    expectShape(shiftedResult, [2, 3, 4], 'Add output');
    expectWithin(shiftedResult!.data as Float32Array, expectedShifted, (i) => FLOAT32_U * Math.abs(expectedShifted[i]!), 'Add output');
    const expected = matmulReference(aT, exactReference([2, 4, 5], bData));
    expectShape(productResult, [2, 3, 5], 'product output');
    expectWithin(productResult!.data as Float32Array, expected.values, (i) => expected.bounds[i]!, 'product output');
  });

  it('stops an output chain at a value with two readers', async () => {
    // BMM → Reshape → r → Transpose → output, and r → Negate → second output. The product may
    // write r through the reshape, but the transpose must still run and read r.
    const rng = makeRng(4202);
    const aData = randomFloats(rng, 2 * 3 * 4);
    const bData = randomFloats(rng, 2 * 4 * 5);
    const graph = new XnnGraphBuilder();
    const a = graph.input([2, 3, 4]);
    const b = graph.input([2, 4, 5]);
    const productValue = graph.binary('XNNBatchMatrixMultiply', a, b, graph.intermediate([2, 3, 5]));
    const reshaped = graph.reshape([1, 2, 3, 5], productValue, graph.intermediate([1, 2, 3, 5]));
    const transposedOutput = graph.output([1, 3, 2, 5]);
    graph.transpose([0, 2, 1, 3], reshaped, transposedOutput);
    const negatedOutput = graph.output([1, 2, 3, 5]);
    graph.unary('XNNNegate', reshaped, negatedOutput);
    const [transposedResult, negatedResult] = await runGraph(graph, [aData, bData]);

    const productReference = reshapeReference(matmulReference(exactReference([2, 3, 4], aData), exactReference([2, 4, 5], bData)), [1, 2, 3, 5]);
    const expectedTransposed = transposeReference(productReference, [0, 2, 1, 3]);
    expectShape(transposedResult, [1, 3, 2, 5], 'transposed output');
    expectWithin(transposedResult!.data as Float32Array, expectedTransposed.values, (i) => expectedTransposed.bounds[i]!, 'transposed output');
    expectShape(negatedResult, [1, 2, 3, 5], 'Negate output');
    expectWithin(negatedResult!.data as Float32Array, productReference.values.map((value) => -value), (i) => productReference.bounds[i]!, 'Negate output');
  });

  it('feeds one transposed input to both operands', async () => {
    // t = transpose(x) is read twice by the same product (t·tᵀ through a second transpose).
    const rng = makeRng(4203);
    const xData = randomFloats(rng, 2 * 4 * 3);
    const graph = new XnnGraphBuilder();
    const x = graph.input([2, 4, 3]);
    const t = graph.transpose([0, 2, 1], x, graph.intermediate([2, 3, 4]));
    const back = graph.transpose([0, 2, 1], t, graph.intermediate([2, 4, 3]));
    const output = graph.output([2, 3, 3]);
    graph.binary('XNNBatchMatrixMultiply', t, back, output);
    const [result] = await runGraph(graph, [xData]);

    const tReference = transposeReference(exactReference([2, 4, 3], xData), [0, 2, 1]);
    const expected = matmulReference(tReference, exactReference([2, 4, 3], xData));
    expectShape(result, [2, 3, 3]);
    expectWithin(result!.data as Float32Array, expected.values, (i) => expected.bounds[i]!, 'product output');
  });
});

describe('memory of layout chains', () => {
  it('keeps an input chain source until the product', async () => {
    // s = -x → Transpose → Transpose → t → BMM. The product reads s through both transposes
    // (last dim stride 4, so it gathers into t's memory), long after the first transpose, the
    // only node that reads s. If s's memory were freed there, t could take it.
    const rng = makeRng(4300);
    const xData = randomFloats(rng, 2 * 3 * 4);
    const bData = randomFloats(rng, 3 * 5);
    const graph = new XnnGraphBuilder();
    const x = graph.input([2, 3, 4]);
    const b = graph.input([3, 5]);
    const source = graph.unary('XNNNegate', x, graph.intermediate([2, 3, 4]));
    const first = graph.transpose([0, 2, 1], source, graph.intermediate([2, 4, 3]));
    const second = graph.transpose([1, 0, 2], first, graph.intermediate([4, 2, 3]));
    const output = graph.output([4, 2, 5]);
    graph.binary('XNNBatchMatrixMultiply', second, b, output);
    const [result] = await runGraph(graph, [xData, bData]);

    const negated = exactReference([2, 3, 4], Array.from(xData, (value) => -value));
    const operand = applyStepsReference(negated, [{ transpose: [0, 2, 1] }, { transpose: [1, 0, 2] }]);
    const expected = matmulReference(operand, exactReference([3, 5], bData));
    expectShape(result, [4, 2, 5]);
    expectWithin(result!.data as Float32Array, expected.values, (i) => expected.bounds[i]!, 'product output');
  });

  it('keeps an output chain target apart from the operands', async () => {
    // a = -x and b = -y live until the product. The product writes f, the end of its output
    // chain, while it reads a and b, so f must not share their memory even though the chain's
    // last node comes after their last use.
    const rng = makeRng(4301);
    const xData = randomFloats(rng, 2 * 4 * 4);
    const yData = randomFloats(rng, 2 * 4 * 4);
    const graph = new XnnGraphBuilder();
    const x = graph.input([2, 4, 4]);
    const y = graph.input([2, 4, 4]);
    const a = graph.unary('XNNNegate', x, graph.intermediate([2, 4, 4]));
    const b = graph.unary('XNNNegate', y, graph.intermediate([2, 4, 4]));
    const productValue = graph.binary('XNNBatchMatrixMultiply', a, b, graph.intermediate([2, 4, 4]));
    const reshaped = graph.reshape([1, 2, 4, 4], productValue, graph.intermediate([1, 2, 4, 4]));
    const target = graph.transpose([0, 2, 1, 3], reshaped, graph.intermediate([1, 4, 2, 4]));
    const output = graph.output([1, 4, 2, 4]);
    graph.unary('XNNNegate', target, output);
    const [result] = await runGraph(graph, [xData, yData]);

    const negate = (data: Float32Array) => Array.from(data, (value) => -value);
    const productReference = matmulReference(exactReference([2, 4, 4], negate(xData)), exactReference([2, 4, 4], negate(yData)));
    const expected = applyStepsReference(productReference, [{ reshape: [1, 2, 4, 4] }, { transpose: [0, 2, 1, 3] }]);
    expectShape(result, [1, 4, 2, 4]);
    expectWithin(result!.data as Float32Array, expected.values.map((value) => -value), (i) => expected.bounds[i]!, 'output');
  });
});

describe('layout chains with call shapes', () => {
  it('pick views per call in a batch', async () => {
    // x [r,c,4] → Transpose [1,0,2] → Reshape [0,4] → BMM with b [4,5]. The reshape merges the
    // first two dims, which strides express only when r or c is 1, so within one batch some
    // calls read through the views and the others run the chain nodes.
    const graph = new XnnGraphBuilder();
    const x = graph.input([3, 2, 4]);
    const b = graph.input([4, 5]);
    const transposed = graph.transpose([1, 0, 2], x, graph.intermediate([2, 3, 4]));
    const merged = graph.reshape([0, 4], transposed, graph.intermediate([6, 4]));
    const output = graph.output([6, 5]);
    graph.binary('XNNBatchMatrixMultiply', merged, b, output);

    const rng = makeRng(4400);
    const bData = randomFloats(rng, 20);
    const shapes = [[3, 2, 4], [1, 2, 4], [3, 1, 4], [2, 2, 4], [1, 1, 4], [3, 2, 4]];
    const inputs = shapes.map((shape) => randomFloats(rng, product(shape)));
    const program = await Program.load(buildGraphProgram(graph, { dynamism: 'dynamic_bound' }), { threads: 2, maxBatch: 8 });
    let results: Tensor[][];
    try {
      const calls = inputs.map((data, i) =>
        program.execute('forward', [
          { dtype: 'float32', shape: shapes[i]!, data },
          { dtype: 'float32', shape: [4, 5], data: bData },
        ]),
      );
      results = (await Promise.all(calls)) as Tensor[][];
    } finally {
      program.dispose();
    }

    results.forEach(([result], call) => {
      const shape = shapes[call]!;
      const operand = applyStepsReference(exactReference(shape, inputs[call]!), [{ transpose: [1, 0, 2] }, { reshape: [0, 4] }]);
      const expected = matmulReference(operand, exactReference([4, 5], bData));
      expectShape(result, [shape[0]! * shape[1]!, 5], `call ${call} output`);
      expectWithin(result!.data as Float32Array, expected.values, (i) => expected.bounds[i]!, `call ${call} output`);
    });
  });
});

/** Sizes of the attention block: S tokens, H heads of Dh dims, hidden size D = H·Dh. */
const TOKENS = 5;
const HEADS = 3;
const HEAD_DIM = 4;
const HIDDEN = HEADS * HEAD_DIM;

interface AttentionWeights {
  filters: Record<'query' | 'key' | 'value' | 'out', Float32Array>;
  biases: Record<'query' | 'key' | 'value' | 'out', Float32Array>;
}

function randomAttentionWeights(rng: () => number): AttentionWeights {
  const names = ['query', 'key', 'value', 'out'] as const;
  const filters = {} as AttentionWeights['filters'];
  const biases = {} as AttentionWeights['biases'];
  for (const name of names) {
    filters[name] = randomFloats(rng, HIDDEN * HIDDEN, -0.3, 0.3);
    biases[name] = randomFloats(rng, HIDDEN, -0.1, 0.1);
  }
  return { filters, biases };
}

/**
 * transformers' CLIP self-attention as the tooling lowers it to XNNPACK nodes (the
 * `attentionGraph` of test/tooling/clip-program.ts): q/k/v FullyConnected, heads split by
 * StaticReshape and StaticTranspose, 3-D BatchMatrixMultiply products between reshapes,
 * scale, Softmax, heads merged, out_proj and the residual Add.
 */
function buildAttentionGraph(weights: AttentionWeights): XnnGraphBuilder {
  const s = TOKENS;
  const h = HEADS;
  const dh = HEAD_DIM;
  const d = HIDDEN;
  const graph = new XnnGraphBuilder();
  const normed = graph.input([1, s, d]);
  const residual = graph.input([1, s, d]);
  const output = graph.output([1, s, d]);

  const project = (name: 'query' | 'key' | 'value'): number => {
    const filter = graph.constant([d, d], weights.filters[name]);
    const bias = graph.constant([d], weights.biases[name]);
    return graph.fullyConnected(normed, filter, bias, graph.intermediate([1, s, d]));
  };
  const splitHeads = (projected: number): number => {
    const heads = graph.reshape([1, s, 0, dh], projected, graph.intermediate([1, s, h, dh]));
    return graph.transpose([0, 2, 1, 3], heads, graph.intermediate([1, h, s, dh]));
  };
  const query = splitHeads(project('query'));
  const key = splitHeads(project('key'));
  const value = splitHeads(project('value'));

  const keyT = graph.transpose([0, 1, 3, 2], key, graph.intermediate([1, h, dh, s]));
  const query3 = graph.reshape([h, s, dh], query, graph.intermediate([h, s, dh]));
  const keyT3 = graph.reshape([h, dh, s], keyT, graph.intermediate([h, dh, s]));
  const scores3 = graph.binary('XNNBatchMatrixMultiply', query3, keyT3, graph.intermediate([h, s, s]));
  const scores = graph.reshape([1, h, s, s], scores3, graph.intermediate([1, h, s, s]));
  const scale = graph.constant([], [dh ** -0.5]);
  const scaled = graph.binary('XNNMultiply', scores, scale, graph.intermediate([1, h, s, s]));
  const probabilities = graph.unary('XNNSoftmax', scaled, graph.intermediate([1, h, s, s]));

  const probabilities3 = graph.reshape([h, s, s], probabilities, graph.intermediate([h, s, s]));
  const value3 = graph.reshape([h, s, dh], value, graph.intermediate([h, s, dh]));
  const context3 = graph.binary('XNNBatchMatrixMultiply', probabilities3, value3, graph.intermediate([h, s, dh]));
  const context = graph.reshape([1, h, s, dh], context3, graph.intermediate([1, h, s, dh]));
  const merged = graph.transpose([0, 2, 1, 3], context, graph.intermediate([1, s, h, dh]));
  const flat = graph.reshape([1, s, 0], merged, graph.intermediate([1, s, d]));

  const outFilter = graph.constant([d, d], weights.filters.out);
  const outBias = graph.constant([d], weights.biases.out);
  const attended = graph.fullyConnected(flat, outFilter, outBias, graph.intermediate([1, s, d]));
  graph.binary('XNNAdd', residual, attended, output);
  return graph;
}

/**
 * Computes a float64 FullyConnected over the last dim (filter [n, k], bias [n]). The bound adds the
 * input's error carried through the filter and the float32 bound of k + 1 summed terms.
 */
function linearReference(x: Reference, filter: Float32Array, bias: Float32Array): Reference {
  const k = x.dims[x.dims.length - 1]!;
  const n = bias.length;
  const rows = product(x.dims) / k;
  const sums = new Accumulator(rows * n);
  const carried = new Float64Array(rows * n);
  for (let r = 0; r < rows; r++) {
    for (let o = 0; o < n; o++) {
      sums.add(r * n + o, bias[o]!);
      for (let i = 0; i < k; i++) {
        sums.add(r * n + o, x.values[r * k + i]! * filter[o * k + i]!);
        carried[r * n + o]! += x.bounds[r * k + i]! * Math.abs(filter[o * k + i]!);
      }
    }
  }
  const summation = sums.bound(k + 1);
  return { dims: [...x.dims.slice(0, -1), n], values: sums.values, bounds: carried.map((value, i) => value + summation(i)) };
}

/**
 * Computes a float64 softmax over the last dim. A logit error of at most E in a row changes
 * each probability by a relative 2E to first order. The float32 steps add relative errors of
 * u·|s_j - max| for the subtraction, 3 ulp = 6u for exp_fast (its measured maximum, stated in
 * addon/backends/vector_math.h), (n - 1)·u for the sum and 2u for the reciprocal and the
 * scaling. The bound (|s_j - max| + n + 12)·u covers those with 5u to spare.
 */
function softmaxReference(x: Reference): Reference {
  const n = x.dims[x.dims.length - 1]!;
  const rows = product(x.dims) / n;
  const values = new Float64Array(x.values.length);
  const bounds = new Float64Array(x.values.length);
  for (let r = 0; r < rows; r++) {
    const row = x.values.subarray(r * n, (r + 1) * n);
    const max = Math.max(...row);
    const maxError = Math.max(...x.bounds.subarray(r * n, (r + 1) * n));
    const weights = Array.from(row, (value) => Math.exp(value - max));
    const total = weights.reduce((sum, weight) => sum + weight, 0);
    for (let j = 0; j < n; j++) {
      const probability = weights[j]! / total;
      values[r * n + j] = probability;
      bounds[r * n + j] = probability * (2 * maxError + (Math.abs(row[j]! - max) + n + 12) * FLOAT32_U);
    }
  }
  return { dims: [...x.dims], values, bounds };
}

/** Computes the float64 reference of buildAttentionGraph's output for one call. */
function attentionReference(normedData: Float32Array, residualData: Float32Array, weights: AttentionWeights): Reference {
  const s = TOKENS;
  const h = HEADS;
  const dh = HEAD_DIM;
  const normed = exactReference([1, s, HIDDEN], normedData);
  const project = (name: 'query' | 'key' | 'value'): Reference => linearReference(normed, weights.filters[name], weights.biases[name]);
  const splitHeads: LayoutStep[] = [{ reshape: [1, s, 0, dh] }, { transpose: [0, 2, 1, 3] }];

  const query3 = applyStepsReference(project('query'), [...splitHeads, { reshape: [h, s, dh] }]);
  const keyT3 = applyStepsReference(project('key'), [...splitHeads, { transpose: [0, 1, 3, 2] }, { reshape: [h, dh, s] }]);
  const value3 = applyStepsReference(project('value'), [...splitHeads, { reshape: [h, s, dh] }]);

  // The scale dh^-0.5 = 0.5 is a power of two, so scaling is exact in float32.
  const scale = dh ** -0.5;
  expect(scale, 'attention scale').toBe(0.5);
  const scores = matmulReference(query3, keyT3);
  const scaled: Reference = { dims: scores.dims, values: scores.values.map((value) => value * scale), bounds: scores.bounds.map((bound) => bound * scale) };
  const probabilities = softmaxReference(scaled);
  const context3 = matmulReference(probabilities, value3);
  const flat = applyStepsReference(context3, [{ reshape: [1, h, s, dh] }, { transpose: [0, 2, 1, 3] }, { reshape: [1, s, 0] }]);
  const attended = linearReference(flat, weights.filters.out, weights.biases.out);
  const values = attended.values.map((value, i) => value + residualData[i]!);
  // The residual Add rounds once more.
  const bounds = attended.bounds.map((bound, i) => bound + FLOAT32_U * Math.abs(values[i]!));
  return { dims: attended.dims, values, bounds };
}

/**
 * Checks one attention output. The propagated bounds are first order (products of two
 * errors are dropped), so the check allows twice the bound.
 */
function expectAttention(result: Tensor | undefined, expected: Reference, label: string): void {
  expectShape(result, expected.dims, label);
  expectWithin(result!.data as Float32Array, expected.values, (i) => 2 * expected.bounds[i]!, label);
}

describe('attention block', () => {
  it('matches the reference for one call', async () => {
    const rng = makeRng(4500);
    const weights = randomAttentionWeights(rng);
    const normed = randomFloats(rng, TOKENS * HIDDEN);
    const residual = randomFloats(rng, TOKENS * HIDDEN);
    const [result] = await runGraph(buildAttentionGraph(weights), [normed, residual]);
    expectAttention(result, attentionReference(normed, residual, weights), 'attention output');
  });

  it('matches the reference for concurrent calls', async () => {
    // The first call starts alone. The three that wait behind it run as one batch, each with
    // its own views and intermediate memory.
    const rng = makeRng(4501);
    const weights = randomAttentionWeights(rng);
    const calls = Array.from({ length: 4 }, () => ({
      normed: randomFloats(rng, TOKENS * HIDDEN),
      residual: randomFloats(rng, TOKENS * HIDDEN),
    }));
    const program = await Program.load(buildGraphProgram(buildAttentionGraph(weights)), { threads: 2, maxBatch: 8 });
    let results: Tensor[][];
    try {
      const pending = calls.map(({ normed, residual }) =>
        program.execute('forward', [
          { dtype: 'float32', shape: [1, TOKENS, HIDDEN], data: normed },
          { dtype: 'float32', shape: [1, TOKENS, HIDDEN], data: residual },
        ]),
      );
      results = (await Promise.all(pending)) as Tensor[][];
    } finally {
      program.dispose();
    }
    results.forEach(([result], call) => {
      const { normed, residual } = calls[call]!;
      expectAttention(result, attentionReference(normed, residual, weights), `call ${call} attention output`);
    });
  });

  it('matches the reference with one head', async () => {
    // With a single head the split and merge reshapes see contiguous memory, so every view is
    // a plain matrix and only the key is gathered.
    const rng = makeRng(4502);
    const graph = new XnnGraphBuilder();
    const s = 4;
    const dh = 6;
    const x = graph.input([1, s, dh]);
    const key = graph.input([1, s, dh]);
    const q = graph.transpose([0, 2, 1, 3], graph.reshape([1, s, 1, dh], x, graph.intermediate([1, s, 1, dh])), graph.intermediate([1, 1, s, dh]));
    const k = graph.transpose([0, 2, 1, 3], graph.reshape([1, s, 1, dh], key, graph.intermediate([1, s, 1, dh])), graph.intermediate([1, 1, s, dh]));
    const kT = graph.transpose([0, 1, 3, 2], k, graph.intermediate([1, 1, dh, s]));
    const q3 = graph.reshape([1, s, dh], q, graph.intermediate([1, s, dh]));
    const kT3 = graph.reshape([1, dh, s], kT, graph.intermediate([1, dh, s]));
    const scores3 = graph.binary('XNNBatchMatrixMultiply', q3, kT3, graph.intermediate([1, s, s]));
    const output = graph.output([1, 1, s, s]);
    graph.reshape([1, 1, s, s], scores3, output);
    const xData = randomFloats(rng, s * dh);
    const keyData = randomFloats(rng, s * dh);
    const [result] = await runGraph(graph, [xData, keyData]);

    const split: LayoutStep[] = [{ reshape: [1, s, 1, dh] }, { transpose: [0, 2, 1, 3] }];
    const q3Reference = applyStepsReference(exactReference([1, s, dh], xData), [...split, { reshape: [1, s, dh] }]);
    const kT3Reference = applyStepsReference(exactReference([1, s, dh], keyData), [...split, { transpose: [0, 1, 3, 2] }, { reshape: [1, dh, s] }]);
    const expected = reshapeReference(matmulReference(q3Reference, kT3Reference), [1, 1, s, s]);
    expectShape(result, [1, 1, s, s]);
    expectWithin(result!.data as Float32Array, expected.values, (i) => expected.bounds[i]!, 'scores output');
  });
});
