// Each instruction kind (KernelCall, DelegateCall, MoveCall, JumpFalseCall, FreeCall) and
// the load-time checks for operators and backends that the runtime lacks.
import { describe, expect, it } from 'vitest';

import { Program, supportedBackends } from '../src/program.js';
import { expectErrorCode, expectTensor, makeTensor } from './helpers.js';
import { ProgramBuilder, type DelegateSpec, type MethodBuilder } from './tooling/pte-writer.js';

function build(define: (method: MethodBuilder) => void): Uint8Array {
  const builder = new ProgramBuilder();
  define(builder.method('forward'));
  return builder.build();
}

describe('KernelCall', () => {
  it('chains kernels through planned memory', async () => {
    // y = (x * x) - x, with the intermediate in planned memory.
    const bytes = build((m) => {
      const x = m.tensor({ dtype: 'float64', sizes: [4] });
      const square = m.tensor({ dtype: 'float64', sizes: [4] });
      const y = m.tensor({ dtype: 'float64', sizes: [4] });
      m.kernel('aten::mul.out', [x, x, square, square]);
      m.kernel('aten::sub.out', [square, x, m.int(1), y, y]);
      m.setInputs([x]).setOutputs([y]);
    });
    const program = await Program.load(bytes);
    const input = [0.5, -3, 1e3, 7];
    const outputs = await program.execute('forward', [makeTensor('float64', [4], input)]);
    expectTensor(outputs[0], 'float64', [4], input.map((v) => v * v - v));
  });

  it('counts instructions in metadata', async () => {
    const program = await Program.load(
      build((m) => {
        const x = m.tensor({ dtype: 'float32', sizes: [1] });
        m.kernel('aten::relu.out', [x, x, x]);
        m.kernel('aten::relu.out', [x, x, x]);
        m.setInputs([x]).setOutputs([x]);
      }),
    );
    expect(program.methodMeta('forward').instructionCount).toBe(2);
  });

  it('lists operators once', async () => {
    const program = await Program.load(
      build((m) => {
        const x = m.tensor({ dtype: 'float32', sizes: [1] });
        m.kernel('aten::relu.out', [x, x, x]);
        m.kernel('aten::neg.out', [x, x, x]);
        m.kernel('aten::relu.out', [x, x, x]);
        m.setInputs([x]).setOutputs([x]);
      }),
    );
    expect(program.methodMeta('forward').operators).toEqual(['aten::relu.out', 'aten::neg.out']);
  });

  it('rejects an operator index out of range', async () => {
    const bytes = build((m) => {
      const x = m.tensor({ dtype: 'float32', sizes: [1] });
      m.kernelByIndex(3, [x, x, x]);
    });
    await expectErrorCode(Program.load(bytes), 'ERR_PTE_MALFORMED');
  });

  it('rejects an argument index out of range', async () => {
    const bytes = build((m) => {
      const x = m.tensor({ dtype: 'float32', sizes: [1] });
      m.kernel('aten::relu.out', [x, 99, x]);
    });
    await expectErrorCode(Program.load(bytes), 'ERR_PTE_MALFORMED');
  });
});

describe('custom operator namespace', () => {
  function buildCustom(): Uint8Array {
    return build((m) => {
      const x = m.tensor({ dtype: 'float32', sizes: [4] });
      const out = m.tensor({ dtype: 'int8', sizes: [4] });
      m.kernel('cortex_m::quantize_per_tensor.out', [x, m.double(0.1), m.int(0), m.int(-128), m.int(127), m.int(1), out, out]);
      m.setInputs([x]).setOutputs([out]);
    });
  }

  it('rejects the load', async () => {
    await expectErrorCode(Program.load(buildCustom()), 'ERR_UNSUPPORTED_OPERATOR');
  });

  it('names the full operator', async () => {
    const error = await expectErrorCode(Program.load(buildCustom()), 'ERR_UNSUPPORTED_OPERATOR');
    expect(error.message).toContain('cortex_m::quantize_per_tensor.out');
  });

  it('lists it as a problem', async () => {
    const program = await Program.load(buildCustom(), { allowUnsupported: true });
    const problems = program.methodMeta('forward').problems;
    expect(problems.find((problem) => problem.code === 'ERR_UNSUPPORTED_OPERATOR')?.message).toContain('cortex_m::quantize_per_tensor.out');
  });

  it('lists it among operators', async () => {
    const program = await Program.load(buildCustom(), { allowUnsupported: true });
    expect(program.methodMeta('forward').operators).toEqual(['cortex_m::quantize_per_tensor.out']);
  });

  it('rejects execution', async () => {
    const program = await Program.load(buildCustom(), { allowUnsupported: true });
    await expectErrorCode(program.execute('forward', [makeTensor('float32', [4], [0, 0.1, 0.2, 0.3])]), 'ERR_UNSUPPORTED_OPERATOR');
  });
});

describe('DelegateCall', () => {
  const backendId = 'EmbedImageTestOnlyBackend';

  function buildDelegated(location: DelegateSpec['location']): Uint8Array {
    return build((m) => {
      const x = m.tensor({ dtype: 'float32', sizes: [2] });
      const y = m.tensor({ dtype: 'float32', sizes: [2] });
      const delegate = m.delegate({
        id: backendId,
        payload: new Uint8Array([0xde, 0xad, 0xbe, 0xef]),
        location,
        compileSpecs: [{ key: 'mode', value: 'fast' }],
      });
      m.delegateCall(delegate, [x, y]);
      m.setInputs([x]).setOutputs([y]);
    });
  }

  it('rejects an unknown inline backend', async () => {
    await expectErrorCode(Program.load(buildDelegated('inline')), 'ERR_UNSUPPORTED_BACKEND');
  });

  it('rejects an unknown segment backend', async () => {
    await expectErrorCode(Program.load(buildDelegated('segment')), 'ERR_UNSUPPORTED_BACKEND');
  });

  it('names the unknown backend', async () => {
    const error = await expectErrorCode(Program.load(buildDelegated('segment')), 'ERR_UNSUPPORTED_BACKEND');
    expect(error.message).toContain(backendId);
  });

  it('lists the backend as a problem', async () => {
    const program = await Program.load(buildDelegated('inline'), { allowUnsupported: true });
    const problems = program.methodMeta('forward').problems;
    expect(problems.find((problem) => problem.code === 'ERR_UNSUPPORTED_BACKEND')?.message).toContain(backendId);
  });

  it('lists the backend id', async () => {
    const program = await Program.load(buildDelegated('segment'), { allowUnsupported: true });
    expect(program.methodMeta('forward').backends).toEqual([backendId]);
  });

  it('rejects execution', async () => {
    const program = await Program.load(buildDelegated('segment'), { allowUnsupported: true });
    await expectErrorCode(program.execute('forward', [makeTensor('float32', [2], [1, 2])]), 'ERR_UNSUPPORTED_BACKEND');
  });

  it('rejects a delegate index out of range', async () => {
    const bytes = build((m) => {
      const x = m.tensor({ dtype: 'float32', sizes: [2] });
      m.delegateCall(0, [x]);
    });
    await expectErrorCode(Program.load(bytes), 'ERR_PTE_MALFORMED');
  });

  it('rejects a payload segment out of range', async () => {
    const bytes = build((m) => {
      const delegate = m.delegate({ id: backendId, payload: new Uint8Array([1]), processedIndex: 7 });
      m.delegateCall(delegate, []);
    });
    await expectErrorCode(Program.load(bytes, { allowUnsupported: true }), 'ERR_PTE_MALFORMED');
  });

  it.skipIf(!safeSupportedBackends().includes('XnnpackBackend'))('rejects a bad XNNPACK payload', async () => {
    const bytes = build((m) => {
      const x = m.tensor({ dtype: 'float32', sizes: [2] });
      const delegate = m.delegate({ id: 'XnnpackBackend', payload: new Uint8Array(64).fill(0x5a) });
      m.delegateCall(delegate, [x, x]);
      m.setInputs([x]).setOutputs([x]);
    });
    await expectErrorCode(Program.load(bytes), 'ERR_DELEGATE');
  });
});

function safeSupportedBackends(): string[] {
  try {
    return supportedBackends();
  } catch {
    return [];
  }
}

describe('MoveCall', () => {
  it('moves a tensor into the output', async () => {
    const bytes = build((m) => {
      const x = m.tensor({ dtype: 'float32', sizes: [3] });
      const result = m.tensor({ dtype: 'float32', sizes: [3] });
      const output = m.tensor({ dtype: 'float32', sizes: [3] });
      m.kernel('aten::add.Scalar_out', [x, m.double(1.5), m.int(1), result, result]);
      m.move(result, output);
      m.setInputs([x]).setOutputs([output]);
    });
    const program = await Program.load(bytes);
    const outputs = await program.execute('forward', [makeTensor('float32', [3], [1, 2, 3])]);
    expectTensor(outputs[0], 'float32', [3], [2.5, 3.5, 4.5]);
  });

  it('moves an Int', async () => {
    const bytes = build((m) => {
      const source = m.int(7);
      const target = m.int(0);
      m.move(source, target);
      m.setOutputs([target]);
    });
    const program = await Program.load(bytes);
    expect(Number((await program.execute('forward', []))[0])).toBe(7);
  });

  it('repeats a move on every call', async () => {
    const bytes = build((m) => {
      const x = m.tensor({ dtype: 'float32', sizes: [2] });
      const result = m.tensor({ dtype: 'float32', sizes: [2] });
      const output = m.tensor({ dtype: 'float32', sizes: [2] });
      m.kernel('aten::neg.out', [x, result, result]);
      m.move(result, output);
      m.setInputs([x]).setOutputs([output]);
    });
    const program = await Program.load(bytes);
    await program.execute('forward', [makeTensor('float32', [2], [1, 2])]);
    const outputs = await program.execute('forward', [makeTensor('float32', [2], [5, -6])]);
    expectTensor(outputs[0], 'float32', [2], [-5, 6]);
  });

  it('rejects an index out of range', async () => {
    const bytes = build((m) => {
      m.move(m.int(1), 5);
    });
    await expectErrorCode(Program.load(bytes), 'ERR_PTE_MALFORMED');
  });
});

/**
 * Upstream's emitter (exir/emit/_emitter.py, _emit_cond) lowers torch.cond to:
 * JumpFalse(pred, start of false branch), true branch, JumpFalse(constant false, end),
 * false branch. With the cond last in the graph, "end" equals the instruction count.
 * Here: y = x * 2 when every element of x is > 0, else y = x - 1.
 */
function buildCond(trailing: boolean): Uint8Array {
  return build((m) => {
    const x = m.tensor({ dtype: 'float32', sizes: [3] });
    const pred = m.tensor({ dtype: 'bool', sizes: [3] });
    const y = m.tensor({ dtype: 'float32', sizes: [3] });
    const alwaysFalse = m.bool(false);
    m.kernel('aten::gt.Scalar_out', [x, m.double(0), pred, pred]);
    const skipTrue = m.jumpFalse(pred, -1);
    m.kernel('aten::mul.Scalar_out', [x, m.double(2), y, y]);
    const skipFalse = m.jumpFalse(alwaysFalse, -1);
    m.patchJump(skipTrue, m.nextInstruction);
    m.kernel('aten::sub.Scalar_out', [x, m.double(1), m.int(1), y, y]);
    m.patchJump(skipFalse, m.nextInstruction);
    if (trailing) m.kernel('aten::add.Scalar_out', [y, m.double(0), m.int(1), y, y]);
    m.setInputs([x]).setOutputs([y]);
  });
}

describe('JumpFalseCall', () => {
  const positive = [1, 2, 3];
  const mixed = [1, -2, 3];

  it('takes the true branch', async () => {
    const program = await Program.load(buildCond(true));
    const outputs = await program.execute('forward', [makeTensor('float32', [3], positive)]);
    expectTensor(outputs[0], 'float32', [3], positive.map((v) => v * 2));
  });

  it('takes the false branch', async () => {
    const program = await Program.load(buildCond(true));
    const outputs = await program.execute('forward', [makeTensor('float32', [3], mixed)]);
    expectTensor(outputs[0], 'float32', [3], mixed.map((v) => v - 1));
  });

  it('jumps to the end of the chain', async () => {
    // Valid in upstream's runtime: execution stops when the next index equals the count.
    const program = await Program.load(buildCond(false));
    const outputs = await program.execute('forward', [makeTensor('float32', [3], positive)]);
    expectTensor(outputs[0], 'float32', [3], positive.map((v) => v * 2));
  });

  it('branches on a Bool input', async () => {
    // y = x + 10 when flag is true, else y = x + 20.
    const bytes = build((m) => {
      const x = m.tensor({ dtype: 'float32', sizes: [1] });
      const flag = m.bool(false);
      const y = m.tensor({ dtype: 'float32', sizes: [1] });
      const one = m.int(1);
      const skipTrue = m.jumpFalse(flag, -1);
      m.kernel('aten::add.Scalar_out', [x, m.double(10), one, y, y]);
      const skipFalse = m.jumpFalse(m.bool(false), -1);
      m.patchJump(skipTrue, m.nextInstruction);
      m.kernel('aten::add.Scalar_out', [x, m.double(20), one, y, y]);
      m.patchJump(skipFalse, m.nextInstruction);
      m.kernel('aten::relu.out', [y, y, y]);
      m.setInputs([x, flag]).setOutputs([y]);
    });
    const program = await Program.load(bytes);
    const x = makeTensor('float32', [1], [1]);
    expectTensor((await program.execute('forward', [x, true]))[0], 'float32', [1], [11], {}, 'flag true');
    expectTensor((await program.execute('forward', [x, false]))[0], 'float32', [1], [21], {}, 'flag false');
  });

  it('takes each concurrent call down its own branch', async () => {
    // Concurrent calls of a method with jumps run one after another, not as one batch.
    const program = await Program.load(buildCond(true), { maxBatch: 8 });
    const inputs = [positive, mixed, positive, mixed, [-1, -1, -1], [5, 6, 7]];
    const outputs = await Promise.all(inputs.map((values) => program.execute('forward', [makeTensor('float32', [3], values)])));
    outputs.forEach((output, i) => {
      const values = inputs[i]!;
      const expected = values.every((v) => v > 0) ? values.map((v) => v * 2) : values.map((v) => v - 1);
      expectTensor(output[0], 'float32', [3], expected, {}, `call ${i}`);
    });
  });

  it('runs a loop', async () => {
    // Doubles x until some element reaches 100: a backward jump over a bool tensor.
    const bytes = build((m) => {
      const x = m.tensor({ dtype: 'float32', sizes: [2] });
      const y = m.tensor({ dtype: 'float32', sizes: [2] });
      const keepGoing = m.tensor({ dtype: 'bool', sizes: [2] });
      m.kernel('aten::add.Scalar_out', [x, m.double(0), m.int(1), y, y]);
      const loopStart = m.nextInstruction;
      m.kernel('aten::mul.Scalar_out', [y, m.double(2), y, y]);
      m.kernel('aten::lt.Scalar_out', [y, m.double(100), keepGoing, keepGoing]);
      const exit = m.jumpFalse(keepGoing, -1);
      m.jumpFalse(m.bool(false), loopStart);
      m.patchJump(exit, m.nextInstruction);
      m.kernel('aten::relu.out', [y, y, y]);
      m.setInputs([x]).setOutputs([y]);
    });
    const input = [3, 5];
    let reference = input.slice();
    do reference = reference.map((v) => v * 2);
    while (reference.every((v) => v < 100));
    const program = await Program.load(bytes);
    const outputs = await program.execute('forward', [makeTensor('float32', [2], input)]);
    expectTensor(outputs[0], 'float32', [2], reference);
  });

  it('stops an endless loop', async () => {
    const bytes = build((m) => {
      m.jumpFalse(m.bool(false), 0);
    });
    const program = await Program.load(bytes, { maxInstructions: 1000 });
    await expectErrorCode(program.execute('forward', []), 'ERR_EXECUTION_LIMIT');
  });

  it('rejects a destination past the end', async () => {
    const bytes = build((m) => {
      m.jumpFalse(m.bool(false), 5);
    });
    await expectErrorCode(Program.load(bytes), 'ERR_PTE_MALFORMED');
  });

  it('rejects a non-Bool condition', async () => {
    const bytes = build((m) => {
      m.jumpFalse(m.int(0), 0);
    });
    await expectErrorCode(Program.load(bytes), 'ERR_PTE_MALFORMED');
  });
});

describe('FreeCall', () => {
  /** y = (x + 1) * 3 through an unplanned, unbound intermediate that is freed after use. */
  function buildFree(): Uint8Array {
    return build((m) => {
      const x = m.tensor({ dtype: 'float32', sizes: [4], dynamism: 'dynamic_unbound', planned: false });
      const temporary = m.tensor({ dtype: 'float32', sizes: [4], dynamism: 'dynamic_unbound', planned: false });
      const y = m.tensor({ dtype: 'float32', sizes: [4], dynamism: 'dynamic_unbound', planned: false });
      m.kernel('aten::add.Scalar_out', [x, m.double(1), m.int(1), temporary, temporary]);
      m.kernel('aten::mul.Scalar_out', [temporary, m.double(3), y, y]);
      m.free(temporary);
      m.setInputs([x]).setOutputs([y]);
    });
  }

  it('keeps outputs after a free', async () => {
    const program = await Program.load(buildFree());
    const outputs = await program.execute('forward', [makeTensor('float32', [4], [0, 1, 2, 3])]);
    expectTensor(outputs[0], 'float32', [4], [3, 6, 9, 12]);
  });

  it('reallocates on the next call', async () => {
    const program = await Program.load(buildFree());
    await program.execute('forward', [makeTensor('float32', [4], [0, 1, 2, 3])]);
    const outputs = await program.execute('forward', [makeTensor('float32', [2], [10, 20])]);
    expectTensor(outputs[0], 'float32', [2], [33, 63]);
  });

  it('frees a planned tensor after use', async () => {
    // The runtime keeps planned memory in its arena, so a second call still has it.
    const bytes = build((m) => {
      const x = m.tensor({ dtype: 'float32', sizes: [2] });
      const temporary = m.tensor({ dtype: 'float32', sizes: [2] });
      const y = m.tensor({ dtype: 'float32', sizes: [2] });
      m.kernel('aten::neg.out', [x, temporary, temporary]);
      m.kernel('aten::mul.Scalar_out', [temporary, m.double(2), y, y]);
      m.free(temporary);
      m.setInputs([x]).setOutputs([y]);
    });
    const program = await Program.load(bytes);
    await program.execute('forward', [makeTensor('float32', [2], [1, 1])]);
    const outputs = await program.execute('forward', [makeTensor('float32', [2], [4, -5])]);
    expectTensor(outputs[0], 'float32', [2], [-8, 10]);
  });

  it('rejects a non-tensor value', async () => {
    const bytes = build((m) => {
      m.free(m.int(3));
    });
    await expectErrorCode(Program.load(bytes), 'ERR_PTE_MALFORMED');
  });
});
