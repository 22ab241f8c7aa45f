// Several methods in one program, looked up by name, and constant methods (plans without
// instructions that return stored values).
import { describe, expect, it } from 'vitest';

import { Program } from '../src/program.js';
import { expectErrorCode, expectTensor, makeTensor } from './helpers.js';
import { ProgramBuilder } from './tooling/pte-writer.js';

/** Methods stored out of name order: scale_by_three, add_one, get_* constant methods, forward. */
function buildMultiMethod(): Uint8Array {
  const builder = new ProgramBuilder();

  const scale = builder.method('scale_by_three');
  const sx = scale.tensor({ dtype: 'float32', sizes: [2] });
  const sy = scale.tensor({ dtype: 'float32', sizes: [2] });
  scale.kernel('aten::mul.Scalar_out', [sx, scale.double(3), sy, sy]);
  scale.setInputs([sx]).setOutputs([sy]);

  const addOne = builder.method('add_one');
  const ax = addOne.tensor({ dtype: 'float32', sizes: [2] });
  const ay = addOne.tensor({ dtype: 'float32', sizes: [2] });
  addOne.kernel('aten::add.Scalar_out', [ax, addOne.int(1), addOne.int(1), ay, ay]);
  addOne.setInputs([ax]).setOutputs([ay]);

  const getInt = builder.method('get_int');
  getInt.setOutputs([getInt.int(-12345678901)]);

  const getDouble = builder.method('get_double');
  getDouble.setOutputs([getDouble.double(-2.5)]);

  const getBool = builder.method('get_bool');
  getBool.setOutputs([getBool.bool(true)]);

  const getTensor = builder.method('get_tensor');
  getTensor.setOutputs([getTensor.tensor({ dtype: 'int64', sizes: [2, 2], constant: [1n, -2n, 3n, 2n ** 62n] })]);

  const getMixed = builder.method('get_mixed');
  getMixed.setOutputs([getMixed.tensor({ dtype: 'float32', sizes: [3], constant: [0.5, 1.5, 2.5] }), getMixed.int(7), getMixed.none()]);

  const forward = builder.method('forward');
  const fx = forward.tensor({ dtype: 'float32', sizes: [2] });
  const fy = forward.tensor({ dtype: 'float32', sizes: [2] });
  forward.kernel('aten::neg.out', [fx, fy, fy]);
  forward.setInputs([fx]).setOutputs([fy]);

  return builder.build();
}

const x = makeTensor('float32', [2], [1.5, -4]);

describe('multiple methods', () => {
  it('lists names in file order', async () => {
    const program = await Program.load(buildMultiMethod());
    expect(program.methodNames()).toEqual(['scale_by_three', 'add_one', 'get_int', 'get_double', 'get_bool', 'get_tensor', 'get_mixed', 'forward']);
  });

  it('runs the first method by name', async () => {
    const program = await Program.load(buildMultiMethod());
    expectTensor((await program.execute('scale_by_three', [x]))[0], 'float32', [2], [4.5, -12]);
  });

  it('runs the second method by name', async () => {
    const program = await Program.load(buildMultiMethod());
    expectTensor((await program.execute('add_one', [x]))[0], 'float32', [2], [2.5, -3]);
  });

  it('runs the last method by name', async () => {
    const program = await Program.load(buildMultiMethod());
    expectTensor((await program.execute('forward', [x]))[0], 'float32', [2], [-1.5, 4]);
  });

  it('keeps methods apart', async () => {
    // Interleaved calls must not share planned memory between plans.
    const program = await Program.load(buildMultiMethod());
    const [scaled, added] = await Promise.all([program.execute('scale_by_three', [x]), program.execute('add_one', [x])]);
    expectTensor(scaled[0], 'float32', [2], [4.5, -12], {}, 'scale_by_three');
    expectTensor(added[0], 'float32', [2], [2.5, -3], {}, 'add_one');
  });

  it('describes each method', async () => {
    const program = await Program.load(buildMultiMethod());
    expect(program.methodMeta('add_one').operators).toEqual(['aten::add.Scalar_out']);
  });

  it('rejects an unknown method', async () => {
    const program = await Program.load(buildMultiMethod());
    await expectErrorCode(program.execute('backward', [x]), 'ERR_METHOD_NOT_FOUND');
  });

  it('names the unknown method', async () => {
    const program = await Program.load(buildMultiMethod());
    const error = await expectErrorCode(program.execute('backward', [x]), 'ERR_METHOD_NOT_FOUND');
    expect(error.message).toContain('backward');
  });

  it('rejects metadata of an unknown method', () => {
    return Program.load(buildMultiMethod()).then((program) => {
      expect(() => program.methodMeta('backward')).toThrow(expect.objectContaining({ code: 'ERR_METHOD_NOT_FOUND' }));
    });
  });
});

describe('constant methods', () => {
  it('returns an Int', async () => {
    const program = await Program.load(buildMultiMethod());
    const output = (await program.execute('get_int', []))[0];
    expect(BigInt(output as number | bigint)).toBe(-12345678901n);
  });

  it('returns a Double', async () => {
    const program = await Program.load(buildMultiMethod());
    expect((await program.execute('get_double', []))[0]).toBe(-2.5);
  });

  it('returns a Bool', async () => {
    const program = await Program.load(buildMultiMethod());
    expect((await program.execute('get_bool', []))[0]).toBe(true);
  });

  it('returns a constant tensor', async () => {
    const program = await Program.load(buildMultiMethod());
    expectTensor((await program.execute('get_tensor', []))[0], 'int64', [2, 2], [1n, -2n, 3n, 2n ** 62n]);
  });

  it('returns several values', async () => {
    const program = await Program.load(buildMultiMethod());
    const outputs = await program.execute('get_mixed', []);
    expectTensor(outputs[0], 'float32', [3], [0.5, 1.5, 2.5], {}, 'tensor');
    expect(Number(outputs[1]), 'Int').toBe(7);
    expect(outputs[2], 'None').toBeNull();
  });

  it('reports no instructions', async () => {
    const program = await Program.load(buildMultiMethod());
    expect(program.methodMeta('get_tensor').instructionCount).toBe(0);
  });

  it('rejects unexpected inputs', async () => {
    const program = await Program.load(buildMultiMethod());
    await expectErrorCode(program.execute('get_int', [1]), 'ERR_INVALID_INPUT');
  });

  it('returns a copy of constant data', async () => {
    const program = await Program.load(buildMultiMethod());
    const first = (await program.execute('get_tensor', []))[0] as { data: BigInt64Array };
    first.data[0] = 99n;
    const second = (await program.execute('get_tensor', []))[0];
    expectTensor(second, 'int64', [2, 2], [1n, -2n, 3n, 2n ** 62n]);
  });
});
