// Each EValue kind as a method input or output and as a kernel argument, checked against
// float64 references computed here.
import { describe, expect, it } from 'vitest';

import { Program, type Value } from '../src/program.js';
import { expectTensor, makeTensor } from './helpers.js';
import { ProgramBuilder, type MethodBuilder } from './tooling/pte-writer.js';

/** Builds a one-method program with `define` and loads it. */
async function loadMethod(define: (method: MethodBuilder) => void): Promise<Program> {
  const builder = new ProgramBuilder();
  define(builder.method('forward'));
  return Program.load(builder.build());
}

function expectInt(value: Value | undefined, expected: number): void {
  expect(typeof value === 'number' || typeof value === 'bigint', `Int output type (${typeof value})`).toBe(true);
  expect(Number(value)).toBe(expected);
}

/** erf by its Maclaurin series; exact to double precision for |z| <= 3. */
function erf(z: number): number {
  let sum = 0;
  let term = z;
  for (let n = 0; n < 80; n++) {
    sum += term / (2 * n + 1);
    term *= (-z * z) / (n + 1);
  }
  return (2 / Math.sqrt(Math.PI)) * sum;
}

describe('method inputs and outputs', () => {
  it('returns an Int input', async () => {
    const program = await loadMethod((m) => {
      const i = m.int(0);
      m.setInputs([i]).setOutputs([i]);
    });
    expectInt((await program.execute('forward', [41]))[0], 41);
  });

  it('returns a large Int input', async () => {
    const program = await loadMethod((m) => {
      const i = m.int(0);
      m.setInputs([i]).setOutputs([i]);
    });
    const output = (await program.execute('forward', [2n ** 60n + 1n]))[0];
    expect(BigInt(output as bigint)).toBe(2n ** 60n + 1n);
  });

  it('returns a Double input', async () => {
    const program = await loadMethod((m) => {
      const d = m.double(0);
      m.setInputs([d]).setOutputs([d]);
    });
    expect((await program.execute('forward', [0.1]))[0]).toBe(0.1);
  });

  it('returns a Bool input', async () => {
    const program = await loadMethod((m) => {
      const b = m.bool(false);
      m.setInputs([b]).setOutputs([b]);
    });
    expect((await program.execute('forward', [true]))[0]).toBe(true);
  });

  it('returns a None input', async () => {
    const program = await loadMethod((m) => {
      const n = m.none();
      m.setInputs([n]).setOutputs([n]);
    });
    expect((await program.execute('forward', [null]))[0]).toBeNull();
  });

  it('returns a String output', async () => {
    const program = await loadMethod((m) => {
      m.setOutputs([m.string('sha256:ab12')]);
    });
    expect((await program.execute('forward', []))[0]).toBe('sha256:ab12');
  });

  it('returns a Tensor input', async () => {
    const program = await loadMethod((m) => {
      const x = m.tensor({ dtype: 'int32', sizes: [2, 2], planned: false });
      m.setInputs([x]).setOutputs([x]);
    });
    const outputs = await program.execute('forward', [makeTensor('int32', [2, 2], [1, -2, 3, -4])]);
    expectTensor(outputs[0], 'int32', [2, 2], [1, -2, 3, -4]);
  });

  it('returns a planned Tensor input', async () => {
    const program = await loadMethod((m) => {
      const x = m.tensor({ dtype: 'float64', sizes: [3] });
      m.setInputs([x]).setOutputs([x]);
    });
    const outputs = await program.execute('forward', [makeTensor('float64', [3], [0.1, 0.2, 0.3])]);
    expectTensor(outputs[0], 'float64', [3], [0.1, 0.2, 0.3]);
  });

  it('describes input kinds', async () => {
    const program = await loadMethod((m) => {
      m.setInputs([m.tensor({ dtype: 'float32', sizes: [1] }), m.int(0), m.double(0), m.bool(false), m.none()]);
    });
    expect(program.methodMeta('forward').inputs.map((input) => input.kind)).toEqual(['tensor', 'int', 'double', 'bool', 'none']);
  });

  it('describes list output kinds', async () => {
    const program = await loadMethod((m) => {
      const t = m.tensor({ dtype: 'float32', sizes: [1] });
      m.setOutputs([m.ints([1, 2]), m.doubleList([0.5]), m.boolList([true, false]), m.tensorList([t]), m.optionalTensorList([t, -1]), m.string('s')]);
    });
    expect(program.methodMeta('forward').outputs.map((output) => output.kind)).toEqual([
      'int_list',
      'double_list',
      'bool_list',
      'tensor_list',
      'optional_tensor_list',
      'string',
    ]);
  });

  it('describes tensor metadata', async () => {
    const program = await loadMethod((m) => {
      m.setInputs([m.tensor({ dtype: 'int64', sizes: [2, 3, 4], dimOrder: [0, 2, 1], dynamism: 'dynamic_bound' })]);
    });
    const input = program.methodMeta('forward').inputs[0]!;
    expect([input.dtype, input.shape, input.dimOrder, input.dynamism]).toEqual(['int64', [2, 3, 4], [0, 2, 1], 'dynamic_bound']);
  });
});

describe('scalar kernel arguments', () => {
  const x = makeTensor('float32', [3], [1, -2, 3.5]);
  const y = makeTensor('float32', [3], [0.5, 4, -1]);

  it('uses an Int alpha', async () => {
    const program = await loadMethod((m) => {
      const a = m.tensor({ dtype: 'float32', sizes: [3] });
      const b = m.tensor({ dtype: 'float32', sizes: [3] });
      const out = m.tensor({ dtype: 'float32', sizes: [3] });
      m.kernel('aten::add.out', [a, b, m.int(3), out, out]);
      m.setInputs([a, b]).setOutputs([out]);
    });
    const outputs = await program.execute('forward', [x, y]);
    expectTensor(outputs[0], 'float32', [3], [1 + 3 * 0.5, -2 + 3 * 4, 3.5 + 3 * -1]);
  });

  it('uses a Double scalar', async () => {
    const program = await loadMethod((m) => {
      const a = m.tensor({ dtype: 'float32', sizes: [3] });
      const out = m.tensor({ dtype: 'float32', sizes: [3] });
      m.kernel('aten::mul.Scalar_out', [a, m.double(0.25), out, out]);
      m.setInputs([a]).setOutputs([out]);
    });
    expectTensor((await program.execute('forward', [x]))[0], 'float32', [3], [0.25, -0.5, 0.875]);
  });

  it('uses a Bool scalar', async () => {
    // A Scalar argument may be a Bool: true adds 1.
    const program = await loadMethod((m) => {
      const a = m.tensor({ dtype: 'float32', sizes: [3] });
      const out = m.tensor({ dtype: 'float32', sizes: [3] });
      m.kernel('aten::add.Scalar_out', [a, m.bool(true), m.int(1), out, out]);
      m.setInputs([a]).setOutputs([out]);
    });
    expectTensor((await program.execute('forward', [x]))[0], 'float32', [3], [2, -1, 4.5]);
  });

  it('uses a Double input as a scalar', async () => {
    const program = await loadMethod((m) => {
      const a = m.tensor({ dtype: 'float32', sizes: [3] });
      const scale = m.double(1);
      const out = m.tensor({ dtype: 'float32', sizes: [3] });
      m.kernel('aten::mul.Scalar_out', [a, scale, out, out]);
      m.setInputs([a, scale]).setOutputs([out]);
    });
    expectTensor((await program.execute('forward', [x, -2]))[0], 'float32', [3], [-2, 4, -7]);
  });

  it('uses an Int input as alpha', async () => {
    const program = await loadMethod((m) => {
      const a = m.tensor({ dtype: 'int32', sizes: [2] });
      const alpha = m.int(1);
      const out = m.tensor({ dtype: 'int32', sizes: [2] });
      m.kernel('aten::add.Scalar_out', [a, m.int(10), alpha, out, out]);
      m.setInputs([a, alpha]).setOutputs([out]);
    });
    const outputs = await program.execute('forward', [makeTensor('int32', [2], [1, 2]), 5]);
    expectTensor(outputs[0], 'int32', [2], [51, 52]);
  });
});

describe('string and none kernel arguments', () => {
  const numerator = [-7, 7, -3.5];
  const denominator = [2, 2, 2];

  async function divide(mode: 'floor' | 'trunc' | null): Promise<Value[]> {
    const program = await loadMethod((m) => {
      const a = m.tensor({ dtype: 'float32', sizes: [3] });
      const b = m.tensor({ dtype: 'float32', sizes: [3] });
      const out = m.tensor({ dtype: 'float32', sizes: [3] });
      m.kernel('aten::div.out_mode', [a, b, mode === null ? m.none() : m.string(mode), out, out]);
      m.setInputs([a, b]).setOutputs([out]);
    });
    return program.execute('forward', [makeTensor('float32', [3], numerator), makeTensor('float32', [3], denominator)]);
  }

  it('rounds down with "floor"', async () => {
    expectTensor((await divide('floor'))[0], 'float32', [3], numerator.map((n, i) => Math.floor(n / denominator[i]!)));
  });

  it('truncates with "trunc"', async () => {
    expectTensor((await divide('trunc'))[0], 'float32', [3], numerator.map((n, i) => Math.trunc(n / denominator[i]!)));
  });

  it('divides exactly with None', async () => {
    expectTensor((await divide(null))[0], 'float32', [3], numerator.map((n, i) => n / denominator[i]!));
  });

  it('selects the gelu approximation', async () => {
    const inputs = [-2.5, -1, -0.1, 0, 0.3, 1, 2.7];
    const program = await loadMethod((m) => {
      const a = m.tensor({ dtype: 'float32', sizes: [7] });
      const exact = m.tensor({ dtype: 'float32', sizes: [7] });
      const approximate = m.tensor({ dtype: 'float32', sizes: [7] });
      m.kernel('aten::gelu.out', [a, m.string('none'), exact, exact]);
      m.kernel('aten::gelu.out', [a, m.string('tanh'), approximate, approximate]);
      m.setInputs([a]).setOutputs([exact, approximate]);
    });
    const outputs = await program.execute('forward', [makeTensor('float32', [7], inputs)]);
    const exactReference = inputs.map((v) => 0.5 * v * (1 + erf(v / Math.SQRT2)));
    const tanhReference = inputs.map((v) => 0.5 * v * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (v + 0.044715 * v ** 3))));
    expectTensor(outputs[0], 'float32', [7], exactReference, { atol: 1e-6 }, 'gelu none');
    expectTensor(outputs[1], 'float32', [7], tanhReference, { atol: 1e-6 }, 'gelu tanh');
  });
});

describe('list kernel arguments', () => {
  it('reshapes with an IntList', async () => {
    const program = await loadMethod((m) => {
      const a = m.tensor({ dtype: 'float32', sizes: [2, 3] });
      const out = m.tensor({ dtype: 'float32', sizes: [3, 2] });
      m.kernel('aten::view_copy.out', [a, m.ints([3, 2]), out, out]);
      m.setInputs([a]).setOutputs([out]);
    });
    const outputs = await program.execute('forward', [makeTensor('float32', [2, 3], [1, 2, 3, 4, 5, 6])]);
    expectTensor(outputs[0], 'float32', [3, 2], [1, 2, 3, 4, 5, 6]);
  });

  it('infers -1 in an IntList', async () => {
    const program = await loadMethod((m) => {
      const a = m.tensor({ dtype: 'int32', sizes: [2, 3] });
      const out = m.tensor({ dtype: 'int32', sizes: [6] });
      m.kernel('aten::view_copy.out', [a, m.ints([-1]), out, out]);
      m.setInputs([a]).setOutputs([out]);
    });
    const outputs = await program.execute('forward', [makeTensor('int32', [2, 3], [6, 5, 4, 3, 2, 1])]);
    expectTensor(outputs[0], 'int32', [6], [6, 5, 4, 3, 2, 1]);
  });

  it('shares Int values between lists', async () => {
    // Two IntLists that name the same Int values, as upstream's emitter writes repeated sizes.
    const program = await loadMethod((m) => {
      const a = m.tensor({ dtype: 'float32', sizes: [4] });
      const two = m.int(2);
      const middle = m.tensor({ dtype: 'float32', sizes: [2, 2] });
      const out = m.tensor({ dtype: 'float32', sizes: [4] });
      m.kernel('aten::view_copy.out', [a, m.intList([two, two]), middle, middle]);
      m.kernel('aten::view_copy.out', [middle, m.ints([4]), out, out]);
      m.setInputs([a]).setOutputs([middle, out]);
    });
    const outputs = await program.execute('forward', [makeTensor('float32', [4], [1, 2, 3, 4])]);
    expectTensor(outputs[0], 'float32', [2, 2], [1, 2, 3, 4], {}, 'middle');
  });

  it('concatenates a TensorList', async () => {
    const program = await loadMethod((m) => {
      const a = m.tensor({ dtype: 'float32', sizes: [1, 2] });
      const b = m.tensor({ dtype: 'float32', sizes: [2, 2] });
      const out = m.tensor({ dtype: 'float32', sizes: [3, 2] });
      m.kernel('aten::cat.out', [m.tensorList([a, b]), m.int(0), out, out]);
      m.setInputs([a, b]).setOutputs([out]);
    });
    const outputs = await program.execute('forward', [makeTensor('float32', [1, 2], [1, 2]), makeTensor('float32', [2, 2], [3, 4, 5, 6])]);
    expectTensor(outputs[0], 'float32', [3, 2], [1, 2, 3, 4, 5, 6]);
  });

  it('concatenates along dim 1', async () => {
    const program = await loadMethod((m) => {
      const a = m.tensor({ dtype: 'float32', sizes: [2, 1] });
      const b = m.tensor({ dtype: 'float32', sizes: [2, 2] });
      const out = m.tensor({ dtype: 'float32', sizes: [2, 4] });
      m.kernel('aten::cat.out', [m.tensorList([a, b, a]), m.int(1), out, out]);
      m.setInputs([a, b]).setOutputs([out]);
    });
    const outputs = await program.execute('forward', [makeTensor('float32', [2, 1], [1, 2]), makeTensor('float32', [2, 2], [3, 4, 5, 6])]);
    expectTensor(outputs[0], 'float32', [2, 4], [1, 3, 4, 1, 2, 5, 6, 2]);
  });

  it('indexes with an OptionalTensorList', async () => {
    // x[:, [2, 0]]: None for the first dimension, an int64 index tensor for the second.
    const program = await loadMethod((m) => {
      const a = m.tensor({ dtype: 'float32', sizes: [2, 3] });
      const index = m.tensor({ dtype: 'int64', sizes: [2], constant: [2, 0] });
      const out = m.tensor({ dtype: 'float32', sizes: [2, 2] });
      m.kernel('aten::index.Tensor_out', [a, m.optionalTensorList([-1, index]), out, out]);
      m.setInputs([a]).setOutputs([out]);
    });
    const outputs = await program.execute('forward', [makeTensor('float32', [2, 3], [1, 2, 3, 4, 5, 6])]);
    expectTensor(outputs[0], 'float32', [2, 2], [3, 1, 6, 4]);
  });

  it('scales with a DoubleList', async () => {
    const program = await loadMethod((m) => {
      const a = m.tensor({ dtype: 'float32', sizes: [1, 1, 2, 2] });
      const out = m.tensor({ dtype: 'float32', sizes: [1, 1, 4, 4] });
      m.kernel('aten::upsample_nearest2d.vec_out', [a, m.none(), m.doubleList([2, 2]), out, out]);
      m.setInputs([a]).setOutputs([out]);
    });
    const outputs = await program.execute('forward', [makeTensor('float32', [1, 1, 2, 2], [1, 2, 3, 4])]);
    const expected = [1, 1, 2, 2, 1, 1, 2, 2, 3, 3, 4, 4, 3, 3, 4, 4];
    expectTensor(outputs[0], 'float32', [1, 1, 4, 4], expected);
  });

  it('rejects an IntList naming a tensor', async () => {
    const builder = new ProgramBuilder();
    const m = builder.method('forward');
    const t = m.tensor({ dtype: 'float32', sizes: [1] });
    m.setOutputs([m.intList([t])]);
    const error = await Program.load(builder.build()).then(
      () => undefined,
      (caught: unknown) => caught as { code?: string },
    );
    expect(error?.code).toBe('ERR_PTE_MALFORMED');
  });
});

describe('double precision values', () => {
  it('keeps Double bits exact', async () => {
    const values = [Math.PI, -0, 1e-310, Number.MAX_VALUE];
    const program = await loadMethod((m) => {
      m.setOutputs(values.map((value) => m.double(value)));
    });
    expect(await program.execute('forward', [])).toEqual(values);
  });
});
