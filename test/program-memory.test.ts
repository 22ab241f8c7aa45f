// The memory plan and dynamic shapes: aliasing through shared offsets, several arenas,
// bounded and unbounded dynamic tensors.
import { describe, expect, it } from 'vitest';

import { Program } from '../src/program.js';
import { expectErrorCode, expectTensor, makeTensor } from './helpers.js';
import { ProgramBuilder, type MethodBuilder } from './tooling/pte-writer.js';

function build(define: (method: MethodBuilder) => void): Uint8Array {
  const builder = new ProgramBuilder();
  define(builder.method('forward'));
  return builder.build();
}

function range(length: number, scale = 1): number[] {
  return Array.from({ length }, (_, index) => (index + 1) * scale);
}

describe('memory plan', () => {
  it('plans the output over the input', async () => {
    // y = x + x, with y at x's offset: the kernel reads and writes the same bytes.
    const bytes = build((m) => {
      const x = m.tensor({ dtype: 'float32', sizes: [4], planned: { offset: 0 } });
      const y = m.tensor({ dtype: 'float32', sizes: [4], planned: { offset: 0 } });
      m.kernel('aten::add.out', [x, x, m.int(1), y, y]);
      m.setInputs([x]).setOutputs([y]);
    });
    const program = await Program.load(bytes);
    const outputs = await program.execute('forward', [makeTensor('float32', [4], [1, 2, 3, 4])]);
    expectTensor(outputs[0], 'float32', [4], [2, 4, 6, 8]);
  });

  it('leaves the caller input unchanged', async () => {
    const bytes = build((m) => {
      const x = m.tensor({ dtype: 'float32', sizes: [2], planned: { offset: 0 } });
      const y = m.tensor({ dtype: 'float32', sizes: [2], planned: { offset: 0 } });
      m.kernel('aten::neg.out', [x, y, y]);
      m.setInputs([x]).setOutputs([y]);
    });
    const program = await Program.load(bytes);
    const input = makeTensor('float32', [2], [1, 2]);
    await program.execute('forward', [input]);
    expect(Array.from(input.data as Float32Array)).toEqual([1, 2]);
  });

  it('reads a view through a shared offset', async () => {
    // w is a [3, 2] view of v ([2, 3]) because both sit at offset 64.
    const bytes = build((m) => {
      const x = m.tensor({ dtype: 'float32', sizes: [2, 3], planned: { offset: 0 } });
      const v = m.tensor({ dtype: 'float32', sizes: [2, 3], planned: { offset: 64 } });
      const w = m.tensor({ dtype: 'float32', sizes: [3, 2], planned: { offset: 64 } });
      const y = m.tensor({ dtype: 'float32', sizes: [3, 2], planned: { offset: 128 } });
      m.kernel('aten::mul.Scalar_out', [x, m.double(10), v, v]);
      m.kernel('aten::add.Scalar_out', [w, m.double(1), m.int(1), y, y]);
      m.setInputs([x]).setOutputs([y]);
    });
    const program = await Program.load(bytes);
    const outputs = await program.execute('forward', [makeTensor('float32', [2, 3], [1, 2, 3, 4, 5, 6])]);
    expectTensor(outputs[0], 'float32', [3, 2], [11, 21, 31, 41, 51, 61]);
  });

  it('reuses memory of a dead value', async () => {
    // t1 and t3 share offset 0 because t1 is dead when t3 is written.
    const bytes = build((m) => {
      const x = m.tensor({ dtype: 'float32', sizes: [2], planned: { offset: 32 } });
      const t1 = m.tensor({ dtype: 'float32', sizes: [2], planned: { offset: 0 } });
      const t2 = m.tensor({ dtype: 'float32', sizes: [2], planned: { offset: 16 } });
      const t3 = m.tensor({ dtype: 'float32', sizes: [2], planned: { offset: 0 } });
      m.kernel('aten::mul.Scalar_out', [x, m.double(2), t1, t1]);
      m.kernel('aten::add.Scalar_out', [t1, m.double(1), m.int(1), t2, t2]);
      m.kernel('aten::mul.out', [t2, x, t3, t3]);
      m.setInputs([x]).setOutputs([t3]);
    });
    const program = await Program.load(bytes);
    const input = [3, -0.5];
    const outputs = await program.execute('forward', [makeTensor('float32', [2], input)]);
    expectTensor(outputs[0], 'float32', [2], input.map((v) => (v * 2 + 1) * v));
  });

  it('uses a second arena', async () => {
    const bytes = build((m) => {
      const x = m.tensor({ dtype: 'float32', sizes: [2], planned: { memoryId: 1, offset: 0 } });
      const t = m.tensor({ dtype: 'float32', sizes: [2], planned: { memoryId: 2, offset: 0 } });
      const y = m.tensor({ dtype: 'float32', sizes: [2], planned: { memoryId: 1, offset: 0 } });
      m.kernel('aten::neg.out', [x, t, t]);
      m.kernel('aten::add.out', [t, t, m.int(1), y, y]);
      m.setInputs([x]).setOutputs([y]);
    });
    const program = await Program.load(bytes);
    const outputs = await program.execute('forward', [makeTensor('float32', [2], [1, -3])]);
    expectTensor(outputs[0], 'float32', [2], [-2, 6]);
  });

  it('reports planned arena sizes', async () => {
    const bytes = build((m) => {
      m.tensor({ dtype: 'float32', sizes: [2], planned: { memoryId: 1, offset: 0 } });
      m.tensor({ dtype: 'float64', sizes: [5], planned: { memoryId: 2, offset: 8 } });
    });
    const program = await Program.load(bytes);
    expect(program.methodMeta('forward').plannedBufferSizes).toEqual([16, 48]);
  });

  it('rejects a tensor beyond its arena', async () => {
    const builder = new ProgramBuilder();
    const m = builder.method('forward');
    m.tensor({ dtype: 'float32', sizes: [8], planned: { offset: 16 } });
    m.setBufferSizes([0, 32]);
    await expectErrorCode(Program.load(builder.build()), 'ERR_PTE_MALFORMED');
  });

  it('rejects an unknown memory id', async () => {
    const builder = new ProgramBuilder();
    const m = builder.method('forward');
    m.tensor({ dtype: 'float32', sizes: [1], planned: { memoryId: 3, offset: 0 } });
    m.setBufferSizes([0, 16]);
    await expectErrorCode(Program.load(builder.build()), 'ERR_PTE_MALFORMED');
  });

  it('runs concurrent calls separately', async () => {
    const bytes = build((m) => {
      const x = m.tensor({ dtype: 'float32', sizes: [64] });
      const t = m.tensor({ dtype: 'float32', sizes: [64] });
      const y = m.tensor({ dtype: 'float32', sizes: [64] });
      m.kernel('aten::mul.out', [x, x, t, t]);
      m.kernel('aten::add.out', [t, x, m.int(1), y, y]);
      m.setInputs([x]).setOutputs([y]);
    });
    const program = await Program.load(bytes);
    const inputs = [1, 2, 3, 4, 5, 6, 7, 8].map((scale) => range(64, scale));
    const outputs = await Promise.all(inputs.map((input) => program.execute('forward', [makeTensor('float32', [64], input)])));
    outputs.forEach((output, index) => {
      expectTensor(output[0], 'float32', [64], inputs[index]!.map((v) => v * v + v), {}, `call ${index}`);
    });
  });
});

describe('bounded dynamic shapes', () => {
  /** y = x + 1 for x of length up to 8; y is bounded too and resized by the kernel. */
  function buildBounded(): Uint8Array {
    return build((m) => {
      const x = m.tensor({ dtype: 'float32', sizes: [8], dynamism: 'dynamic_bound' });
      const y = m.tensor({ dtype: 'float32', sizes: [8], dynamism: 'dynamic_bound' });
      m.kernel('aten::add.Scalar_out', [x, m.double(1), m.int(1), y, y]);
      m.setInputs([x]).setOutputs([y]);
    });
  }

  for (const length of [1, 5, 8]) {
    it(`resizes the output to ${length}`, async () => {
      const program = await Program.load(buildBounded());
      const input = range(length);
      const outputs = await program.execute('forward', [makeTensor('float32', [length], input)]);
      expectTensor(outputs[0], 'float32', [length], input.map((v) => v + 1));
    });
  }

  it('accepts an empty input', async () => {
    const program = await Program.load(buildBounded());
    const outputs = await program.execute('forward', [makeTensor('float32', [0], [])]);
    expectTensor(outputs[0], 'float32', [0], []);
  });

  it('shrinks and grows across calls', async () => {
    const program = await Program.load(buildBounded());
    for (const length of [6, 2, 7]) {
      const input = range(length, 0.5);
      const outputs = await program.execute('forward', [makeTensor('float32', [length], input)]);
      expectTensor(outputs[0], 'float32', [length], input.map((v) => v + 1), {}, `length ${length}`);
    }
  });

  it('rejects a length beyond the bound', async () => {
    const program = await Program.load(buildBounded());
    await expectErrorCode(program.execute('forward', [makeTensor('float32', [9], range(9))]), 'ERR_INVALID_INPUT');
  });

  it('rejects a different rank', async () => {
    const program = await Program.load(buildBounded());
    await expectErrorCode(program.execute('forward', [makeTensor('float32', [2, 2], range(4))]), 'ERR_INVALID_INPUT');
  });

  it('bounds one dimension of two', async () => {
    // [n, 3] with n up to 4, through a bounded intermediate.
    const bytes = build((m) => {
      const x = m.tensor({ dtype: 'float32', sizes: [4, 3], dynamism: 'dynamic_bound' });
      const t = m.tensor({ dtype: 'float32', sizes: [4, 3], dynamism: 'dynamic_bound' });
      const y = m.tensor({ dtype: 'float32', sizes: [4, 3], dynamism: 'dynamic_bound' });
      m.kernel('aten::mul.out', [x, x, t, t]);
      m.kernel('aten::sub.out', [t, x, m.int(2), y, y]);
      m.setInputs([x]).setOutputs([y]);
    });
    const program = await Program.load(bytes);
    const input = range(6, 0.25);
    const outputs = await program.execute('forward', [makeTensor('float32', [2, 3], input)]);
    expectTensor(outputs[0], 'float32', [2, 3], input.map((v) => v * v - 2 * v));
  });

  it('rejects a static shape mismatch', async () => {
    const bytes = build((m) => {
      const x = m.tensor({ dtype: 'float32', sizes: [4] });
      m.setInputs([x]).setOutputs([x]);
    });
    const program = await Program.load(bytes);
    await expectErrorCode(program.execute('forward', [makeTensor('float32', [3], range(3))]), 'ERR_INVALID_INPUT');
  });

  it('rejects a dtype mismatch', async () => {
    const program = await Program.load(buildBounded());
    await expectErrorCode(program.execute('forward', [makeTensor('float64', [2], range(2))]), 'ERR_INVALID_INPUT');
  });
});

describe('unbound dynamic shapes', () => {
  /** y = x * 2 with unplanned, unbound input and output. */
  function buildUnbound(): Uint8Array {
    return build((m) => {
      const x = m.tensor({ dtype: 'float32', sizes: [1], dynamism: 'dynamic_unbound', planned: false });
      const y = m.tensor({ dtype: 'float32', sizes: [1], dynamism: 'dynamic_unbound', planned: false });
      m.kernel('aten::mul.Scalar_out', [x, m.double(2), y, y]);
      m.setInputs([x]).setOutputs([y]);
    });
  }

  for (const length of [3, 1000]) {
    it(`runs with length ${length}`, async () => {
      const program = await Program.load(buildUnbound());
      const input = range(length);
      const outputs = await program.execute('forward', [makeTensor('float32', [length], input)]);
      expectTensor(outputs[0], 'float32', [length], input.map((v) => v * 2));
    });
  }

  it('runs with the declared length', async () => {
    // The declared sizes [1] of an unbound tensor are no promise of memory.
    const program = await Program.load(buildUnbound());
    const outputs = await program.execute('forward', [makeTensor('float32', [1], [21])]);
    expectTensor(outputs[0], 'float32', [1], [42]);
  });

  it('grows after a long input', async () => {
    const program = await Program.load(buildUnbound());
    await program.execute('forward', [makeTensor('float32', [2], [1, 2])]);
    const input = range(300);
    const outputs = await program.execute('forward', [makeTensor('float32', [300], input)]);
    expectTensor(outputs[0], 'float32', [300], input.map((v) => v * 2));
  });
});
