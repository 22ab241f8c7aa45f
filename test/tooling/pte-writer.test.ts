// Structure checks of the test .pte writer, decoded with flatc and compared with files that
// upstream ExecuTorch's exporter wrote. These tests need no native addon.
import { readFileSync } from 'node:fs';
import path from 'node:path';

import { describe, expect, it } from 'vitest';

import { hasSharedPte, sharedPteDir } from '../helpers.js';
import { decodeProgram, hasFlatc, readExtendedHeader, withoutContainerMeta, type JsonObject } from './flatc-json.js';
import { ProgramBuilder, splitOperatorName, tensorBytes } from './pte-writer.js';
import { buildAddOneProgram, buildLinearProgram } from './sample-programs.js';

function readShared(name: string): Uint8Array {
  return new Uint8Array(readFileSync(path.join(sharedPteDir, name)));
}

function plan(program: JsonObject, index = 0): JsonObject {
  return (program.execution_plan as JsonObject[])[index]!;
}

function values(program: JsonObject, planIndex = 0): JsonObject[] {
  return plan(program, planIndex).values as JsonObject[];
}

function indexOfBytes(haystack: Uint8Array, needle: Uint8Array): number {
  outer: for (let i = 0; i + needle.length <= haystack.length; i++) {
    for (let j = 0; j < needle.length; j++) if (haystack[i + j] !== needle[j]) continue outer;
    return i;
  }
  return -1;
}

describe('splitOperatorName', () => {
  it('splits name and overload', () => {
    expect(splitOperatorName('aten::add.Scalar_out')).toEqual({ name: 'aten::add', overload: 'Scalar_out' });
  });

  it('keeps a name without overload', () => {
    expect(splitOperatorName('aten::relu')).toEqual({ name: 'aten::relu', overload: '' });
  });

  it('splits a custom namespace', () => {
    expect(splitOperatorName('cortex_m::quantize_per_tensor.out')).toEqual({ name: 'cortex_m::quantize_per_tensor', overload: 'out' });
  });
});

describe('tensorBytes', () => {
  it('writes float32 little-endian', () => {
    expect(Array.from(tensorBytes('float32', [1]))).toEqual([0, 0, 0x80, 0x3f]);
  });

  it('writes int64 from numbers', () => {
    expect(Array.from(tensorBytes('int64', [-2]))).toEqual([0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
  });

  it('copies typed arrays as raw bytes', () => {
    expect(Array.from(tensorBytes('int16', new Int16Array([258])))).toEqual([2, 1]);
  });
});

describe('file layout', () => {
  it('starts with the ET12 identifier', () => {
    const bytes = buildLinearProgram();
    expect(new TextDecoder().decode(bytes.subarray(4, 8))).toBe('ET12');
  });

  it('omits the header without segment data', () => {
    expect(readExtendedHeader(buildLinearProgram())).toBeNull();
  });

  it('writes the 32-byte header with segments', () => {
    const bytes = buildAddOneProgram();
    const header = readExtendedHeader(bytes);
    expect(header).toEqual({
      length: 32,
      programSize: header!.programSize,
      segmentBaseOffset: Math.ceil(header!.programSize / 128) * 128,
      segmentDataSize: 4,
    });
  });

  it('ends the file after the segment data', () => {
    const bytes = buildAddOneProgram();
    const header = readExtendedHeader(bytes)!;
    expect(bytes.length).toBe(header.segmentBaseOffset + header.segmentDataSize!);
  });

  it('stores the constant at the segment base', () => {
    const bytes = buildAddOneProgram();
    const header = readExtendedHeader(bytes)!;
    const view = new DataView(bytes.buffer, bytes.byteOffset);
    expect(view.getFloat32(header.segmentBaseOffset, true)).toBe(1);
  });

  it('writes the 24-byte header form', () => {
    const bytes = buildAddOneProgram({ extendedHeader: 24 });
    expect(readExtendedHeader(bytes)?.length).toBe(24);
  });

  it('zeroes the unused bytes of the 24-byte form', () => {
    const bytes = buildAddOneProgram({ extendedHeader: 24 });
    expect(Array.from(bytes.subarray(32, 40))).toEqual([0, 0, 0, 0, 0, 0, 0, 0]);
  });

  it('keeps the program size a multiple of 16', () => {
    const header = readExtendedHeader(buildAddOneProgram())!;
    expect(header.programSize % 16).toBe(0);
  });

  it('honors a custom segment alignment', () => {
    const header = readExtendedHeader(buildAddOneProgram({ segmentAlignment: 4096 }))!;
    expect(header.segmentBaseOffset).toBe(4096);
  });

  it('aligns inline constants to 16 bytes', () => {
    const program = new ProgramBuilder();
    const method = program.method('forward');
    const marker = new Float32Array([1.5, 2.5, 3.5, 4.5, 5.5]);
    method.tensor({ dtype: 'float32', sizes: [3], constant: [7, 7, 7] });
    method.tensor({ dtype: 'float32', sizes: [5], constant: marker });
    const bytes = program.build({ constants: 'inline' });
    const position = indexOfBytes(bytes, new Uint8Array(marker.buffer));
    expect(position % 16).toBe(0);
  });
});

describe.skipIf(!hasFlatc)('decoded structure', () => {
  it('reads the header form with flatc', () => {
    const decoded = decodeProgram(buildAddOneProgram({ extendedHeader: 24 }));
    expect(plan(decoded).name).toBe('forward');
  });

  it('pads constants in the segment to 16', () => {
    const program = new ProgramBuilder();
    const method = program.method('forward');
    method.tensor({ dtype: 'float32', sizes: [3], constant: [1, 2, 3] });
    method.tensor({ dtype: 'float32', sizes: [5], constant: [1, 2, 3, 4, 5] });
    const decoded = decodeProgram(program.build());
    expect(decoded.constant_segment).toEqual({ segment_index: 0, offsets: [0, 0, 16] });
  });

  it('numbers constants from 1', () => {
    const program = new ProgramBuilder();
    const method = program.method('forward');
    method.tensor({ dtype: 'float32', sizes: [1], constant: [1] });
    method.tensor({ dtype: 'float32', sizes: [1], constant: [2] });
    const decoded = decodeProgram(program.build());
    expect(values(decoded).map((value) => (value.val as JsonObject).data_buffer_idx)).toEqual([1, 2]);
  });

  it('writes IntList items as value indices', () => {
    const program = new ProgramBuilder();
    const method = program.method('forward');
    const list = method.ints([5, 7]);
    const decoded = decodeProgram(program.build());
    const items = (values(decoded)[list]!.val as JsonObject).items as number[];
    expect(items.map((index) => (values(decoded)[index]!.val as JsonObject).int_val)).toEqual([5, 7]);
  });

  it('plans tensors sequentially with 16-byte alignment', () => {
    const program = new ProgramBuilder();
    const method = program.method('forward');
    method.tensor({ dtype: 'float32', sizes: [3] });
    method.tensor({ dtype: 'int64', sizes: [2] });
    method.tensor({ dtype: 'float32', sizes: [3], planned: false });
    const decoded = decodeProgram(program.build());
    const offsets = values(decoded).map((value) => ((value.val as JsonObject).allocation_info as JsonObject | undefined)?.memory_offset_low);
    expect(offsets).toEqual([0, 16, undefined]);
  });

  it('sizes the arena from the plan', () => {
    const program = new ProgramBuilder();
    const method = program.method('forward');
    method.tensor({ dtype: 'float32', sizes: [3] });
    method.tensor({ dtype: 'int64', sizes: [2] });
    const decoded = decodeProgram(program.build());
    expect(plan(decoded).non_const_buffer_sizes).toEqual([0, 32]);
  });

  it('places explicit offsets first', () => {
    const program = new ProgramBuilder();
    const method = program.method('forward');
    method.tensor({ dtype: 'float32', sizes: [4] });
    method.tensor({ dtype: 'float32', sizes: [4], planned: { offset: 32 } });
    const decoded = decodeProgram(program.build());
    const offsets = values(decoded).map((value) => ((value.val as JsonObject).allocation_info as JsonObject).memory_offset_low);
    expect(offsets).toEqual([48, 32]);
  });

  it('writes an inline delegate', () => {
    const program = new ProgramBuilder();
    const method = program.method('forward');
    method.delegate({ id: 'TestBackend', payload: new Uint8Array([1, 2, 3]), location: 'inline', compileSpecs: [{ key: 'k', value: 'v' }] });
    const decoded = decodeProgram(program.build());
    expect((plan(decoded).delegates as JsonObject[])[0]).toEqual({
      id: 'TestBackend',
      processed: { location: 'INLINE', index: 0 },
      compile_specs: [{ key: 'k', value: [118] }],
    });
  });

  it('stores inline delegate data', () => {
    const program = new ProgramBuilder();
    program.method('forward').delegate({ id: 'TestBackend', payload: new Uint8Array([1, 2, 3]), location: 'inline' });
    const decoded = decodeProgram(program.build());
    expect(decoded.backend_delegate_data).toEqual([{ data: [1, 2, 3] }]);
  });

  it('moves a segment delegate after the constants', () => {
    const program = new ProgramBuilder();
    program.method('forward').delegate({ id: 'TestBackend', payload: new Uint8Array([9, 8]) });
    const decoded = decodeProgram(program.build());
    expect((plan(decoded).delegates as JsonObject[])[0]!.processed).toEqual({ location: 'SEGMENT', index: 1 });
  });

  it('stores a segment delegate payload', () => {
    const program = new ProgramBuilder();
    program.method('forward').delegate({ id: 'TestBackend', payload: new Uint8Array([9, 8]) });
    const bytes = program.build();
    const decoded = decodeProgram(bytes);
    const segment = (decoded.segments as { offset: number; size: number }[])[1]!;
    const base = readExtendedHeader(bytes)!.segmentBaseOffset;
    expect(Array.from(bytes.subarray(base + segment.offset, base + segment.offset + segment.size))).toEqual([9, 8]);
  });

  it('lists named data with its segment', () => {
    const program = new ProgramBuilder();
    program.method('forward');
    program.addNamedData('weights', new Uint8Array([4, 5, 6]));
    const decoded = decodeProgram(program.build());
    expect(decoded.named_data).toEqual([{ key: 'weights', segment_index: 1 }]);
  });

  it('writes mutable data offsets', () => {
    const program = new ProgramBuilder();
    const method = program.method('forward');
    method.tensor({ dtype: 'float32', sizes: [2], initial: [1, 2] });
    method.tensor({ dtype: 'float32', sizes: [1], initial: [3] });
    const decoded = decodeProgram(program.build());
    expect(decoded.mutable_data_segments).toEqual([{ segment_index: 1, offsets: [0, 0, 8] }]);
  });

  it('gives mutable tensors planned memory', () => {
    const program = new ProgramBuilder();
    program.method('forward').tensor({ dtype: 'float32', sizes: [2], initial: [1, 2] });
    const tensor = values(decodeProgram(program.build()))[0]!.val as JsonObject;
    expect([tensor.data_buffer_idx, tensor.allocation_info]).toEqual([1, { memory_id: 1, memory_offset_low: 0, memory_offset_high: 0 }]);
  });

  it('marks external tensors', () => {
    const program = new ProgramBuilder();
    program.method('forward').tensor({ dtype: 'float32', sizes: [2], external: 'linear.weight' });
    const tensor = values(decodeProgram(program.build()))[0]!.val as JsonObject;
    expect(tensor.extra_tensor_info).toEqual({
      mutable_data_segments_idx: 0,
      fully_qualified_name: 'linear.weight',
      location: 'EXTERNAL',
      device_type: 'CPU',
      device_index: 0,
    });
  });

  it('keeps the sign of -0.0', () => {
    const program = new ProgramBuilder();
    program.method('forward').double(-0);
    const value = values(decodeProgram(program.build()))[0]!.val as JsonObject;
    expect(Object.is(value.double_val, -0)).toBe(true);
  });

  it('decodes with defaults written', () => {
    expect(decodeProgram(buildAddOneProgram({ writeDefaults: true }))).toEqual(decodeProgram(buildAddOneProgram()));
  });

  it('keeps methods in insertion order', () => {
    const program = new ProgramBuilder();
    program.method('zeta');
    program.method('alpha');
    const decoded = decodeProgram(program.build());
    expect((decoded.execution_plan as JsonObject[]).map((item) => item.name)).toEqual(['zeta', 'alpha']);
  });

  it('writes every instruction kind', () => {
    const program = new ProgramBuilder();
    const method = program.method('forward');
    const flag = method.bool(false);
    method.kernel('aten::add.out', [0]);
    method.delegateCall(0, [1]);
    method.move(2, 3);
    method.jumpFalse(flag, 0);
    method.free(4);
    const decoded = decodeProgram(program.build());
    const instructions = ((plan(decoded).chains as JsonObject[])[0]!.instructions as JsonObject[]).map((item) => item.instr_args_type);
    expect(instructions).toEqual(['KernelCall', 'DelegateCall', 'MoveCall', 'JumpFalseCall', 'FreeCall']);
  });
});

describe.skipIf(!hasFlatc || !hasSharedPte)('upstream structure', () => {
  it('rewrites ModuleLinear identically', () => {
    const upstream = withoutContainerMeta(decodeProgram(readShared('et-ModuleLinear-no-constant-segment.pte')));
    const written = decodeProgram(buildLinearProgram());
    expect(written).toEqual(upstream);
  });

  it('rewrites AddModel identically', () => {
    const upstream = withoutContainerMeta(decodeProgram(readShared('et-arduino-AddModel.pte')));
    const written = decodeProgram(buildAddOneProgram());
    expect(written).toEqual(upstream);
  });

  it('matches AddModel header fields', () => {
    const upstream = readExtendedHeader(readShared('et-arduino-AddModel.pte'))!;
    const written = readExtendedHeader(buildAddOneProgram())!;
    expect([written.length, written.segmentDataSize]).toEqual([upstream.length, upstream.segmentDataSize]);
  });

  it('matches AddModel segment bytes', () => {
    const upstreamBytes = readShared('et-arduino-AddModel.pte');
    const writtenBytes = buildAddOneProgram();
    const upstream = readExtendedHeader(upstreamBytes)!;
    const written = readExtendedHeader(writtenBytes)!;
    expect(Array.from(writtenBytes.subarray(written.segmentBaseOffset))).toEqual(Array.from(upstreamBytes.subarray(upstream.segmentBaseOffset)));
  });
});
