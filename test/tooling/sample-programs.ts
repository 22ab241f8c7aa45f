/**
 * Programs written the way upstream ExecuTorch's exporter writes two of the real files:
 * shared by the writer's structure tests and the runtime tests.
 */
import { ProgramBuilder, type BuildOptions } from './pte-writer.js';

/**
 * y = 3*x + 2 on a 2x2 float32 input with constants in the deprecated inline
 * `constant_buffer`, as in upstream's `ModuleLinear-no-constant-segment.pte`: `mul.out` into
 * an intermediate at offset 16, then `add.out` into an output planned over the input (offset 0).
 */
export function buildLinearProgram(options: BuildOptions = { constants: 'inline' }): Uint8Array {
  const program = new ProgramBuilder();
  const forward = program.method('forward');
  const a = forward.tensor({ dtype: 'float32', sizes: [2, 2], constant: [3, 3, 3, 3] });
  const b = forward.tensor({ dtype: 'float32', sizes: [2, 2], constant: [2, 2, 2, 2] });
  const x = forward.tensor({ dtype: 'float32', sizes: [2, 2], planned: { offset: 0 } });
  const product = forward.tensor({ dtype: 'float32', sizes: [2, 2], planned: { offset: 16 } });
  const y = forward.tensor({ dtype: 'float32', sizes: [2, 2], planned: { offset: 0 } });
  const alpha = forward.int(1);
  forward.kernel('aten::mul.out', [a, x, product, product]);
  forward.kernel('aten::add.out', [product, b, alpha, y, y]);
  forward.setInputs([x]).setOutputs([y]).setBufferSizes([0, 32]);
  return program.build(options);
}

/**
 * y = x + 1 on a float32 [3] input with a 0-dim constant 1.0 in the constant segment and an
 * extended header, as in upstream's Arduino `AddModel/model.pte`: the output at offset 0, the
 * input at offset 16.
 */
export function buildAddOneProgram(options: BuildOptions = {}): Uint8Array {
  const program = new ProgramBuilder();
  const forward = program.method('forward');
  const one = forward.tensor({ dtype: 'float32', sizes: [], constant: [1] });
  const x = forward.tensor({ dtype: 'float32', sizes: [3], planned: { offset: 16 } });
  const y = forward.tensor({ dtype: 'float32', sizes: [3], planned: { offset: 0 } });
  const alpha = forward.int(1);
  forward.kernel('aten::add.out', [x, one, alpha, y, y]);
  forward.setInputs([x]).setOutputs([y]).setBufferSizes([0, 32]);
  return program.build(options);
}
