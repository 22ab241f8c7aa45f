// Hostile .pte files: truncations, bit flips and hand-made corruptions of every index, offset
// and size the loader checks. Each must be rejected with a stable error code, or load and
// then execute or fail cleanly. None may crash the process.
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

import { afterAll, describe, expect, it } from 'vitest';

import { EmbedImageError, type ErrorCode } from '../src/errors.js';
import { Program, typedArrayConstructor, type DType, type LoadOptions, type Value } from '../src/program.js';
import { expectErrorCode, expectTensor, hasSharedPte, makeTensor, sharedPteDir } from './helpers.js';
import {
  FlatPatcher,
  Slot,
  buildAddConstant,
  buildDynamicSquare,
  buildLoop,
  buildRelu,
  patchable,
  type NamedProgram,
} from './hostile-programs.js';
import { ProgramBuilder, type MethodBuilder } from './tooling/pte-writer.js';

/** Codes a damaged file may be rejected with at load. */
const LOAD_CODES: ErrorCode[] = [
  'ERR_PTE_TRUNCATED',
  'ERR_PTE_IDENTIFIER',
  'ERR_PTE_HEADER',
  'ERR_PTE_VERIFY',
  'ERR_PTE_MALFORMED',
  'ERR_PTE_EXTERNAL_DATA',
  'ERR_UNSUPPORTED_OPERATOR',
  'ERR_UNSUPPORTED_BACKEND',
  'ERR_UNSUPPORTED_DTYPE',
  'ERR_OUT_OF_MEMORY',
];

/** Codes a file cut short may be rejected with. */
const TRUNCATION_CODES: ErrorCode[] = ['ERR_PTE_TRUNCATED', 'ERR_PTE_IDENTIFIER', 'ERR_PTE_HEADER', 'ERR_PTE_VERIFY', 'ERR_PTE_MALFORMED'];

/** Small upstream files; larger ones take too long for the exhaustive loops. */
const SHARED_NAMES = ['et-apple-add.pte', 'et-ModuleLinear-no-constant-segment.pte', 'et-arduino-AddModel.pte'];

function writerPrograms(): NamedProgram[] {
  return [
    { name: 'relu', bytes: buildRelu() },
    { name: 'add-constant', bytes: buildAddConstant() },
    { name: 'add-constant-header24', bytes: buildAddConstant({ extendedHeader: 24 }) },
    { name: 'add-constant-inline', bytes: buildAddConstant({ constants: 'inline' }) },
    { name: 'dynamic-square', bytes: buildDynamicSquare() },
    { name: 'loop', bytes: buildLoop() },
  ];
}

function sharedPrograms(): NamedProgram[] {
  if (!hasSharedPte) return [];
  const present = new Set(readdirSync(sharedPteDir));
  return SHARED_NAMES.filter((name) => present.has(name)).map((name) => ({
    name,
    bytes: new Uint8Array(readFileSync(path.join(sharedPteDir, name))),
  }));
}

/** Loads `bytes` and returns the program, or the EmbedImageError that rejected it. */
async function tryLoad(bytes: Uint8Array, options: LoadOptions = {}): Promise<Program | EmbedImageError> {
  try {
    return await Program.load(bytes, { maxInstructions: 10_000, ...options });
  } catch (error) {
    if (error instanceof EmbedImageError) return error;
    throw error;
  }
}

/** Builds zero-filled inputs from a method's metadata, or returns undefined when one is too large. */
function zeroInputs(program: Program, method: string): Value[] | undefined {
  const inputs: Value[] = [];
  for (const meta of program.methodMeta(method).inputs) {
    if (meta.kind === 'tensor') {
      const shape = meta.shape ?? [];
      const count = shape.reduce((product, size) => product * size, 1);
      if (!Number.isSafeInteger(count) || count > 1 << 16) return undefined;
      inputs.push({ dtype: meta.dtype as DType, shape, data: new (typedArrayConstructor(meta.dtype as DType))(count) });
    } else if (meta.kind === 'int') {
      inputs.push(0);
    } else if (meta.kind === 'double') {
      inputs.push(0.5);
    } else if (meta.kind === 'bool') {
      inputs.push(false);
    } else {
      inputs.push(null);
    }
  }
  return inputs;
}

/** Runs every method of a loaded program with zero inputs. Each call must resolve or reject with a stable code. */
async function executeAll(program: Program, label: string): Promise<void> {
  for (const method of program.methodNames()) {
    try {
      // NOTE: a flipped method name that is not valid UTF-8 does not survive the trip to a JS
      // string and back, so methodMeta() and execute() reject it with ERR_METHOD_NOT_FOUND.
      const inputs = zeroInputs(program, method);
      if (inputs === undefined) continue;
      await program.execute(method, inputs);
    } catch (error) {
      expect(error, `${label}: execute ${method}`).toBeInstanceOf(EmbedImageError);
      expect((error as EmbedImageError).code, `${label}: ${(error as Error).message}`).not.toBe('ERR_INTERNAL');
    }
  }
}

/** Asserts a load rejection with `code` and a message matching `message`. */
async function expectLoadError(bytes: Uint8Array, code: ErrorCode, message: RegExp, options: LoadOptions = {}): Promise<void> {
  const error = await expectErrorCode(Program.load(bytes, options), code);
  expect(error.message).toMatch(message);
}

function build(define: (method: MethodBuilder, program: ProgramBuilder) => void, options = patchable): Uint8Array {
  const program = new ProgramBuilder();
  define(program.method('forward'), program);
  return program.build(options);
}

const allPrograms = (): NamedProgram[] => [...writerPrograms(), ...sharedPrograms()];

describe('truncated files', () => {
  for (const { name, bytes } of allPrograms()) {
    it(`rejects every prefix of ${name}`, async () => {
      for (let length = 0; length < bytes.length; length++) {
        const result = await tryLoad(bytes.subarray(0, length));
        if (!(result instanceof EmbedImageError)) {
          result.dispose();
          expect.fail(`${name} cut to ${length} of ${bytes.length} bytes loaded`);
        }
        expect(TRUNCATION_CODES, `${name} cut to ${length}: ${result.message}`).toContain(result.code);
      }
    });
  }

  it.skipIf(!hasSharedPte)('finds the shared files', () => {
    expect(sharedPrograms().map((program) => program.name)).toEqual(SHARED_NAMES);
  });
});

describe('bit flips', () => {
  for (const { name, bytes } of allPrograms()) {
    it(`survives flips in ${name}`, async () => {
      // Small files get every bit flipped. Larger ones get one flip per byte, at bit (byte % 8).
      const everyBit = bytes.length <= 512;
      const flips = everyBit ? bytes.length * 8 : bytes.length;
      for (let flip = 0; flip < flips; flip++) {
        const byte = everyBit ? flip >> 3 : flip;
        const bit = flip & 7;
        const damaged = bytes.slice();
        damaged[byte]! ^= 1 << bit;
        const label = `${name} byte ${byte} bit ${bit}`;
        const result = await tryLoad(damaged);
        if (result instanceof EmbedImageError) {
          expect(LOAD_CODES, `${label}: ${result.message}`).toContain(result.code);
          continue;
        }
        await executeAll(result, label);
        result.dispose();
      }
    });
  }
});

describe('header', () => {
  it('rejects a wrong identifier', async () => {
    const bytes = buildRelu();
    bytes.set(new TextEncoder().encode('XY99'), 4);
    await expectLoadError(bytes, 'ERR_PTE_IDENTIFIER', /file identifier is 'XY99'/);
  });

  it('rejects a too-short file', async () => {
    await expectLoadError(buildRelu().subarray(0, 5), 'ERR_PTE_TRUNCATED', /5 bytes/);
  });

  it('rejects a short header length', async () => {
    const bytes = buildAddConstant();
    new DataView(bytes.buffer).setUint32(12, 8, true);
    await expectLoadError(bytes, 'ERR_PTE_HEADER', /extended header length 8 is less than 24/);
  });

  it('rejects a program size past EOF', async () => {
    const bytes = buildAddConstant();
    new DataView(bytes.buffer).setBigUint64(16, 1n << 40n, true);
    await expectLoadError(bytes, 'ERR_PTE_TRUNCATED', /declares a 1099511627776-byte program/);
  });

  it('rejects a segment base inside the program', async () => {
    const bytes = buildAddConstant();
    new DataView(bytes.buffer).setBigUint64(24, 48n, true);
    await expectLoadError(bytes, 'ERR_PTE_HEADER', /segment base offset 48 lies inside the program/);
  });

  it('rejects segment data past EOF', async () => {
    const bytes = buildAddConstant();
    new DataView(bytes.buffer).setBigUint64(32, 1n << 62n, true);
    await expectLoadError(bytes, 'ERR_PTE_TRUNCATED', /declares 4611686018427387904 bytes of segment data/);
  });
});

describe('segments and constants', () => {
  it('rejects a segment size past EOF', async () => {
    const patcher = new FlatPatcher(buildAddConstant({ ...patchable, extendedHeader: 24 }));
    const segment = patcher.tableAt(patcher.deref(patcher.root(), Slot.program.segments), 0);
    patcher.setU64(patcher.require(segment, Slot.dataSegment.size), 1n << 40n);
    await expectLoadError(patcher.bytes, 'ERR_PTE_TRUNCATED', /segment 0 \(offset 0, size 1099511627776\) runs past/);
  });

  it('rejects a segment past the declared data', async () => {
    const patcher = new FlatPatcher(buildAddConstant(patchable));
    const segment = patcher.tableAt(patcher.deref(patcher.root(), Slot.program.segments), 0);
    patcher.setU64(patcher.require(segment, Slot.dataSegment.offset), 4096n);
    await expectLoadError(patcher.bytes, 'ERR_PTE_MALFORMED', /segment 0 \(offset 4096, size \d+\) runs past/);
  });

  it('rejects a constant segment index', async () => {
    const patcher = new FlatPatcher(buildAddConstant(patchable));
    const constants = patcher.deref(patcher.root(), Slot.program.constantSegment);
    patcher.setU32(patcher.require(constants, Slot.subsegment.segmentIndex), 7);
    await expectLoadError(patcher.bytes, 'ERR_PTE_MALFORMED', /constant_segment\.segment_index 7 is out of range \(1 segments\)/);
  });

  it('rejects a constant offset', async () => {
    const patcher = new FlatPatcher(buildAddConstant(patchable));
    const constants = patcher.deref(patcher.root(), Slot.program.constantSegment);
    const offsets = patcher.deref(constants, Slot.subsegment.offsets);
    patcher.setU64(patcher.elementAt(offsets, 1, 8), 1n << 62n);
    await expectLoadError(patcher.bytes, 'ERR_PTE_MALFORMED', /constant 1 of 16 bytes at offset 4611686018427387904 runs past/);
  });

  it('rejects a data_buffer_idx', async () => {
    const bytes = build((m) => {
      const c = m.tensor({ dtype: 'float32', sizes: [2], constant: [1, 2], dataBufferIndex: 9 });
      m.setOutputs([c]);
    });
    await expectLoadError(bytes, 'ERR_PTE_MALFORMED', /data_buffer_idx 9/);
  });

  it('rejects a short inline constant', async () => {
    const patcher = new FlatPatcher(buildAddConstant({ ...patchable, constants: 'inline' }));
    const buffers = patcher.deref(patcher.root(), Slot.program.constantBuffer);
    const storage = patcher.deref(patcher.tableAt(buffers, 1), 0);
    patcher.setU32(storage, 3);
    await expectLoadError(patcher.bytes, 'ERR_PTE_MALFORMED', /constant buffer 1 contains 3 bytes but the tensor needs 16/);
  });

  it('rejects a named data segment', async () => {
    const bytes = build((m, program) => {
      m.setOutputs([m.int(1)]);
      program.rawNamedData.push({ key: 'weights', segmentIndex: 9 });
    });
    await expectLoadError(bytes, 'ERR_PTE_MALFORMED', /named_data\['weights'\]\.segment_index 9/);
  });

  it('rejects a mutable data index', async () => {
    const bytes = build((m) => {
      const state = m.tensor({ dtype: 'float32', sizes: [2], initial: [1, 2], mutableDataSegmentsIndex: 4 });
      m.setOutputs([state]);
    });
    await expectLoadError(bytes, 'ERR_PTE_MALFORMED', /mutable_data_segments\[4\]/);
  });

  it('rejects a delegate payload segment', async () => {
    const bytes = build((m) => {
      const x = m.tensor({ dtype: 'float32', sizes: [1] });
      m.delegate({ id: 'XnnpackBackend', payload: new Uint8Array(8) });
      m.setInputs([x]).setOutputs([x]);
    });
    const patcher = new FlatPatcher(bytes);
    const delegate = patcher.tableAt(patcher.deref(patcher.plan(), Slot.plan.delegates), 0);
    const reference = patcher.deref(delegate, Slot.delegate.processed);
    patcher.setU32(patcher.require(reference, Slot.delegateReference.index), 5);
    await expectLoadError(patcher.bytes, 'ERR_PTE_MALFORMED', /payload segment 5 is out of range/);
  });
});

describe('memory plan', () => {
  it('rejects a 2^62-byte arena', async () => {
    const bytes = build((m) => {
      m.setOutputs([m.int(1)]).setBufferSizes([0, 2 ** 62]);
    });
    await expectLoadError(bytes, 'ERR_OUT_OF_MEMORY', /arena 1 alone declares 4611686018427387904/);
  });

  it('rejects a negative arena size', async () => {
    const bytes = build((m) => {
      m.setOutputs([m.int(1)]).setBufferSizes([0, -16]);
    });
    await expectLoadError(bytes, 'ERR_PTE_MALFORMED', /non_const_buffer_sizes\[1\] is negative \(-16\)/);
  });

  it('rejects a memory_id', async () => {
    const bytes = build((m) => {
      const x = m.tensor({ dtype: 'float32', sizes: [4], planned: { memoryId: 3, offset: 0 } });
      m.setInputs([x]).setOutputs([x]).setBufferSizes([0, 64]);
    });
    await expectLoadError(bytes, 'ERR_PTE_MALFORMED', /memory_id 3, which the plan does not have \(1 arenas\)/);
  });

  it('rejects memory_id 0', async () => {
    const bytes = build((m) => {
      const x = m.tensor({ dtype: 'float32', sizes: [4], planned: { memoryId: 0, offset: 0 } });
      m.setInputs([x]).setOutputs([x]).setBufferSizes([0, 64]);
    });
    await expectLoadError(bytes, 'ERR_PTE_MALFORMED', /memory_id 0/);
  });

  it('rejects an offset past the arena', async () => {
    const bytes = build((m) => {
      const x = m.tensor({ dtype: 'float32', sizes: [4], planned: { offset: 56 } });
      m.setInputs([x]).setOutputs([x]).setBufferSizes([0, 64]);
    });
    await expectLoadError(bytes, 'ERR_PTE_MALFORMED', /16 bytes at offset 56\) does not fit in arena 1 of 64 bytes/);
  });

  it('rejects a high offset word', async () => {
    const patcher = new FlatPatcher(buildRelu(patchable));
    const allocation = patcher.deref(patcher.valueTable(patcher.plan(), 0), Slot.tensor.allocationInfo);
    patcher.setU32(patcher.require(allocation, Slot.allocation.offsetHigh), 1);
    await expectLoadError(patcher.bytes, 'ERR_PTE_MALFORMED', /at offset 4294967296\) does not fit in arena 1/);
  });
});

describe('tensors', () => {
  it('rejects overflowing sizes', async () => {
    const bytes = build((m) => {
      const x = m.tensor({ dtype: 'float32', sizes: [2 ** 31 - 1, 2 ** 31 - 1, 2 ** 31 - 1], planned: false });
      m.setInputs([x]).setOutputs([x]);
    });
    await expectLoadError(bytes, 'ERR_PTE_MALFORMED', /tensor value 0 has invalid sizes \[2147483647, 2147483647, 2147483647\]/);
  });

  it('rejects sizes past 2^48 bytes', async () => {
    const bytes = build((m) => {
      const x = m.tensor({ dtype: 'int64', sizes: [2 ** 30, 2 ** 20], planned: false });
      m.setInputs([x]).setOutputs([x]);
    });
    await expectLoadError(bytes, 'ERR_PTE_MALFORMED', /invalid sizes \[1073741824, 1048576\]/);
  });

  it('rejects a negative size', async () => {
    const bytes = build((m) => {
      const x = m.tensor({ dtype: 'float32', sizes: [3, -2], planned: false });
      m.setInputs([x]).setOutputs([x]);
    });
    await expectLoadError(bytes, 'ERR_PTE_MALFORMED', /invalid sizes \[3, -2\]/);
  });

  it('rejects a repeated dim_order', async () => {
    const bytes = build((m) => {
      const x = m.tensor({ dtype: 'float32', sizes: [2, 2], dimOrder: [1, 1] });
      m.setInputs([x]).setOutputs([x]);
    });
    await expectLoadError(bytes, 'ERR_PTE_MALFORMED', /tensor value 0 has a dim_order that is not a permutation of its 2 dimensions/);
  });

  it('rejects a short dim_order', async () => {
    const bytes = build((m) => {
      const x = m.tensor({ dtype: 'float32', sizes: [2, 2, 2], dimOrder: [0, 1] });
      m.setInputs([x]).setOutputs([x]);
    });
    await expectLoadError(bytes, 'ERR_PTE_MALFORMED', /not a permutation of its 3 dimensions/);
  });

  it('rejects an out-of-range dim', async () => {
    const bytes = build((m) => {
      const x = m.tensor({ dtype: 'float32', sizes: [2, 2], dimOrder: [0, 7] });
      m.setInputs([x]).setOutputs([x]);
    });
    await expectLoadError(bytes, 'ERR_PTE_MALFORMED', /not a permutation of its 2 dimensions/);
  });

  it('rejects rank 17', async () => {
    const bytes = build((m) => {
      const x = m.tensor({ dtype: 'float32', sizes: new Array<number>(17).fill(1) });
      m.setInputs([x]).setOutputs([x]);
    });
    await expectLoadError(bytes, 'ERR_PTE_MALFORMED', /rank 17, above the limit 16/);
  });

  it('rejects an unknown scalar type', async () => {
    const bytes = build((m) => {
      const x = m.tensor({ dtype: 99, sizes: [2] });
      m.setInputs([x]).setOutputs([x]);
    });
    await expectLoadError(bytes, 'ERR_PTE_MALFORMED', /tensor value 0 has unknown scalar type 99/);
  });

  it('rejects a storage_offset', async () => {
    const bytes = build((m) => {
      const x = m.tensor({ dtype: 'float32', sizes: [2], storageOffset: 1 });
      m.setInputs([x]).setOutputs([x]);
    });
    await expectLoadError(bytes, 'ERR_PTE_MALFORMED', /storage_offset 1; only 0 is valid/);
  });

  it('rejects an unknown shape_dynamism', async () => {
    const patcher = new FlatPatcher(buildRelu(patchable));
    patcher.setU8(patcher.require(patcher.valueTable(patcher.plan(), 0), Slot.tensor.shapeDynamism), 9);
    await expectLoadError(patcher.bytes, 'ERR_PTE_MALFORMED', /unknown shape_dynamism 9/);
  });
});

describe('value indices', () => {
  it('rejects a kernel argument', async () => {
    const bytes = build((m) => {
      const x = m.tensor({ dtype: 'float32', sizes: [1] });
      m.kernel('aten::relu.out', [x, 99, x]);
      m.setInputs([x]).setOutputs([x]);
    });
    await expectLoadError(bytes, 'ERR_PTE_MALFORMED', /instruction 0: a kernel argument refers to value 99, out of range \(1 values\)/);
  });

  it('rejects a negative kernel argument', async () => {
    const bytes = build((m) => {
      const x = m.tensor({ dtype: 'float32', sizes: [1] });
      m.kernel('aten::relu.out', [x, -5, x]);
    });
    await expectLoadError(bytes, 'ERR_PTE_MALFORMED', /refers to value -5/);
  });

  it('rejects an operator index', async () => {
    const bytes = build((m) => {
      const x = m.tensor({ dtype: 'float32', sizes: [1] });
      m.kernelByIndex(5, [x, x, x]);
    });
    await expectLoadError(bytes, 'ERR_PTE_MALFORMED', /operator index 5 is out of range \(0 operators\)/);
  });

  it('rejects a delegate index', async () => {
    const bytes = build((m) => {
      const x = m.tensor({ dtype: 'float32', sizes: [1] });
      m.delegateCall(3, [x, x]);
    });
    await expectLoadError(bytes, 'ERR_PTE_MALFORMED', /delegate index 3 is out of range \(0 delegates\)/);
  });

  it('rejects an input index', async () => {
    const bytes = build((m) => {
      m.tensor({ dtype: 'float32', sizes: [1] });
      m.setInputs([42]);
    });
    await expectLoadError(bytes, 'ERR_PTE_MALFORMED', /input 0 refers to value 42 of 1/);
  });

  it('rejects an output index', async () => {
    const bytes = build((m) => {
      m.tensor({ dtype: 'float32', sizes: [1] });
      m.setOutputs([-1]);
    });
    await expectLoadError(bytes, 'ERR_PTE_MALFORMED', /output 0 refers to value -1 of 1/);
  });

  it('rejects move indices', async () => {
    const bytes = build((m) => {
      const x = m.tensor({ dtype: 'float32', sizes: [1] });
      m.move(x, 12);
    });
    await expectLoadError(bytes, 'ERR_PTE_MALFORMED', /move_to refers to value 12/);
  });

  it('rejects a free index', async () => {
    const bytes = build((m) => {
      m.tensor({ dtype: 'float32', sizes: [1] });
      m.free(8);
    });
    await expectLoadError(bytes, 'ERR_PTE_MALFORMED', /the freed value refers to value 8/);
  });

  it('rejects freeing an Int', async () => {
    const bytes = build((m) => {
      m.free(m.int(3));
    });
    await expectLoadError(bytes, 'ERR_PTE_MALFORMED', /FreeCall names value 0, which is not a tensor/);
  });

  it('rejects an IntList item', async () => {
    const bytes = build((m) => {
      m.intList([m.int(1), 40]);
    });
    await expectLoadError(bytes, 'ERR_PTE_MALFORMED', /value 1: an IntList item refers to value 40/);
  });

  it('rejects a TensorList of Ints', async () => {
    const bytes = build((m) => {
      m.tensorList([m.int(1)]);
    });
    await expectLoadError(bytes, 'ERR_PTE_MALFORMED', /value 1 \(TensorList\) lists value 0, which is Int/);
  });

  it('rejects a jump destination', async () => {
    const patcher = new FlatPatcher(buildLoop(patchable));
    const jump = patcher.instructionArgs(patcher.plan(), 1);
    patcher.setI32(patcher.require(jump, Slot.jumpFalse.destination), 99);
    await expectLoadError(patcher.bytes, 'ERR_PTE_MALFORMED', /jump destination 99 is out of range \(2 instructions\)/);
  });

  it('rejects a jump on an Int', async () => {
    const bytes = build((m) => {
      m.jumpFalse(m.int(0), 0);
    });
    await expectLoadError(bytes, 'ERR_PTE_MALFORMED', /jump condition is Int/);
  });
});

describe('unions without a table', () => {
  // Regression: the Verifier accepts a union type without its table, and the loader
  // dereferenced the missing table (found by the fuzzer).
  it('rejects a value without val', async () => {
    const patcher = new FlatPatcher(buildAddConstant(patchable));
    const alpha = patcher.evalue(patcher.plan(), 3);
    patcher.removeField(alpha, Slot.evalue.val);
    await expectLoadError(patcher.bytes, 'ERR_PTE_MALFORMED', /value 0 has type 5 \(Tensor\) but no val table/);
  });

  it('rejects an instruction without args', async () => {
    const patcher = new FlatPatcher(buildRelu(patchable));
    patcher.removeField(patcher.instruction(patcher.plan(), 0), Slot.instruction.args);
    await expectLoadError(patcher.bytes, 'ERR_PTE_MALFORMED', /instruction 0: instruction type 1 \(KernelCall\) has no instr_args table/);
  });
});

describe('alignment', () => {
  // Regressions for undefined behavior the fuzzer found: kernels read elements through
  // typed pointers, and the loader read 8-byte vectors through typed pointers.
  it('rejects a misaligned planned offset', async () => {
    const bytes = build((m) => {
      const x = m.tensor({ dtype: 'float32', sizes: [2], planned: { offset: 2 } });
      m.setInputs([x]).setOutputs([x]).setBufferSizes([0, 16]);
    });
    await expectLoadError(bytes, 'ERR_PTE_MALFORMED', /tensor value 0 \(float32\) is planned at offset 2 of arena 1, which is not a multiple of its 4-byte element size/);
  });

  it('rejects a misaligned constant', async () => {
    const patcher = new FlatPatcher(
      build((m) => {
        const first = m.tensor({ dtype: 'float32', sizes: [4], constant: [1, 2, 3, 4] });
        const second = m.tensor({ dtype: 'float32', sizes: [4], constant: [5, 6, 7, 8] });
        m.setOutputs([first, second]);
      }),
    );
    const constants = patcher.deref(patcher.root(), Slot.program.constantSegment);
    const offsets = patcher.deref(constants, Slot.subsegment.offsets);
    patcher.setU64(patcher.elementAt(offsets, 1, 8), 2n);
    await expectLoadError(patcher.bytes, 'ERR_PTE_MALFORMED', /tensor value 0 \(float32\) has constant data at file offset \d+, which is not a multiple of its 4-byte element size/);
  });

  it('rejects a misaligned IntList', async () => {
    // Moving the items offset 4 bytes forward keeps the length field 4-byte aligned (as the
    // Verifier requires) but puts the int64 elements 4 bytes off: the new length is the low
    // word of item 0 (1), and the one element is item 0's high word and item 1's low word (0).
    const patcher = new FlatPatcher(
      build((m) => {
        const first = m.int(5);
        m.int(6);
        const list = m.intList([1, 0]);
        m.setOutputs([first, list]);
      }),
    );
    const list = patcher.valueTable(patcher.plan(), 2);
    const field = patcher.require(list, 0);
    patcher.setU32(field, patcher.view.getUint32(field, true) + 4);
    await expectLoadError(patcher.bytes, 'ERR_PTE_VERIFY', /execution_plan\[0\]\.values\[2\]\.items are not 8-byte aligned/);
  });

  it('loads an empty tensor with huge sizes', async () => {
    // Strides of [0, 2^31-1, 2^31-1, 2^31-1] overflowed int64 while the tensor is empty.
    const bytes = build((m) => {
      const x = m.tensor({ dtype: 'float32', sizes: [0, 2 ** 31 - 1, 2 ** 31 - 1, 2 ** 31 - 1], planned: false });
      m.setInputs([x]).setOutputs([x]);
    });
    const program = await Program.load(bytes);
    expect(program.methodMeta('forward').inputs[0]?.shape).toEqual([0, 2 ** 31 - 1, 2 ** 31 - 1, 2 ** 31 - 1]);
  });
});

describe('execution', () => {
  it('stops a cyclic jump', async () => {
    const patcher = new FlatPatcher(buildLoop(patchable));
    const flag = patcher.valueTable(patcher.plan(), 1);
    patcher.setU8(patcher.require(flag, 0), 0);
    const program = await Program.load(patcher.bytes, { maxInstructions: 1000 });
    const started = performance.now();
    const error = await expectErrorCode(program.execute('forward', [makeTensor('int32', [2], [1, 2])]), 'ERR_EXECUTION_LIMIT');
    expect(error.message).toMatch(/stopped after 1000 instructions/);
    expect(performance.now() - started).toBeLessThan(2000);
  });

  it('rejects a large output nothing wrote', async () => {
    // 4 GiB declared: the check must come before any copy is allocated.
    const bytes = build((m) => {
      const ghost = m.tensor({ dtype: 'float32', sizes: [1 << 20, 1 << 10], planned: false });
      m.setInputs([]).setOutputs([ghost]);
    });
    const program = await Program.load(bytes);
    const error = await expectErrorCode(program.execute('forward', []), 'ERR_PTE_MALFORMED');
    expect(error.message).toMatch(/output 0 \(\[1048576, 1024\], float32\) has no memory/);
    program.dispose();
  });

  it('rejects a tensor with no memory', async () => {
    const bytes = build((m) => {
      const x = m.tensor({ dtype: 'float32', sizes: [4] });
      const ghost = m.tensor({ dtype: 'float32', sizes: [4], planned: false });
      const y = m.tensor({ dtype: 'float32', sizes: [4] });
      m.kernel('aten::add.out', [x, ghost, m.int(1), y, y]);
      m.setInputs([x]).setOutputs([y]);
    });
    const program = await Program.load(bytes);
    const error = await expectErrorCode(program.execute('forward', [makeTensor('float32', [4], [1, 2, 3, 4])]), 'ERR_PTE_MALFORMED');
    expect(error.message).toMatch(/value 1 is a tensor with no memory/);
  });

  // Regression: a MoveCall into an input slot left an Int there, and the next execute()
  // bound the input through a null tensor pointer.
  it('restores a moved-over input', async () => {
    const bytes = build((m) => {
      const x = m.tensor({ dtype: 'float32', sizes: [2] });
      const n = m.int(5);
      m.move(n, x);
      m.setInputs([x]).setOutputs([n, x]);
    });
    const program = await Program.load(bytes);
    for (let call = 0; call < 3; call++) {
      const outputs = await program.execute('forward', [makeTensor('float32', [2], [1, 2])]);
      expect(outputs[0], `call ${call} output 0`).toBe(5);
      expect(outputs[1], `call ${call} output 1`).toBe(5);
    }
  });

  it('runs a dynamic input below its bound', async () => {
    const program = await Program.load(buildDynamicSquare());
    const outputs = await program.execute('forward', [makeTensor('float32', [3], [1, 2, 3])]);
    expectTensor(outputs[0], 'float32', [3], [1, 4, 9]);
  });

  it('rejects a dynamic input above its bound', async () => {
    const program = await Program.load(buildDynamicSquare());
    const error = await expectErrorCode(program.execute('forward', [makeTensor('float32', [9], new Array(9).fill(1))]), 'ERR_INVALID_INPUT');
    expect(error.message).toMatch(/size 9 of dimension 0 exceeds the upper bound \[8\]/);
  });

  describe('constant tensors', () => {
    const directory = mkdtempSync(path.join(tmpdir(), 'embed-image-hostile-'));
    afterAll(() => rmSync(directory, { recursive: true, force: true }));

    /** Loads `bytes` from a file, so constants point into the copy-on-write mapping. */
    async function loadFromFile(name: string, bytes: Uint8Array): Promise<{ file: string; program: Program }> {
      const file = path.join(directory, name);
      writeFileSync(file, bytes);
      return { file, program: await Program.load(file) };
    }

    const constantOutput = build((m) => {
      const c = m.tensor({ dtype: 'float32', sizes: [4], constant: [-1, 2, -3, 4] });
      const x = m.tensor({ dtype: 'float32', sizes: [4] });
      m.kernel('aten::relu.out', [x, c, c]);
      m.setInputs([x]).setOutputs([c]);
    });

    // A method input bound over a constant is written in place, into the file's mapping.
    const constantInput = build((m) => {
      const c = m.tensor({ dtype: 'float32', sizes: [4], constant: [-1, 2, -3, 4] });
      const y = m.tensor({ dtype: 'float32', sizes: [4] });
      m.kernel('aten::relu.out', [c, y, y]);
      m.setInputs([c]).setOutputs([y, c]);
    });

    it('rejects a constant kernel output', async () => {
      const { file, program } = await loadFromFile('constant-output.pte', constantOutput);
      const error = await expectErrorCode(program.execute('forward', [makeTensor('float32', [4], [5, -6, 7, -8])]), 'ERR_KERNEL');
      expect(error.message).toMatch(/aten::relu\.out: argument 'out' is constant data/);
      program.dispose();
      expect(Buffer.compare(readFileSync(file), Buffer.from(constantOutput))).toBe(0);
    });

    it('rejects a constant output from a buffer', async () => {
      const program = await Program.load(constantOutput);
      const error = await expectErrorCode(program.execute('forward', [makeTensor('float32', [4], [5, -6, 7, -8])]), 'ERR_KERNEL');
      expect(error.message).toMatch(/argument 'out' is constant data/);
    });

    it('keeps the file under a constant input', async () => {
      const { file, program } = await loadFromFile('constant-input.pte', constantInput);
      const outputs = await program.execute('forward', [makeTensor('float32', [4], [5, -6, 7, -8])]);
      expectTensor(outputs[0], 'float32', [4], [5, 0, 7, 0], {}, 'relu output');
      expectTensor(outputs[1], 'float32', [4], [5, -6, 7, -8], {}, 'input echo');
      program.dispose();
      expect(Buffer.compare(readFileSync(file), Buffer.from(constantInput))).toBe(0);
    });
  });
});
