// Portable elementwise kernels against float64 references computed here.
import { describe, it } from 'vitest';

import { expectErrorCode, expectTensor, makeTensor } from '../helpers.js';
import { runProgram, sampleValues, toFloat32 } from './harness.js';

const rtol = 1e-6;
const atol = 1e-6;

describe('binary arithmetic', () => {
  it('add.out broadcasts with alpha', async () => {
    const a = toFloat32(sampleValues(6, 1));
    const b = toFloat32(sampleValues(3, 2));
    const outputs = await runProgram(
      (m) => {
        const x = m.tensor({ dtype: 'float32', sizes: [2, 3] });
        const y = m.tensor({ dtype: 'float32', sizes: [3] });
        const out = m.tensor({ dtype: 'float32', sizes: [2, 3] });
        m.kernel('aten::add.out', [x, y, m.int(2), out, out]);
        m.setInputs([x, y]).setOutputs([out]);
      },
      [makeTensor('float32', [2, 3], a), makeTensor('float32', [3], b)],
    );
    expectTensor(outputs[0], 'float32', [2, 3], a.map((v, i) => v + 2 * b[i % 3]!), { rtol, atol });
  });

  it('div.out_mode floors int64', async () => {
    const a = [7, -7, 7, -7, 0, 9];
    const b = [2, 2, -2, -2, 3, 4];
    const outputs = await runProgram(
      (m) => {
        const x = m.tensor({ dtype: 'int64', sizes: [6] });
        const y = m.tensor({ dtype: 'int64', sizes: [6] });
        const out = m.tensor({ dtype: 'int64', sizes: [6] });
        m.kernel('aten::div.out_mode', [x, y, m.string('floor'), out, out]);
        m.setInputs([x, y]).setOutputs([out]);
      },
      [makeTensor('int64', [6], a), makeTensor('int64', [6], b)],
    );
    expectTensor(outputs[0], 'int64', [6], a.map((v, i) => BigInt(Math.floor(v / b[i]!))));
  });

  it('div.out_mode rejects integer zero', async () => {
    const run = runProgram(
      (m) => {
        const x = m.tensor({ dtype: 'int32', sizes: [2] });
        const y = m.tensor({ dtype: 'int32', sizes: [2] });
        const out = m.tensor({ dtype: 'int32', sizes: [2] });
        m.kernel('aten::div.out_mode', [x, y, m.string('trunc'), out, out]);
        m.setInputs([x, y]).setOutputs([out]);
      },
      [makeTensor('int32', [2], [1, 2]), makeTensor('int32', [2], [1, 0])],
    );
    await expectErrorCode(run, 'ERR_KERNEL');
  });

  it('div.out turns integers into float32', async () => {
    const outputs = await runProgram(
      (m) => {
        const x = m.tensor({ dtype: 'int32', sizes: [3] });
        const out = m.tensor({ dtype: 'float32', sizes: [3] });
        const two = m.tensor({ dtype: 'int64', sizes: [], constant: [2n] });
        m.kernel('aten::div.out', [x, two, out, out]);
        m.setInputs([x]).setOutputs([out]);
      },
      [makeTensor('int32', [3], [7, -7, 8])],
    );
    expectTensor(outputs[0], 'float32', [3], [3.5, -3.5, 4]);
  });

  it('pow.Tensor_Scalar_out squares', async () => {
    const a = toFloat32(sampleValues(5, 3, 4));
    const outputs = await runProgram(
      (m) => {
        const x = m.tensor({ dtype: 'float32', sizes: [5] });
        const out = m.tensor({ dtype: 'float32', sizes: [5] });
        m.kernel('aten::pow.Tensor_Scalar_out', [x, m.double(2), out, out]);
        m.setInputs([x]).setOutputs([out]);
      },
      [makeTensor('float32', [5], a)],
    );
    expectTensor(outputs[0], 'float32', [5], a.map((v) => v * v), { rtol, atol });
  });
});

describe('unary and activations', () => {
  const a = toFloat32(sampleValues(16, 4, 5));
  const cases: [string, (x: number) => number, number[]][] = [
    ['aten::sigmoid.out', (x) => 1 / (1 + Math.exp(-x)), []],
    ['aten::tanh.out', Math.tanh, []],
    ['aten::relu.out', (x) => Math.max(x, 0), []],
    ['aten::exp.out', Math.exp, []],
    ['aten::neg.out', (x) => -x, []],
    ['aten::abs.out', Math.abs, []],
  ];
  for (const [operator, reference] of cases) {
    it(`${operator} matches float64`, async () => {
      const outputs = await runProgram(
        (m) => {
          const x = m.tensor({ dtype: 'float32', sizes: [16] });
          const out = m.tensor({ dtype: 'float32', sizes: [16] });
          m.kernel(operator, [x, out, out]);
          m.setInputs([x]).setOutputs([out]);
        },
        [makeTensor('float32', [16], a)],
      );
      expectTensor(outputs[0], 'float32', [16], a.map(reference), { rtol: 1e-6, atol: 1e-6 });
    });
  }

  it('gelu.out tanh approximation', async () => {
    const outputs = await runProgram(
      (m) => {
        const x = m.tensor({ dtype: 'float32', sizes: [16] });
        const out = m.tensor({ dtype: 'float32', sizes: [16] });
        m.kernel('aten::gelu.out', [x, m.string('tanh'), out, out]);
        m.setInputs([x]).setOutputs([out]);
      },
      [makeTensor('float32', [16], a)],
    );
    const k = Math.sqrt(2 / Math.PI);
    const reference = a.map((x) => 0.5 * x * (1 + Math.tanh(k * (x + 0.044715 * x ** 3))));
    expectTensor(outputs[0], 'float32', [16], reference, { rtol: 1e-5, atol: 1e-6 });
  });

  it('clamp.out with min only', async () => {
    const outputs = await runProgram(
      (m) => {
        const x = m.tensor({ dtype: 'float32', sizes: [16] });
        const out = m.tensor({ dtype: 'float32', sizes: [16] });
        m.kernel('aten::clamp.out', [x, m.double(-1), m.none(), out, out]);
        m.setInputs([x]).setOutputs([out]);
      },
      [makeTensor('float32', [16], a)],
    );
    expectTensor(outputs[0], 'float32', [16], a.map((x) => Math.max(x, -1)));
  });
});
