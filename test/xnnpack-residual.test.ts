// At load the XnnpackBackend folds an Add of a FullyConnected's output x and a residual r of
// x's shape into the FullyConnected, which then writes x + r straight into the Add's output.
// A call whose run-time shapes make the Add broadcast runs the Add instead. These tests check
// folded graphs, and graphs the fold must leave alone, against float64 references, alone and
// in batches, with dynamic shapes and with row limits.
import { describe, expect, it } from 'vitest';

import { Program, type Tensor } from '../src/program.js';
import { Accumulator, FLOAT32_U, broadcastReference, broadcastShape, buildGraphProgram, exactReference, expectShape, expectWithin, makeRng, product, randomFloats, saveSeedProgram, type Reference } from './xnnpack-harness.js';
import { ProgramBuilder } from './tooling/pte-writer.js';
import { XNN_FLAG_TRANSPOSE_WEIGHTS, XNN_INVALID_VALUE_ID, XnnGraphBuilder, addXnnpackDelegate } from './tooling/xnnpack-writer.js';

/** Largest finite float32: a clamp to ±FLT_MAX changes no value but stops the fold. */
const FLT_MAX = 3.4028234663852886e38;
/** QuickGELU's scale, x * sigmoid(1.702 x). */
const GELU_SCALE = 1.702;

interface Range {
  min: number;
  max: number;
}


function clampTo(value: number, range?: Range): number {
  return range ? Math.min(Math.max(value, range.min), range.max) : value;
}

/** a [.., k] times weight [n, k] transposed, plus bias, then clamped. */
function linearReference(a: ArrayLike<number>, aDims: number[], weight: ArrayLike<number>, n: number, bias?: ArrayLike<number>, clamp?: Range): Reference {
  const k = aDims[aDims.length - 1]!;
  const rows = product(aDims) / k;
  const sums = new Accumulator(rows * n);
  for (let r = 0; r < rows; r++) {
    for (let o = 0; o < n; o++) {
      if (bias) sums.add(r * n + o, bias[o]!);
      for (let i = 0; i < k; i++) sums.add(r * n + o, a[r * k + i]! * weight[o * k + i]!);
    }
  }
  const bound = sums.bound(k + 1);
  return {
    dims: [...aDims.slice(0, -1), n],
    values: sums.values.map((value) => clampTo(value, clamp)),
    bounds: Float64Array.from(sums.values, (_, i) => bound(i)),
  };
}

function quickGeluReference(x: Reference, clamp?: Range): Reference {
  const values = x.values.map((value) => clampTo(value / (1 + Math.exp(-GELU_SCALE * value)), clamp));
  // |d/dx x·sigmoid(1.702x)| <= 1.13, and the float32 steps and the fast exp add a few ulps.
  const bounds = x.bounds.map((bound, i) => 1.2 * bound + 2e-6 * Math.abs(values[i]!) + 1e-30);
  return { dims: x.dims, values, bounds };
}

/** left + right with numpy broadcasting, then clamped. */
function addReference(left: Reference, right: Reference, clamp?: Range): Reference {
  const sum = broadcastReference(left.values, left.dims, right.values, right.dims, (p, q) => p + q);
  const inherited = broadcastReference(left.bounds, left.dims, right.bounds, right.dims, (p, q) => p + q);
  const magnitude = broadcastReference(left.values.map(Math.abs), left.dims, right.values.map(Math.abs), right.dims, (p, q) => p + q);
  return {
    dims: sum.dims,
    values: sum.values.map((value) => clampTo(value, clamp)),
    bounds: inherited.values.map((bound, i) => bound + 2 * FLOAT32_U * magnitude.values[i]! + 1e-30),
  };
}

function squareReference(x: Reference): Reference {
  const values = x.values.map((value) => value * value);
  const bounds = x.bounds.map((bound, i) => 2 * Math.abs(x.values[i]!) * bound + bound * bound + 2 * FLOAT32_U * values[i]! + 1e-30);
  return { dims: x.dims, values, bounds };
}

function expectReference(tensor: Tensor | undefined, reference: Reference, label: string): void {
  expectShape(tensor, reference.dims, label);
  expectWithin(tensor!.data as Float32Array, reference.values, (i) => reference.bounds[i]!, label);
}

function bits(tensor: Tensor): number[] {
  const data = tensor.data as Float32Array;
  return Array.from(new Uint32Array(data.buffer, data.byteOffset, data.length));
}

/** Runs every call at once on one program, so that calls after the first share batches of up to maxBatch. */
async function runConcurrently(bytes: Uint8Array, calls: Tensor[][], maxBatch: number): Promise<Tensor[][]> {
  saveSeedProgram(bytes);
  const program = await Program.load(bytes, { threads: 2, maxBatch });
  try {
    const results = await Promise.all(calls.map((inputs) => program.execute('forward', inputs)));
    return results as Tensor[][];
  } finally {
    program.dispose();
  }
}

const float32 = (shape: number[], data: Float32Array): Tensor => ({ dtype: 'float32', shape, data });

/** Where the Add's other operand comes from. */
type ResidualSource =
  | 'input' // a graph input
  | 'constant'
  | 'negated before' // Negate of a graph input, a node before the FullyConnected
  | 'negated after' // the same, with the Negate node after the FullyConnected
  | 'linear input' // the FullyConnected's own input (needs k = n)
  | 'linear output'; // x itself: Add(x, x)

interface Spec {
  /** Dims of the FullyConnected's input, whose last dim is k. */
  inputDims: number[];
  n: number;
  /** Filter as a constant (packed at load) or as a graph input (the BLAS path). */
  filter: 'constant' | 'input';
  /** Constant filter stored [k, n] (XNN_FLAG_TRANSPOSE_WEIGHTS). */
  transposed?: boolean;
  noBias?: boolean;
  /** FullyConnected -> Multiply by 1.702 -> Sigmoid -> Multiply by x, which fuse_nodes folds into one node. */
  quickGelu?: boolean;
  residual: ResidualSource;
  /** Dims of the residual, x's dims by default. */
  residualDims?: number[];
  /** Add(r, x) instead of Add(x, r). */
  residualFirst?: boolean;
  linearClamp?: Range;
  /** Clamp on QuickGELU's last Multiply, which the fused node takes over. */
  productClamp?: Range;
  addClamp?: Range;
  /** Also make x (the activated FullyConnected output) a graph output. */
  exposeLinear?: boolean;
  /** Also read x with Multiply(x, x), a graph output. */
  squareLinear?: boolean;
}

/** Per-call data: the FullyConnected input, the filter when it is an input, the residual source when it is one. */
interface CallData {
  a: Float32Array;
  weight?: Float32Array;
  u?: Float32Array;
}

function linearDims(spec: Spec): number[] {
  return [...spec.inputDims.slice(0, -1), spec.n];
}

function residualDims(spec: Spec): number[] {
  return spec.residualDims ?? linearDims(spec);
}

function residualFromInput(spec: Spec): boolean {
  return spec.residual === 'input' || spec.residual === 'negated before' || spec.residual === 'negated after';
}

/**
 * Builds y = Add(x, r) (or Add(r, x)) over x = FullyConnected(a, w, b), optionally with
 * QuickGELU, as `spec` sets. Graph outputs, in order: x when exposed, y, x * x when asked.
 */
function buildResidualGraph(spec: Spec, seed: number) {
  const k = spec.inputDims[spec.inputDims.length - 1]!;
  const { n } = spec;
  const rng = makeRng(seed);
  const weight = randomFloats(rng, n * k);
  const bias = spec.noBias ? undefined : randomFloats(rng, n);
  const constantResidual = randomFloats(rng, product(residualDims(spec)));
  const xDims = linearDims(spec);
  const rDims = residualDims(spec);

  const graph = new XnnGraphBuilder();
  const a = graph.input(spec.inputDims);
  let w: number;
  if (spec.filter === 'input') {
    w = graph.input([n, k]);
  } else if (spec.transposed) {
    const stored = new Float32Array(n * k);
    for (let o = 0; o < n; o++) for (let i = 0; i < k; i++) stored[i * n + o] = weight[o * k + i]!;
    w = graph.constant([k, n], stored);
  } else {
    w = graph.constant([n, k], weight);
  }
  const b = bias ? graph.constant([n], bias) : XNN_INVALID_VALUE_ID;
  const u = residualFromInput(spec) ? graph.input(rDims) : XNN_INVALID_VALUE_ID;
  let r = XNN_INVALID_VALUE_ID;
  if (spec.residual === 'input') r = u;
  if (spec.residual === 'constant') r = graph.constant(rDims, constantResidual);
  if (spec.residual === 'linear input') r = a;
  if (spec.residual === 'negated before' || spec.residual === 'negated after') r = graph.intermediate(rDims);
  const x = spec.exposeLinear ? graph.output(xDims) : graph.intermediate(xDims);
  if (spec.residual === 'linear output') r = x;
  const y = graph.output(broadcastShape(xDims, rDims)!);

  if (spec.residual === 'negated before') graph.unary('XNNNegate', u, r);
  const flags = spec.filter === 'constant' && spec.transposed ? XNN_FLAG_TRANSPOSE_WEIGHTS : 0;
  const linearOptions = spec.linearClamp ? { outputMinMax: spec.linearClamp } : undefined;
  if (spec.quickGelu) {
    const linear = graph.intermediate(xDims);
    graph.fullyConnected(a, w, b, linear, flags, linearOptions);
    const scaled = graph.intermediate(xDims);
    graph.binary('XNNMultiply', linear, graph.constant([], [GELU_SCALE]), scaled);
    const gate = graph.intermediate(xDims);
    graph.unary('XNNSigmoid', scaled, gate);
    graph.binary('XNNMultiply', linear, gate, x, 0, spec.productClamp ? { outputMinMax: spec.productClamp } : undefined);
  } else {
    graph.fullyConnected(a, w, b, x, flags, linearOptions);
  }
  if (spec.residual === 'negated after') graph.unary('XNNNegate', u, r);
  const addOptions = spec.addClamp ? { outputMinMax: spec.addClamp } : undefined;
  if (spec.residualFirst) graph.binary('XNNAdd', r, x, y, 0, addOptions);
  else graph.binary('XNNAdd', x, r, y, 0, addOptions);
  if (spec.squareLinear) graph.binary('XNNMultiply', x, x, graph.output(xDims));

  /** Returns the call's program inputs, in graph input order. */
  const inputsOf = (call: CallData): Tensor[] => {
    const inputs = [float32(spec.inputDims, call.a)];
    if (spec.filter === 'input') inputs.push(float32([n, k], call.weight!));
    if (u !== XNN_INVALID_VALUE_ID) inputs.push(float32(rDims, call.u!));
    return inputs;
  };

  /** Computes the float64 references of the graph outputs, in output order. */
  const referencesOf = (call: CallData): Reference[] => {
    let activated = linearReference(call.a, spec.inputDims, spec.filter === 'input' ? call.weight! : weight, n, bias, spec.linearClamp);
    if (spec.quickGelu) activated = quickGeluReference(activated, spec.productClamp);
    let residual: Reference;
    switch (spec.residual) {
      case 'input':
        residual = exactReference(rDims, call.u!);
        break;
      case 'constant':
        residual = exactReference(rDims, constantResidual);
        break;
      case 'negated before':
      case 'negated after':
        residual = exactReference(rDims, Array.from(call.u!, (value) => -value));
        break;
      case 'linear input':
        residual = exactReference(rDims, call.a);
        break;
      case 'linear output':
        residual = activated;
        break;
    }
    const references: Reference[] = [];
    if (spec.exposeLinear) references.push(activated);
    references.push(addReference(activated, residual, spec.addClamp));
    if (spec.squareLinear) references.push(squareReference(activated));
    return references;
  };

  /** Draws random data for one call. */
  const callData = (callRng: () => number): CallData => ({
    a: randomFloats(callRng, product(spec.inputDims)),
    weight: spec.filter === 'input' ? randomFloats(callRng, n * k) : undefined,
    u: u !== XNN_INVALID_VALUE_ID ? randomFloats(callRng, product(rDims)) : undefined,
  });

  return { graph, inputsOf, referencesOf, callData };
}

/**
 * Runs `callCount` calls of the spec's graph at once and checks every output of every call.
 * With several calls, the first runs alone and the others as one batch, and the batched
 * results must have the bits of the same calls run with maxBatch 1.
 */
async function checkSpec(spec: Spec, seed: number, callCount = 1): Promise<void> {
  const { graph, inputsOf, referencesOf, callData } = buildResidualGraph(spec, seed);
  const bytes = buildGraphProgram(graph);
  const rng = makeRng(seed + 1);
  const calls = Array.from({ length: callCount }, () => callData(rng));
  const inputs = calls.map(inputsOf);
  const results = await runConcurrently(bytes, inputs, 8);
  results.forEach((outputs, call) => {
    const references = referencesOf(calls[call]!);
    expect(outputs.length, `call ${call} output count`).toBe(references.length);
    references.forEach((reference, index) => expectReference(outputs[index], reference, `call ${call} output ${index}`));
  });
  if (callCount === 1) return;
  const alone = await runConcurrently(bytes, inputs, 1);
  results.forEach((outputs, call) => {
    outputs.forEach((output, index) => expect(bits(output), `call ${call} output ${index} batched vs alone`).toEqual(bits(alone[call]![index]!)));
  });
}

/** Six calls: the first runs alone, the other five as one batch. */
const BATCH_CALLS = 6;

describe('residual Add fold', () => {
  const folded: [string, Spec][] = [
    ['constant filter, Add(x, r)', { inputDims: [1, 5, 37], n: 40, filter: 'constant', residual: 'input' }],
    ['constant filter, Add(r, x)', { inputDims: [1, 5, 37], n: 40, filter: 'constant', residual: 'input', residualFirst: true }],
    ['filter from an input, Add(x, r)', { inputDims: [1, 4, 23], n: 17, filter: 'input', residual: 'input' }],
    ['filter from an input, Add(r, x)', { inputDims: [1, 4, 23], n: 17, filter: 'input', residual: 'input', residualFirst: true }],
    ['[in, out] filter', { inputDims: [3, 19], n: 33, filter: 'constant', transposed: true, residual: 'input' }],
    ['no bias', { inputDims: [6, 16], n: 48, filter: 'constant', noBias: true, residual: 'input' }],
    ['constant residual', { inputDims: [2, 3, 13], n: 31, filter: 'constant', residual: 'constant' }],
    ['residual is the linear input', { inputDims: [1, 7, 36], n: 36, filter: 'constant', residual: 'linear input' }],
    ['residual from an earlier node', { inputDims: [1, 5, 20], n: 24, filter: 'constant', residual: 'negated before' }],
    ['residual from an earlier node, BLAS', { inputDims: [1, 5, 20], n: 24, filter: 'input', residual: 'negated before', residualFirst: true }],
    ['rows in many row blocks', { inputDims: [1, 160, 64], n: 70, filter: 'constant', residual: 'input' }],
    ['single row and column', { inputDims: [1, 1], n: 1, filter: 'constant', residual: 'input' }],
    ['QuickGELU, constant filter', { inputDims: [1, 5, 37], n: 40, filter: 'constant', quickGelu: true, residual: 'input' }],
    ['QuickGELU, Add(r, x)', { inputDims: [1, 3, 19], n: 33, filter: 'constant', quickGelu: true, residual: 'input', residualFirst: true }],
    ['QuickGELU, filter from an input', { inputDims: [1, 4, 23], n: 17, filter: 'input', quickGelu: true, residual: 'input' }],
    ['QuickGELU, many row blocks', { inputDims: [1, 50, 96], n: 160, filter: 'constant', quickGelu: true, residual: 'input' }],
  ];
  const unfolded: [string, Spec][] = [
    ['clamp on the Add', { inputDims: [1, 6, 16], n: 48, filter: 'constant', residual: 'input', addClamp: { min: -0.5, max: 0.75 } }],
    ['clamp on the linear node', { inputDims: [1, 6, 16], n: 48, filter: 'constant', residual: 'input', linearClamp: { min: -0.5, max: 0.5 } }],
    ['clamp on the linear node, BLAS', { inputDims: [1, 6, 16], n: 12, filter: 'input', residual: 'input', linearClamp: { min: -0.5, max: 0.5 } }],
    ['x also a graph output', { inputDims: [1, 5, 37], n: 40, filter: 'constant', residual: 'input', exposeLinear: true }],
    ['x also a graph output, BLAS', { inputDims: [1, 4, 23], n: 17, filter: 'input', residual: 'input', exposeLinear: true }],
    ['x also read by a Multiply', { inputDims: [1, 5, 37], n: 40, filter: 'constant', residual: 'input', squareLinear: true }],
    ['residual from a later node', { inputDims: [1, 5, 20], n: 24, filter: 'constant', residual: 'negated after' }],
    ['residual from a later node, BLAS', { inputDims: [1, 5, 20], n: 24, filter: 'input', residual: 'negated after', residualFirst: true }],
    ['residual broadcasts', { inputDims: [7, 29], n: 40, filter: 'constant', residual: 'input', residualDims: [1, 40] }],
    ['residual broadcasts, BLAS', { inputDims: [7, 29], n: 20, filter: 'input', residual: 'input', residualDims: [1, 20], residualFirst: true }],
    ['residual broadcasts over rank', { inputDims: [2, 3, 10], n: 9, filter: 'constant', residual: 'input', residualDims: [9] }],
    ['x broadcasts', { inputDims: [1, 29], n: 40, filter: 'constant', residual: 'input', residualDims: [6, 40] }],
    ['residual of higher rank', { inputDims: [4, 11], n: 18, filter: 'constant', residual: 'input', residualDims: [1, 4, 18] }],
    ['Add(x, x)', { inputDims: [1, 5, 37], n: 40, filter: 'constant', residual: 'linear output' }],
    ['Add(x, x), BLAS', { inputDims: [1, 4, 23], n: 17, filter: 'input', residual: 'linear output' }],
    ['QuickGELU, clamp on the product', { inputDims: [1, 6, 16], n: 48, filter: 'constant', quickGelu: true, residual: 'input', productClamp: { min: -0.1, max: 0.75 } }],
    ['QuickGELU, x also read', { inputDims: [1, 3, 11], n: 9, filter: 'constant', quickGelu: true, residual: 'input', squareLinear: true }],
  ];

  let seed = 9100;
  for (const [group, cases] of [['folded', folded], ['not folded', unfolded]] as const) {
    describe(group, () => {
      for (const [name, spec] of cases) {
        const caseSeed = (seed += 10);
        it(name, () => checkSpec(spec, caseSeed));
        it(`${name} in a batch`, () => checkSpec(spec, caseSeed + 5, BATCH_CALLS));
      }
    });
  }

  it('runs products deeper than one weight slice', async () => {
    // 1024 columns on 2 threads make slices of 128 columns. Their 2700 x 128 weights (1.3 MiB)
    // exceed the 1.25 MiB slice limit of packed_gemm.cpp, so the product runs in two k slices,
    // and the residual must be added once, after the second.
    await checkSpec({ inputDims: [1, 7, 2700], n: 1024, filter: 'constant', residual: 'input' }, 9500, 3);
  });

  describe('gives the bits of an unfolded Add', () => {
    // A clamp to ±FLT_MAX changes no value here but keeps the Add a node of its own. The fold
    // rounds x and then x + r, as the two nodes do, so the bits must agree.
    const cases: [string, Spec][] = [
      ['constant filter', { inputDims: [1, 50, 96], n: 160, filter: 'constant', residual: 'input' }],
      ['filter from an input', { inputDims: [1, 20, 40], n: 33, filter: 'input', residual: 'input', residualFirst: true }],
      ['QuickGELU', { inputDims: [1, 50, 96], n: 160, filter: 'constant', quickGelu: true, residual: 'input' }],
    ];
    cases.forEach(([name, spec], index) => {
      it(name, async () => {
        const seed = 9600 + 10 * index;
        const foldedGraph = buildResidualGraph(spec, seed);
        const separateGraph = buildResidualGraph({ ...spec, addClamp: { min: -FLT_MAX, max: FLT_MAX } }, seed);
        const rng = makeRng(seed + 1);
        const calls = Array.from({ length: 3 }, () => foldedGraph.callData(rng));
        const inputs = calls.map(foldedGraph.inputsOf);
        const foldedResults = await runConcurrently(buildGraphProgram(foldedGraph.graph), inputs, 8);
        const separateResults = await runConcurrently(buildGraphProgram(separateGraph.graph), inputs, 8);
        foldedResults.forEach((outputs, call) => {
          expectReference(outputs[0], foldedGraph.referencesOf(calls[call]!)[0]!, `call ${call} folded output`);
          expect(bits(outputs[0]!), `call ${call} folded vs separate`).toEqual(bits(separateResults[call]![0]!));
        });
      });
    });
  });

  it('adds the outputs of two linear nodes', async () => {
    // y = FC1(a1) + FC2(a2): the second FullyConnected takes the first's output as residual.
    const rng = makeRng(9700);
    const [k1, k2, n, rows] = [21, 34, 27, 5];
    const w1 = randomFloats(rng, n * k1);
    const w2 = randomFloats(rng, n * k2);
    const b2 = randomFloats(rng, n);
    const graph = new XnnGraphBuilder();
    const a1 = graph.input([rows, k1]);
    const a2 = graph.input([rows, k2]);
    const x1 = graph.fullyConnected(a1, graph.constant([n, k1], w1), XNN_INVALID_VALUE_ID, graph.intermediate([rows, n]));
    const x2 = graph.fullyConnected(a2, graph.constant([n, k2], w2), graph.constant([n], b2), graph.intermediate([rows, n]));
    graph.binary('XNNAdd', x1, x2, graph.output([rows, n]));
    const calls = Array.from({ length: BATCH_CALLS }, () => ({ a1: randomFloats(rng, rows * k1), a2: randomFloats(rng, rows * k2) }));
    const results = await runConcurrently(
      buildGraphProgram(graph),
      calls.map((call) => [float32([rows, k1], call.a1), float32([rows, k2], call.a2)]),
      8,
    );
    results.forEach(([output], call) => {
      const first = linearReference(calls[call]!.a1, [rows, k1], w1, n);
      const second = linearReference(calls[call]!.a2, [rows, k2], w2, n, b2);
      expectReference(output, addReference(first, second), `call ${call} output`);
    });
  });

  it('chains two residual blocks', async () => {
    // h1 = FC1(a) + a, h2 = FC2(h1) + h1: the first fold's sum is the second's input and residual.
    const rng = makeRng(9710);
    const [width, rows] = [32, 9];
    const w1 = randomFloats(rng, width * width);
    const w2 = randomFloats(rng, width * width);
    const b1 = randomFloats(rng, width);
    const graph = new XnnGraphBuilder();
    const dims = [1, rows, width];
    const a = graph.input(dims);
    const x1 = graph.fullyConnected(a, graph.constant([width, width], w1), graph.constant([width], b1), graph.intermediate(dims));
    const h1 = graph.binary('XNNAdd', x1, a, graph.intermediate(dims));
    const x2 = graph.fullyConnected(h1, graph.constant([width, width], w2), XNN_INVALID_VALUE_ID, graph.intermediate(dims));
    graph.binary('XNNAdd', h1, x2, graph.output(dims));
    const inputs = Array.from({ length: BATCH_CALLS }, () => randomFloats(rng, rows * width));
    const results = await runConcurrently(buildGraphProgram(graph), inputs.map((data) => [float32(dims, data)]), 8);
    results.forEach(([output], call) => {
      const input = exactReference(dims, inputs[call]!);
      const first = addReference(linearReference(inputs[call]!, dims, w1, width, b1), input);
      // The second product reads h1 rounded to float32, whose errors carry through w2 (|w| <= 1).
      const second = linearReference(first.values, dims, w2, width);
      second.bounds = second.bounds.map((bound, i) => {
        const row = Math.floor(i / width);
        let carried = 0;
        for (let j = 0; j < width; j++) carried += first.bounds[row * width + j]!;
        return bound + carried;
      });
      expectReference(output, addReference(second, first), `call ${call} output`);
    });
  });

  it('shares one residual between two Adds', async () => {
    // y1 = FC1(a) + r and y2 = r + FC2(a): both fold, and r must reach both unchanged.
    const rng = makeRng(9720);
    const [k, n, rows] = [18, 26, 4];
    const w1 = randomFloats(rng, n * k);
    const w2 = randomFloats(rng, n * k);
    const graph = new XnnGraphBuilder();
    const a = graph.input([rows, k]);
    const r = graph.input([rows, n]);
    const x1 = graph.fullyConnected(a, graph.constant([n, k], w1), XNN_INVALID_VALUE_ID, graph.intermediate([rows, n]));
    const x2 = graph.fullyConnected(a, graph.constant([n, k], w2), XNN_INVALID_VALUE_ID, graph.intermediate([rows, n]));
    graph.binary('XNNAdd', x1, r, graph.output([rows, n]));
    graph.binary('XNNAdd', r, x2, graph.output([rows, n]));
    const calls = Array.from({ length: BATCH_CALLS }, () => ({ a: randomFloats(rng, rows * k), r: randomFloats(rng, rows * n) }));
    const results = await runConcurrently(buildGraphProgram(graph), calls.map((call) => [float32([rows, k], call.a), float32([rows, n], call.r)]), 8);
    results.forEach(([first, second], call) => {
      const residual = exactReference([rows, n], calls[call]!.r);
      expectReference(first, addReference(linearReference(calls[call]!.a, [rows, k], w1, n), residual), `call ${call} first output`);
      expectReference(second, addReference(linearReference(calls[call]!.a, [rows, k], w2, n), residual), `call ${call} second output`);
    });
  });
});

describe('residual Add with dynamic shapes', () => {
  // The graph's x and r are [1, 6, n], and calls pass [1, m, ·] with m up to 6. A call whose r
  // is [1, 1, n] (or whose x is) makes the Add broadcast, so that call must run the Add itself.
  const K = 19;
  const N = 22;
  const M = 6;

  /** [rows of a, rows of r] per call: equal shapes and both kinds of broadcast, interleaved. */
  const shapes: [number, number][] = [
    [6, 6],
    [6, 1],
    [1, 6],
    [3, 3],
    [4, 1],
    [6, 6],
    [2, 2],
    [1, 1],
    [1, 5],
  ];

  for (const filter of ['constant', 'input'] as const) {
    it(`mixes folded and broadcast calls, ${filter} filter`, async () => {
      const rng = makeRng(filter === 'constant' ? 9800 : 9810);
      const weight = randomFloats(rng, N * K);
      const bias = randomFloats(rng, N);
      const graph = new XnnGraphBuilder();
      const a = graph.input([1, M, K]);
      const w = filter === 'constant' ? graph.constant([N, K], weight) : graph.input([N, K]);
      const r = graph.input([1, M, N]);
      const x = graph.fullyConnected(a, w, graph.constant([N], bias), graph.intermediate([1, M, N]));
      graph.binary('XNNAdd', x, r, graph.output([1, M, N]));
      const bytes = buildGraphProgram(graph, { dynamism: 'dynamic_bound' });

      const calls = shapes.map(([aRows, rRows]) => ({
        aDims: [1, aRows, K],
        rDims: [1, rRows, N],
        a: randomFloats(rng, aRows * K),
        r: randomFloats(rng, rRows * N),
        weight: randomFloats(rng, N * K),
      }));
      const inputs = calls.map((call) => {
        const tensors = [float32(call.aDims, call.a)];
        if (filter === 'input') tensors.push(float32([N, K], call.weight));
        tensors.push(float32(call.rDims, call.r));
        return tensors;
      });
      // maxBatch 8: the first call alone, the other eight as one batch. maxBatch 1: each alone.
      for (const maxBatch of [8, 1]) {
        const results = await runConcurrently(bytes, inputs, maxBatch);
        results.forEach(([output], index) => {
          const call = calls[index]!;
          const linear = linearReference(call.a, call.aDims, filter === 'constant' ? weight : call.weight, N, bias);
          expectReference(output, addReference(linear, exactReference(call.rDims, call.r)), `maxBatch ${maxBatch} call ${index} (a ${call.aDims}, r ${call.rDims})`);
        });
      }
    });
  }
});

describe('residual Add under a row limit', () => {
  // forward(a, r) = select_copy(Add(FC(a), r), 1, index): only the rows up to the selected
  // token are computed, and the fold must add the residual to those rows.
  const K = 24;

  interface RowSpec {
    rows: number;
    n: number;
    index: number;
    filter: 'constant' | 'input';
    /** r is Negate(u), a row-wise node before the FullyConnected whose rows are limited too. */
    negated?: boolean;
    residualFirst?: boolean;
    /** Also return the whole delegate output, which turns the limit off. */
    exposeHidden?: boolean;
  }

  function buildRowProgram(spec: RowSpec, weight: Float32Array, bias: Float32Array): Uint8Array {
    const { rows, n } = spec;
    const graph = new XnnGraphBuilder();
    const a = graph.input([1, rows, K]);
    const w = spec.filter === 'constant' ? graph.constant([n, K], weight) : graph.input([n, K]);
    const u = graph.input([1, rows, n]);
    let r = u;
    if (spec.negated) r = graph.unary('XNNNegate', u, graph.intermediate([1, rows, n]));
    const x = graph.fullyConnected(a, w, graph.constant([n], bias), graph.intermediate([1, rows, n]));
    const hiddenId = graph.output([1, rows, n]);
    if (spec.residualFirst) graph.binary('XNNAdd', r, x, hiddenId);
    else graph.binary('XNNAdd', x, r, hiddenId);

    const program = new ProgramBuilder();
    const forward = program.method('forward');
    const { delegateIndex } = addXnnpackDelegate(program, forward, graph);
    const aTensor = forward.tensor({ dtype: 'float32', sizes: [1, rows, K] });
    const inputs = [aTensor];
    if (spec.filter === 'input') inputs.push(forward.tensor({ dtype: 'float32', sizes: [n, K] }));
    inputs.push(forward.tensor({ dtype: 'float32', sizes: [1, rows, n] }));
    const hidden = forward.tensor({ dtype: 'float32', sizes: [1, rows, n] });
    forward.delegateCall(delegateIndex, [...inputs, hidden]);
    const selected = forward.tensor({ dtype: 'float32', sizes: [1, n] });
    forward.kernel('aten::select_copy.int_out', [hidden, forward.int(1), forward.int(spec.index), selected, selected]);
    forward.setInputs(inputs).setOutputs(spec.exposeHidden ? [selected, hidden] : [selected]);
    return program.build();
  }

  async function checkRows(spec: RowSpec, seed: number, callCount: number): Promise<void> {
    const { rows, n } = spec;
    const rng = makeRng(seed);
    const weight = randomFloats(rng, n * K);
    const bias = randomFloats(rng, n);
    const bytes = buildRowProgram(spec, weight, bias);
    const calls = Array.from({ length: callCount }, () => ({
      a: randomFloats(rng, rows * K),
      weight: randomFloats(rng, n * K),
      u: randomFloats(rng, rows * n),
    }));
    const inputs = calls.map((call) => {
      const tensors = [float32([1, rows, K], call.a)];
      if (spec.filter === 'input') tensors.push(float32([n, K], call.weight));
      tensors.push(float32([1, rows, n], call.u));
      return tensors;
    });
    const results = await runConcurrently(bytes, inputs, 8);
    results.forEach((outputs, index) => {
      const call = calls[index]!;
      const dims = [1, rows, n];
      const linear = linearReference(call.a, [1, rows, K], spec.filter === 'constant' ? weight : call.weight, n, bias);
      const residual = exactReference(dims, spec.negated ? Array.from(call.u, (value) => -value) : call.u);
      const hidden = addReference(linear, residual);
      const start = spec.index * n;
      const token: Reference = {
        dims: [1, n],
        values: hidden.values.slice(start, start + n),
        bounds: hidden.bounds.slice(start, start + n),
      };
      expectReference(outputs[0], token, `call ${index} token ${spec.index}`);
      if (spec.exposeHidden) expectReference(outputs[1], hidden, `call ${index} hidden state`);
    });
  }

  it('adds the residual to the first token', () => checkRows({ rows: 9, n: 40, index: 0, filter: 'constant' }, 9900, 1));
  it('adds the residual to a later token', () => checkRows({ rows: 9, n: 40, index: 6, filter: 'constant', residualFirst: true }, 9910, 1));
  it('adds the residual to the last token', () => checkRows({ rows: 9, n: 40, index: 8, filter: 'constant' }, 9920, 1));
  it('adds a limited residual node', () => checkRows({ rows: 9, n: 40, index: 5, filter: 'constant', negated: true }, 9930, 1));
  it('adds the residual with a BLAS filter', () => checkRows({ rows: 9, n: 17, index: 4, filter: 'input' }, 9940, 1));
  it('adds the residual in a batch', () => checkRows({ rows: 30, n: 40, index: 3, filter: 'constant', negated: true }, 9950, BATCH_CALLS));
  it('adds the residual in a BLAS batch', () => checkRows({ rows: 12, n: 17, index: 7, filter: 'input' }, 9960, BATCH_CALLS));
  it('keeps every row of a returned output', () => checkRows({ rows: 9, n: 40, index: 2, filter: 'constant', exposeHidden: true }, 9970, BATCH_CALLS));
});
