// File-format conformance of the runtime with programs that the test writer produces:
// constant storage, the extended header, segments, mutable data, named data and .ptd data.
import { readFileSync } from 'node:fs';
import path from 'node:path';

import { describe, expect, it } from 'vitest';

import { Program } from '../src/program.js';
import { expectErrorCode, expectTensor, fromJson, hasSharedPte, makeTensor, readExpected, sharedPteDir, type ExpectedCase, type JsonTensor } from './helpers.js';
import { readExtendedHeader } from './tooling/flatc-json.js';
import { ProgramBuilder, type BuildOptions } from './tooling/pte-writer.js';
import { buildAddOneProgram, buildLinearProgram } from './tooling/sample-programs.js';

async function runCase(bytes: Uint8Array, testCase: ExpectedCase, atol: number): Promise<void> {
  const program = await Program.load(bytes);
  try {
    const outputs = await program.execute(testCase.method, testCase.inputs.map(fromJson));
    expect(outputs.length, 'output count').toBe(testCase.outputs.length);
    testCase.outputs.forEach((expected: JsonTensor, index) => {
      expectTensor(outputs[index], expected.dtype as 'float32', expected.shape!, expected.data as number[], { atol }, `output ${index}`);
    });
  } finally {
    program.dispose();
  }
}

/** y = x + c for a float32 [3] input, with c = [10, 20, 30] as a constant. */
function buildAddConstant(options: BuildOptions): Uint8Array {
  const program = new ProgramBuilder();
  const forward = program.method('forward');
  const x = forward.tensor({ dtype: 'float32', sizes: [3] });
  const c = forward.tensor({ dtype: 'float32', sizes: [3], constant: [10, 20, 30] });
  const y = forward.tensor({ dtype: 'float32', sizes: [3] });
  forward.kernel('aten::add.out', [x, c, forward.int(1), y, y]);
  forward.setInputs([x]).setOutputs([y]);
  return program.build(options);
}

const x3 = makeTensor('float32', [3], [1, 2, 3]);

describe.skipIf(!hasSharedPte)('rewritten upstream programs', () => {
  it('linear matches its expected values', async () => {
    const expected = readExpected('et-ModuleLinear-no-constant-segment');
    await runCase(buildLinearProgram(), expected, expected.tolerance.atol ?? 0);
  });

  it('linear matches its extra cases', async () => {
    const expected = readExpected('et-ModuleLinear-no-constant-segment');
    for (const extra of expected.extra_cases ?? []) await runCase(buildLinearProgram(), extra, expected.tolerance.atol ?? 0);
  });

  it('add-one matches its expected values', async () => {
    const expected = readExpected('et-arduino-AddModel');
    await runCase(buildAddOneProgram(), expected, expected.tolerance.atol ?? 0);
  });

  it('upstream linear file agrees with the rewrite', async () => {
    const expected = readExpected('et-ModuleLinear-no-constant-segment');
    const bytes = new Uint8Array(readFileSync(path.join(sharedPteDir, 'et-ModuleLinear-no-constant-segment.pte')));
    await runCase(bytes, expected, expected.tolerance.atol ?? 0);
  });
});

describe('constant storage', () => {
  it('reads inline constants', async () => {
    const program = await Program.load(buildAddConstant({ constants: 'inline' }));
    expectTensor((await program.execute('forward', [x3]))[0], 'float32', [3], [11, 22, 33]);
  });

  it('reports inline storage', async () => {
    const program = await Program.load(buildAddConstant({ constants: 'inline' }));
    expect(program.info().constantStorage).toBe('inline');
  });

  it('reads fields stored at their defaults', async () => {
    const program = await Program.load(buildAddConstant({ writeDefaults: true }));
    expectTensor((await program.execute('forward', [x3]))[0], 'float32', [3], [11, 22, 33]);
  });

  it('reads segment constants', async () => {
    const program = await Program.load(buildAddConstant({ constants: 'segment' }));
    expectTensor((await program.execute('forward', [x3]))[0], 'float32', [3], [11, 22, 33]);
  });

  it('reports segment storage', async () => {
    const program = await Program.load(buildAddConstant({ constants: 'segment' }));
    expect(program.info().constantStorage).toBe('segment');
  });

  it('reads padded segment constants', async () => {
    // Three constants of 3 floats: the second and third start after 4 bytes of padding.
    const builder = new ProgramBuilder();
    const forward = builder.method('forward');
    const a = forward.tensor({ dtype: 'float32', sizes: [3], constant: [1, 1, 1] });
    const b = forward.tensor({ dtype: 'float32', sizes: [3], constant: [2, 4, 8] });
    const c = forward.tensor({ dtype: 'float32', sizes: [3], constant: [100, 200, 300] });
    const ab = forward.tensor({ dtype: 'float32', sizes: [3] });
    const y = forward.tensor({ dtype: 'float32', sizes: [3] });
    const one = forward.int(1);
    forward.kernel('aten::add.out', [a, b, one, ab, ab]);
    forward.kernel('aten::add.out', [ab, c, one, y, y]);
    forward.setOutputs([y]);
    const program = await Program.load(builder.build());
    expectTensor((await program.execute('forward', []))[0], 'float32', [3], [103, 205, 309]);
  });

  it('reads int64 constants', async () => {
    const builder = new ProgramBuilder();
    const forward = builder.method('forward');
    const x = forward.tensor({ dtype: 'int64', sizes: [2] });
    const c = forward.tensor({ dtype: 'int64', sizes: [2], constant: [2n ** 40n, -7n] });
    const y = forward.tensor({ dtype: 'int64', sizes: [2] });
    forward.kernel('aten::add.out', [x, c, forward.int(1), y, y]);
    forward.setInputs([x]).setOutputs([y]);
    const program = await Program.load(builder.build());
    const outputs = await program.execute('forward', [makeTensor('int64', [2], [1n, 2n])]);
    expectTensor(outputs[0], 'int64', [2], [2n ** 40n + 1n, -5n]);
  });
});

describe('extended header', () => {
  it('runs with the 32-byte header', async () => {
    const program = await Program.load(buildAddConstant({ extendedHeader: 32 }));
    expectTensor((await program.execute('forward', [x3]))[0], 'float32', [3], [11, 22, 33]);
  });

  it('runs with the 24-byte header', async () => {
    const program = await Program.load(buildAddConstant({ extendedHeader: 24 }));
    expectTensor((await program.execute('forward', [x3]))[0], 'float32', [3], [11, 22, 33]);
  });

  it('runs without a header', async () => {
    const program = await Program.load(buildAddConstant({ extendedHeader: 'none', constants: 'inline' }));
    expectTensor((await program.execute('forward', [x3]))[0], 'float32', [3], [11, 22, 33]);
  });

  it('runs with a header but no segment data', async () => {
    const program = await Program.load(buildAddConstant({ extendedHeader: 32, constants: 'inline' }));
    expectTensor((await program.execute('forward', [x3]))[0], 'float32', [3], [11, 22, 33]);
  });

  it('runs with 4096-byte segment alignment', async () => {
    const program = await Program.load(buildAddConstant({ segmentAlignment: 4096 }));
    expectTensor((await program.execute('forward', [x3]))[0], 'float32', [3], [11, 22, 33]);
  });

  it('reports header presence', async () => {
    const program = await Program.load(buildAddConstant({}));
    expect(program.info().hasExtendedHeader).toBe(true);
  });

  it('reports header absence', async () => {
    const program = await Program.load(buildAddConstant({ constants: 'inline' }));
    expect(program.info().hasExtendedHeader).toBe(false);
  });

  it('reports header sizes', async () => {
    const bytes = buildAddConstant({});
    const header = readExtendedHeader(bytes)!;
    const info = (await Program.load(bytes)).info();
    expect([info.programSize, info.segmentBaseOffset, info.segmentDataSize]).toEqual([header.programSize, header.segmentBaseOffset, header.segmentDataSize]);
  });

  it('reports segment offsets', async () => {
    const program = await Program.load(buildAddConstant({}));
    expect(program.info().segments).toEqual([{ offset: 0, size: 12 }]);
  });

  it('rejects segments without a header', async () => {
    // The constant data is in a segment, but without the header the segment base offset is unknown.
    const error = await Program.load(buildAddConstant({ extendedHeader: 'none' })).then(
      () => undefined,
      (caught: unknown) => caught as { code?: string },
    );
    expect(error?.code, 'error code of the rejected load').toMatch(/^ERR_PTE_/);
  });

  it('rejects a truncated segment', async () => {
    const bytes = buildAddConstant({});
    await expectErrorCode(Program.load(bytes.subarray(0, bytes.length - 4)), 'ERR_PTE_TRUNCATED');
  });
});

describe('mutable data', () => {
  /** y = x + state, where state is planned memory with the initial value [10, 20, 30]. */
  function buildMutable(updateState: boolean): Uint8Array {
    const builder = new ProgramBuilder();
    const forward = builder.method('forward');
    const x = forward.tensor({ dtype: 'float32', sizes: [3] });
    const state = forward.tensor({ dtype: 'float32', sizes: [3], initial: [10, 20, 30] });
    const one = forward.int(1);
    if (updateState) {
      // state += x in place, then return the state.
      forward.kernel('aten::add.out', [state, x, one, state, state]);
      forward.setInputs([x]).setOutputs([state]);
    } else {
      const y = forward.tensor({ dtype: 'float32', sizes: [3] });
      forward.kernel('aten::add.out', [x, state, one, y, y]);
      forward.setInputs([x]).setOutputs([y]);
    }
    return builder.build();
  }

  it('loads the initial value', async () => {
    const program = await Program.load(buildMutable(false));
    expectTensor((await program.execute('forward', [x3]))[0], 'float32', [3], [11, 22, 33]);
  });

  it('keeps state across calls', async () => {
    const program = await Program.load(buildMutable(true));
    await program.execute('forward', [x3]);
    expectTensor((await program.execute('forward', [x3]))[0], 'float32', [3], [12, 24, 36]);
  });

  it('restarts state on reload', async () => {
    const bytes = buildMutable(true);
    await (await Program.load(bytes)).execute('forward', [x3]);
    const fresh = await Program.load(bytes);
    expectTensor((await fresh.execute('forward', [x3]))[0], 'float32', [3], [11, 22, 33]);
  });
});

describe('named data', () => {
  function buildWithNamedData(): Uint8Array {
    const builder = new ProgramBuilder();
    const forward = builder.method('forward');
    const x = forward.tensor({ dtype: 'float32', sizes: [3] });
    forward.setInputs([x]).setOutputs([x]);
    builder.addNamedData('weights.0', new Uint8Array([1, 2, 3, 4]), 16);
    builder.addNamedData('bias', new Uint8Array(64).fill(7), 64);
    return builder.build();
  }

  it('lists named data keys', async () => {
    const program = await Program.load(buildWithNamedData());
    expect(program.info().namedDataKeys).toEqual(['weights.0', 'bias']);
  });

  it('runs next to named data', async () => {
    const program = await Program.load(buildWithNamedData());
    expectTensor((await program.execute('forward', [x3]))[0], 'float32', [3], [1, 2, 3]);
  });

  it('rejects an out-of-range segment', async () => {
    const builder = new ProgramBuilder();
    builder.method('forward');
    builder.rawNamedData.push({ key: 'missing', segmentIndex: 9 });
    await expectErrorCode(Program.load(builder.build()), 'ERR_PTE_MALFORMED');
  });
});

describe('external tensor data', () => {
  function buildExternal(): Uint8Array {
    const builder = new ProgramBuilder();
    const forward = builder.method('forward');
    const x = forward.tensor({ dtype: 'float32', sizes: [3] });
    const weight = forward.tensor({ dtype: 'float32', sizes: [3], external: 'linear.weight' });
    const y = forward.tensor({ dtype: 'float32', sizes: [3] });
    forward.kernel('aten::mul.out', [x, weight, y, y]);
    forward.setInputs([x]).setOutputs([y]);
    return builder.build();
  }

  it('rejects .ptd data on load', async () => {
    await expectErrorCode(Program.load(buildExternal()), 'ERR_PTE_EXTERNAL_DATA');
  });

  it('names the external tensor', async () => {
    const error = await expectErrorCode(Program.load(buildExternal()), 'ERR_PTE_EXTERNAL_DATA');
    expect(error.message).toContain('linear.weight');
  });

  it('lists .ptd data as a problem', async () => {
    const program = await Program.load(buildExternal(), { allowUnsupported: true });
    expect(program.methodMeta('forward').problems.map((problem) => problem.code)).toContain('ERR_PTE_EXTERNAL_DATA');
  });

  it('rejects executing with .ptd data', async () => {
    const program = await Program.load(buildExternal(), { allowUnsupported: true });
    await expectErrorCode(program.execute('forward', [x3]), 'ERR_PTE_EXTERNAL_DATA');
  });
});
