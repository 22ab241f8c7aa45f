// Conformance of the XnnpackBackend's data movement nodes (StaticTranspose, StaticReshape,
// StaticSlice, Concatenate2..5, StaticConstantPad) and of shapes that come from the call:
// DYNAMIC_BOUND program inputs feeding the delegate, with outputs resized to match.
// Every node here only moves float32 values, so outputs must equal the reference exactly.
import { describe, expect, it } from 'vitest';

import { Program, type Tensor } from '../src/program.js';
import { expectAllClose } from './helpers.js';
import { Accumulator, buildGraphProgram, expectShape, expectWithin, makeRng, product, randomFloats, runGraph, runGraphCalls, stridesOf, unravel } from './xnnpack-harness.js';
import { XNN_INVALID_VALUE_ID, XnnGraphBuilder } from './tooling/xnnpack-writer.js';

describe('StaticTranspose', () => {
  const cases: [number[], number[]][] = [
    [[3, 5], [1, 0]],
    [[2, 3, 4], [2, 0, 1]],
    [[1, 7, 13, 3], [0, 3, 1, 2]],
    [[2, 3, 5, 7], [3, 2, 1, 0]],
    [[2, 1, 3, 1, 2, 3], [5, 4, 3, 2, 1, 0]],
    [[31], [0]],
    // Copied in tiles of 16 x 16 (partial at the edges): NCHW to NHWC, whose height and width
    // merge into one dimension, and a swap of the last two dims as for an attention key.
    [[1, 3, 37, 41], [0, 2, 3, 1]],
    [[2, 19, 3, 33], [0, 1, 3, 2]],
    [[5, 17, 18], [0, 2, 1]],
  ];
  cases.forEach(([dims, perm], index) => {
    it(`${JSON.stringify(dims)} by ${JSON.stringify(perm)}`, async () => {
      const input = randomFloats(makeRng(3000 + index), product(dims));
      const outDims = perm.map((axis) => dims[axis]!);
      const graph = new XnnGraphBuilder();
      const x = graph.input(dims);
      const y = graph.output(outDims);
      graph.transpose(perm, x, y);
      const [output] = await runGraph(graph, [input]);
      const strides = stridesOf(dims);
      const expected = Array.from({ length: input.length }, (_, i) => {
        const index = unravel(i, outDims);
        return input[index.reduce((offset, coordinate, d) => offset + coordinate * strides[perm[d]!]!, 0)]!;
      });
      expectShape(output, outDims);
      expectAllClose(output!.data as Float32Array, expected, {}, 'transpose output');
    });
  });

  it('rejects a repeated axis', async () => {
    const graph = new XnnGraphBuilder();
    const x = graph.input([2, 2]);
    const y = graph.output([2, 2]);
    graph.transpose([0, 0], x, y);
    await expect(runGraph(graph, [new Float32Array(4)])).rejects.toMatchObject({ code: 'ERR_DELEGATE', message: expect.stringContaining('StaticTranspose') });
  });
});

describe('StaticReshape', () => {
  const cases: [number[], number[], number[]][] = [
    [[2, 3, 4], [6, 4], [6, 4]],
    [[2, 3, 4], [0, 2], [12, 2]],
    [[2, 3, 4], [4, 0, 3], [4, 2, 3]],
    [[7, 13], [91], [91]],
    [[1, 1, 5], [5, 1, 1, 1], [5, 1, 1, 1]],
  ];
  cases.forEach(([dims, newShape, outDims], index) => {
    it(`${JSON.stringify(dims)} to ${JSON.stringify(newShape)}`, async () => {
      const input = randomFloats(makeRng(3100 + index), product(dims));
      const graph = new XnnGraphBuilder();
      const x = graph.input(dims);
      const y = graph.output(outDims);
      graph.reshape(newShape, x, y);
      const [output] = await runGraph(graph, [input]);
      expectShape(output, outDims);
      expectAllClose(output!.data as Float32Array, input, {}, 'reshape output');
    });
  });

  it('infers the dim of a dynamic input', async () => {
    // The program input is DYNAMIC_BOUND [8, 6]; each call passes [rows, 6], and the reshape
    // to [0, 3] must produce [2·rows, 3].
    const graph = new XnnGraphBuilder();
    const x = graph.input([8, 6]);
    const y = graph.output([16, 3]);
    graph.reshape([0, 3], x, y);
    const rowsList = [1, 3, 8, 5];
    const rng = makeRng(3150);
    const inputs = rowsList.map((rows) => randomFloats(rng, rows * 6));
    const results = await runGraphCalls(graph, inputs.map((data, i) => [{ data, shape: [rowsList[i]!, 6] }]), { dynamism: 'dynamic_bound' });
    results.forEach(([output], i) => {
      expectShape(output, [2 * rowsList[i]!, 3], `call ${i}`);
      expectAllClose(output!.data as Float32Array, inputs[i]!, {}, `call ${i} data`);
    });
  });

  it('rejects two inferred dims', async () => {
    const graph = new XnnGraphBuilder();
    const x = graph.input([2, 6]);
    const y = graph.output([2, 6]);
    graph.reshape([0, 0], x, y);
    await expect(runGraph(graph, [new Float32Array(12)])).rejects.toMatchObject({ code: 'ERR_DELEGATE', message: expect.stringContaining('StaticReshape') });
  });

  it('rejects a size mismatch', async () => {
    const graph = new XnnGraphBuilder();
    const x = graph.input([2, 6]);
    const y = graph.output([5, 2]);
    graph.reshape([5, 2], x, y);
    await expect(runGraph(graph, [new Float32Array(12)])).rejects.toMatchObject({ code: 'ERR_DELEGATE', message: expect.stringContaining('StaticReshape') });
  });
});

describe('StaticSlice', () => {
  const cases: [number[], number[], number[]][] = [
    [[5, 7], [1, 2], [3, 4]],
    [[2, 3, 13], [1, 0, 5], [1, 3, 7]],
    [[4, 5, 6, 7], [0, 1, 2, 3], [4, 3, 2, 1]],
    [[31], [30], [1]],
    [[3, 4], [0, 0], [3, 4]],
  ];
  cases.forEach(([dims, offsets, sizes], index) => {
    it(`${JSON.stringify(dims)} at ${JSON.stringify(offsets)} size ${JSON.stringify(sizes)}`, async () => {
      const input = randomFloats(makeRng(3200 + index), product(dims));
      const graph = new XnnGraphBuilder();
      const x = graph.input(dims);
      const y = graph.output(sizes);
      graph.slice(offsets, sizes, x, y);
      const [output] = await runGraph(graph, [input]);
      const strides = stridesOf(dims);
      const expected = Array.from({ length: product(sizes) }, (_, i) =>
        input[unravel(i, sizes).reduce((offset, coordinate, d) => offset + (coordinate + offsets[d]!) * strides[d]!, 0)]!,
      );
      expectShape(output, sizes);
      expectAllClose(output!.data as Float32Array, expected, {}, 'slice output');
    });
  });

  it('rejects a slice past the end', async () => {
    const graph = new XnnGraphBuilder();
    const x = graph.input([4, 4]);
    const y = graph.output([2, 3]);
    graph.slice([3, 1], [2, 3], x, y);
    await expect(runGraph(graph, [new Float32Array(16)])).rejects.toMatchObject({ code: 'ERR_DELEGATE', message: expect.stringContaining('StaticSlice') });
  });
});

describe('Concatenate', () => {
  for (let count = 2; count <= 5; count++) {
    for (const axis of [0, 1, 2]) {
      it(`${count} inputs on axis ${axis}`, async () => {
        const rng = makeRng(3300 + count * 10 + axis);
        const base = [2, 3, 5];
        const dimsList = Array.from({ length: count }, (_, i) => base.map((size, d) => (d === axis ? size + i : size)));
        const inputs = dimsList.map((dims) => randomFloats(rng, product(dims)));
        const outDims = base.map((size, d) => (d === axis ? dimsList.reduce((total, dims) => total + dims[d]!, 0) : size));
        const graph = new XnnGraphBuilder();
        const ids = dimsList.map((dims) => graph.input(dims));
        const y = graph.output(outDims);
        graph.concatenate(axis, ids, y);
        const [output] = await runGraph(graph, inputs);
        // Walk the output: find which input covers each coordinate along the axis.
        const expected = Array.from({ length: product(outDims) }, (_, i) => {
          const index = unravel(i, outDims);
          let along = index[axis]!;
          let part = 0;
          while (along >= dimsList[part]![axis]!) along -= dimsList[part++]![axis]!;
          const local = index.map((coordinate, d) => (d === axis ? along : coordinate));
          const strides = stridesOf(dimsList[part]!);
          return inputs[part]![local.reduce((offset, coordinate, d) => offset + coordinate * strides[d]!, 0)]!;
        });
        expectShape(output, outDims);
        expectAllClose(output!.data as Float32Array, expected, {}, 'concatenate output');
      });
    }
  }

  it('rejects inputs that differ off the axis', async () => {
    const graph = new XnnGraphBuilder();
    const a = graph.input([2, 3]);
    const b = graph.input([3, 3]);
    const y = graph.output([2, 6]);
    graph.concatenate(1, [a, b], y);
    await expect(runGraph(graph, [new Float32Array(6), new Float32Array(9)])).rejects.toMatchObject({ code: 'ERR_DELEGATE', message: expect.stringContaining('Concatenate') });
  });
});

describe('StaticConstantPad', () => {
  const cases: [number[], number[], number[], number][] = [
    [[1, 3, 4, 2], [0, 1, 2, 0], [0, 2, 1, 0], 0],
    [[5], [3], [0], -1.5],
    [[2, 3], [1, 0], [0, 4], 7.25],
    [[1, 2, 2, 3], [0, 0, 0, 1], [0, 0, 0, 2], 0.5],
  ];
  cases.forEach(([dims, before, after, value], index) => {
    it(`${JSON.stringify(dims)} by ${JSON.stringify(before)} and ${JSON.stringify(after)}`, async () => {
      const input = randomFloats(makeRng(3400 + index), product(dims));
      const outDims = dims.map((size, d) => size + before[d]! + after[d]!);
      const graph = new XnnGraphBuilder();
      const x = graph.input(dims);
      const y = graph.output(outDims);
      graph.constantPad(before, after, value, x, y);
      const [output] = await runGraph(graph, [input]);
      const strides = stridesOf(dims);
      const expected = Array.from({ length: product(outDims) }, (_, i) => {
        const index = unravel(i, outDims).map((coordinate, d) => coordinate - before[d]!);
        if (index.some((coordinate, d) => coordinate < 0 || coordinate >= dims[d]!)) return value;
        return input[index.reduce((offset, coordinate, d) => offset + coordinate * strides[d]!, 0)]!;
      });
      expectShape(output, outDims);
      expectAllClose(output!.data as Float32Array, expected, {}, 'pad output');
    });
  });
});

describe('dynamic shapes', () => {
  it('propagate through a chain', async () => {
    // x [rows, 5] → FullyConnected to [rows, 3] → Sigmoid → Add [3]: every value takes the
    // call's row count, and the output is resized to [rows, 3].
    const rng = makeRng(3500);
    const weight = randomFloats(rng, 15);
    const bias = randomFloats(rng, 3);
    const graph = new XnnGraphBuilder();
    const x = graph.input([9, 5]);
    const w = graph.constant([3, 5], weight);
    const hidden = graph.intermediate([9, 3]);
    const activated = graph.intermediate([9, 3]);
    const shift = graph.constant([3], bias, 'payload');
    const y = graph.output([9, 3]);
    graph.fullyConnected(x, w, XNN_INVALID_VALUE_ID, hidden);
    graph.unary('XNNSigmoid', hidden, activated);
    graph.binary('XNNAdd', activated, shift, y);
    const rowsList = [9, 1, 4, 7];
    const inputs = rowsList.map((rows) => randomFloats(rng, rows * 5));
    const results = await runGraphCalls(graph, inputs.map((data, i) => [{ data, shape: [rowsList[i]!, 5] }]), { dynamism: 'dynamic_bound' });
    results.forEach(([output], call) => {
      const rows = rowsList[call]!;
      const input = inputs[call]!;
      const sums = new Accumulator(rows * 3);
      for (let r = 0; r < rows; r++) for (let o = 0; o < 3; o++) for (let i = 0; i < 5; i++) sums.add(r * 3 + o, input[r * 5 + i]! * weight[o * 5 + i]!);
      const expected = sums.values.map((value, i) => 1 / (1 + Math.exp(-value)) + bias[i % 3]!);
      expectShape(output, [rows, 3], `call ${call}`);
      // The sum's error bound passes through Sigmoid (slope <= 1/4), plus 1e-6 for Sigmoid and Add.
      const bound = sums.bound(5);
      expectWithin(output!.data as Float32Array, expected, (i) => bound(i) / 4 + 1e-6, `call ${call} data`);
    });
  });

  it('resize elementwise outputs', async () => {
    const graph = new XnnGraphBuilder();
    const a = graph.input([4, 13]);
    const b = graph.input([4, 13]);
    const y = graph.output([4, 13]);
    graph.binary('XNNMultiply', a, b, y);
    const rng = makeRng(3501);
    const shapes = [[4, 13], [2, 7], [1, 1], [3, 13]];
    const calls = shapes.map((shape) => [0, 1].map(() => ({ data: randomFloats(rng, product(shape)), shape })));
    const results = await runGraphCalls(graph, calls, { dynamism: 'dynamic_bound' });
    results.forEach(([output], call) => {
      const [left, right] = calls[call]!;
      expectShape(output, shapes[call]!, `call ${call}`);
      expectAllClose(output!.data as Float32Array, Array.from(left!.data, (value, i) => value * right!.data[i]!), { rtol: 2 ** -23 }, `call ${call} data`);
    });
  });

  it('serve concurrent calls of different shapes', async () => {
    // Eight calls in flight on one program share the delegate. Each call needs its own shapes
    // and intermediate memory, so every result must match its own input.
    const graph = new XnnGraphBuilder();
    const x = graph.input([16, 7]);
    const doubled = graph.intermediate([16, 7]);
    const y = graph.output([16, 7]);
    const two = graph.constant([1], [2]);
    graph.binary('XNNMultiply', x, two, doubled);
    graph.unary('XNNNegate', doubled, y);
    const rng = makeRng(3503);
    const shapes = Array.from({ length: 8 }, (_, i) => [16 - i, 7 - (i % 3)]);
    const inputs = shapes.map((shape) => randomFloats(rng, product(shape)));
    const program = await Program.load(buildGraphProgram(graph, { dynamism: 'dynamic_bound' }), { threads: 2 });
    try {
      const results = await Promise.all(inputs.map((data, i) => program.execute('forward', [{ dtype: 'float32', shape: shapes[i]!, data }])));
      results.forEach(([output], call) => {
        expectShape(output as Tensor, shapes[call]!, `call ${call}`);
        expectAllClose((output as Tensor).data as Float32Array, Array.from(inputs[call]!, (value) => -2 * value), {}, `call ${call} data`);
      });
    } finally {
      program.dispose();
    }
  });

  it('concatenate inputs of different lengths', async () => {
    const graph = new XnnGraphBuilder();
    const a = graph.input([6, 2]);
    const b = graph.input([6, 2]);
    const y = graph.output([12, 2]);
    graph.concatenate(0, [a, b], y);
    const rng = makeRng(3502);
    const left = randomFloats(rng, 2 * 2);
    const right = randomFloats(rng, 5 * 2);
    const [outputs] = await runGraphCalls(graph, [[{ data: left, shape: [2, 2] }, { data: right, shape: [5, 2] }]], { dynamism: 'dynamic_bound' });
    const output = outputs![0];
    expectShape(output, [7, 2]);
    expectAllClose(output!.data as Float32Array, [...left, ...right], {}, 'concatenate output');
  });
});
