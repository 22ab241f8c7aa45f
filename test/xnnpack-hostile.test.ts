// Hostile XnnpackBackend payloads: truncations, bit flips, bad headers, out-of-range offsets
// and ids, quantized datatypes and shapes that fail at run time. Each must end in a clean
// EmbedImageError with a stable code and a message that names the bad field, never a crash.
// With XNNPACK_SEED_CORPUS=DIR set, the valid programs are saved as fuzzer seeds (see
// xnnpack-harness.ts).
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

import { describe, expect, it } from 'vitest';

import { EmbedImageError, type ErrorCode } from '../src/errors.js';
import { Program, type Value } from '../src/program.js';
import { expectErrorCode, repoRoot } from './helpers.js';
import { buildGraphProgram, makeRng, randomFloats, runGraph, runGraphCalls, saveSeedProgram } from './xnnpack-harness.js';
import { hasFlatc } from './tooling/flatc-json.js';
import { ProgramBuilder } from './tooling/pte-writer.js';
import {
  XNN_INVALID_VALUE_ID,
  XnnDatatype,
  XnnGraphBuilder,
  addXnnpackDelegate,
  decodeXnnGraph,
  readXnnpackHeader,
  type XnnDatatypeName,
  type XnnpackPayload,
} from './tooling/xnnpack-writer.js';

/** y = sigmoid(FC(x, w, b) + c) on x [2, 3]: constants in named data and in the payload. */
function smallGraph(): XnnGraphBuilder {
  const graph = new XnnGraphBuilder();
  const x = graph.input([2, 3]);
  const w = graph.constant([4, 3], [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
  const b = graph.constant([4], [0.5, -0.5, 1, -1], 'payload');
  const c = graph.constant([4], [0.25, 0.25, 0.25, 0.25], 'payload');
  const hidden = graph.intermediate([2, 4]);
  const shifted = graph.intermediate([2, 4]);
  const y = graph.output([2, 4]);
  graph.fullyConnected(x, w, b, hidden);
  graph.binary('XNNAdd', hidden, c, shifted);
  graph.unary('XNNSigmoid', shifted, y);
  return graph;
}

/**
 * Builds a program that calls `payload` as its XNNPACK delegate with one [2, 3] input and one
 * [2, 4] output, storing `namedData` (pass [] to leave the payload's keys unresolved).
 */
function programWithPayload(payload: Uint8Array, namedData: { key: string; data: Uint8Array }[], inputDims = [2, 3], outputDims = [2, 4]): Uint8Array {
  const program = new ProgramBuilder();
  const forward = program.method('forward');
  for (const entry of namedData) program.addNamedData(entry.key, entry.data, 16);
  const delegate = forward.delegate({ id: 'XnnpackBackend', payload });
  const x = forward.tensor({ dtype: 'float32', sizes: inputDims });
  const y = forward.tensor({ dtype: 'float32', sizes: outputDims });
  forward.delegateCall(delegate, [x, y]);
  forward.setInputs([x]).setOutputs([y]);
  return program.build();
}

/** Loads the program and, if that succeeds, runs it once; returns the error, or undefined on success. */
async function loadAndRun(bytes: Uint8Array, inputs: Value[]): Promise<unknown> {
  let program: Program | undefined;
  try {
    program = await Program.load(bytes, { threads: 1 });
    await program.execute('forward', inputs);
    return undefined;
  } catch (error) {
    return error;
  } finally {
    program?.dispose();
  }
}

/** Codes that a corrupt payload may end in; anything else (ERR_INTERNAL, a crash) is a bug. */
const CLEAN_CODES: ErrorCode[] = ['ERR_DELEGATE', 'ERR_UNSUPPORTED_DTYPE', 'ERR_OUT_OF_MEMORY', 'ERR_PTE_MALFORMED'];

async function expectLoadError(bytes: Uint8Array, code: ErrorCode, fragment: string | RegExp): Promise<void> {
  const error = await expectErrorCode(Program.load(bytes, { threads: 1 }), code);
  expect(error.message).toMatch(fragment);
}

/** Returns a copy of the payload with header bytes patched through `patch`. */
function patchHeader(payload: Uint8Array, patch: (view: DataView, bytes: Uint8Array) => void): Uint8Array {
  const copy = payload.slice();
  patch(new DataView(copy.buffer), copy);
  return copy;
}

const built = smallGraph().build();
const smallInput = { dtype: 'float32' as const, shape: [2, 3], data: Float32Array.from([1, -2, 3, -4, 5, -6]) };

describe('small payload', () => {
  it('runs unchanged', async () => {
    const bytes = programWithPayload(built.payload, built.namedData);
    saveSeedProgram(bytes);
    expect(await loadAndRun(bytes, [smallInput])).toBeUndefined();
  });
});

describe('truncated payloads', () => {
  it('fail to load at every length', async () => {
    const failures: string[] = [];
    for (let length = 0; length < built.payload.length; length++) {
      const bytes = programWithPayload(built.payload.subarray(0, length), built.namedData);
      const error = await loadAndRun(bytes, [smallInput]);
      const code = (error as EmbedImageError | undefined)?.code;
      if (code !== 'ERR_DELEGATE' || !/XNNPACK/.test((error as Error).message)) failures.push(`${length}: ${code ?? 'loaded'} ${(error as Error | undefined)?.message ?? ''}`);
    }
    expect(failures.slice(0, 5), `${failures.length} of ${built.payload.length} lengths`).toEqual([]);
  });
});

describe('bit flips', () => {
  it('end in a result or a clean error', async () => {
    // One flipped bit per byte (the bit chosen by a seeded PRNG), over the whole payload.
    const rng = makeRng(4000);
    const failures: string[] = [];
    for (let offset = 0; offset < built.payload.length; offset++) {
      const payload = built.payload.slice();
      payload[offset] = payload[offset]! ^ (1 << Math.floor(rng() * 8));
      const error = await loadAndRun(programWithPayload(payload, built.namedData), [smallInput]);
      if (error === undefined) continue;
      const code = (error as EmbedImageError).code;
      if (!(error instanceof EmbedImageError) || !CLEAN_CODES.includes(code)) failures.push(`byte ${offset}: ${code} ${(error as Error).message}`);
    }
    expect(failures.slice(0, 5), `${failures.length} unclean errors`).toEqual([]);
  });
});

describe('payload header', () => {
  it('rejects a wrong XH00 magic', async () => {
    // Without XH00 the payload is read as a bare flatbuffer, whose identifier is then wrong.
    const payload = patchHeader(built.payload, (_, bytes) => bytes.set(new TextEncoder().encode('XH01'), 4));
    await expectLoadError(programWithPayload(payload, built.namedData), 'ERR_DELEGATE', /identifier is 'XH01'/);
  });

  it('rejects a wrong XN01 identifier', async () => {
    const offset = readXnnpackHeader(built.payload).flatbufferOffset;
    const payload = patchHeader(built.payload, (_, bytes) => bytes.set(new TextEncoder().encode('XN99'), offset + 4));
    await expectLoadError(programWithPayload(payload, built.namedData), 'ERR_DELEGATE', /identifier is 'XN99', expected XN00 or XN01/);
  });

  it('accepts the older XN00 identifier', async () => {
    const offset = readXnnpackHeader(built.payload).flatbufferOffset;
    const payload = patchHeader(built.payload, (_, bytes) => bytes.set(new TextEncoder().encode('XN00'), offset + 4));
    expect(await loadAndRun(programWithPayload(payload, built.namedData), [smallInput])).toBeUndefined();
  });

  it('rejects a header length below 30', async () => {
    const payload = patchHeader(built.payload, (view) => view.setUint16(8, 12, true));
    await expectLoadError(programWithPayload(payload, built.namedData), 'ERR_DELEGATE', /header length 12 is below 30/);
  });

  it('rejects a flatbuffer size past the end', async () => {
    const payload = patchHeader(built.payload, (view) => view.setUint32(14, built.payload.length, true));
    await expectLoadError(programWithPayload(payload, built.namedData), 'ERR_DELEGATE', /flatbuffer \(offset 32, size \d+\) runs past the end/);
  });

  it('rejects a flatbuffer offset past the end', async () => {
    const payload = patchHeader(built.payload, (view) => view.setUint32(10, 0xfffffff0, true));
    await expectLoadError(programWithPayload(payload, built.namedData), 'ERR_DELEGATE', /flatbuffer \(offset 4294967280, .*runs past the end/);
  });

  it('rejects a misaligned flatbuffer offset', async () => {
    const payload = patchHeader(built.payload, (view) => view.setUint32(10, 34, true));
    await expectLoadError(programWithPayload(payload, built.namedData), 'ERR_DELEGATE', /not 4-byte aligned/);
  });

  it('rejects constant data past the end', async () => {
    const payload = patchHeader(built.payload, (view) => view.setBigUint64(22, 1n << 40n, true));
    await expectLoadError(programWithPayload(payload, built.namedData), 'ERR_DELEGATE', /constant data \(offset \d+, size 1099511627776\) runs past the end/);
  });

  it('rejects a constant data offset past the end', async () => {
    const payload = patchHeader(built.payload, (view) => view.setUint32(18, built.payload.length + 16, true));
    await expectLoadError(programWithPayload(payload, built.namedData), 'ERR_DELEGATE', /constant data \(offset \d+, size 32\) runs past the end/);
  });

  it('rejects a flatbuffer that fails verification', async () => {
    // The root offset at the flatbuffer's start points far past its end.
    const payload = patchHeader(built.payload, (view) => view.setUint32(32, 0x7ffffff0, true));
    await expectLoadError(programWithPayload(payload, built.namedData), 'ERR_DELEGATE', /failed verification/);
  });
});

describe('constants', () => {
  it('rejects a payload constant beyond the constant data', async () => {
    // The header shrinks the constant region to 8 bytes; the 16-byte bias no longer fits.
    const payload = patchHeader(built.payload, (view) => view.setBigUint64(22, 8n, true));
    await expectLoadError(programWithPayload(payload, built.namedData), 'ERR_DELEGATE', /XNNPACK constant 2 \(offset 0, 16 bytes\)|constant 2 .*offset 0/);
  });

  it('rejects a named key absent from the program', async () => {
    const key = built.namedData[0]!.key;
    await expectLoadError(programWithPayload(built.payload, []), 'ERR_DELEGATE', new RegExp(key));
  });

  it('rejects named data smaller than the value', async () => {
    const graph = smallGraph();
    // The filter value claims [4, 30] but its named data holds the 12 floats of [4, 3].
    graph.values[1]!.dims = [4, 30];
    const payload = graph.build();
    await expectLoadError(programWithPayload(payload.payload, payload.namedData), 'ERR_DELEGATE', /named data '[0-9a-f]{64}' holds 48 bytes but XNNPACK value 1 needs 480/);
  });
});

describe('graph structure', () => {
  async function expectGraphError(graph: XnnGraphBuilder, fragment: string | RegExp, code: ErrorCode = 'ERR_DELEGATE'): Promise<void> {
    await expectLoadError(buildGraphProgram(graph), code, fragment);
  }

  it('rejects an undefined value id', async () => {
    const graph = new XnnGraphBuilder();
    const x = graph.input([3]);
    const y = graph.output([3]);
    graph.binary('XNNAdd', x, 42, y);
    await expectGraphError(graph, /node 0: input 2 id 42 is not a defined value/);
  });

  it('rejects an undefined output id', async () => {
    const graph = new XnnGraphBuilder();
    const x = graph.input([3]);
    graph.output([3]);
    graph.unary('XNNCopy', x, 77);
    await expectGraphError(graph, /node 0: output id 77 is not a defined value/);
  });

  it('rejects a read before any write', async () => {
    const graph = new XnnGraphBuilder();
    const x = graph.input([3]);
    const later = graph.intermediate([3]);
    const y = graph.output([3]);
    graph.binary('XNNAdd', x, later, y);
    graph.unary('XNNCopy', x, later);
    await expectGraphError(graph, /node 0 \(Add\) reads a value that no earlier node produces/);
  });

  it('rejects a value written twice', async () => {
    const graph = new XnnGraphBuilder();
    const x = graph.input([3]);
    const y = graph.output([3]);
    graph.unary('XNNCopy', x, y);
    graph.unary('XNNNegate', x, y);
    await expectGraphError(graph, /written by nodes 0 and 1/);
  });

  it('rejects a write to an input', async () => {
    const graph = new XnnGraphBuilder();
    const x = graph.input([3]);
    const y = graph.output([3]);
    graph.unary('XNNCopy', x, y);
    graph.unary('XNNAbs', y, x);
    await expectGraphError(graph, /node 1 writes to a constant or an input/);
  });

  it('rejects a write to a constant', async () => {
    const graph = new XnnGraphBuilder();
    const x = graph.input([3]);
    const k = graph.constant([3], [1, 2, 3]);
    const y = graph.output([3]);
    graph.unary('XNNCopy', x, k);
    graph.unary('XNNCopy', x, y);
    await expectGraphError(graph, /node 0 writes to a constant or an input/);
  });

  it('rejects an output no node produces', async () => {
    const graph = new XnnGraphBuilder();
    graph.input([3]);
    graph.output([3]);
    await expectGraphError(graph, /external output value 1 is produced by no node/);
  });

  it('rejects output_min above output_max', async () => {
    const graph = new XnnGraphBuilder();
    const x = graph.input([3]);
    const y = graph.output([3]);
    graph.clamp(x, y, 2, 1);
    await expectGraphError(graph, /node 0 has output_min above output_max/);
  });

  it('rejects more than six dims', async () => {
    const graph = new XnnGraphBuilder();
    const x = graph.input([1, 1, 1, 1, 1, 1, 2]);
    const y = graph.output([1, 1, 1, 1, 1, 1, 2]);
    graph.unary('XNNCopy', x, y);
    await expectGraphError(graph, /value 0 has 7 dimensions, above XNNPACK's limit of 6/);
  });
});

describe('datatypes', () => {
  const quantized: XnnDatatypeName[] = ['qint8', 'quint8', 'qint32', 'qcint8', 'qcint32', 'qcint4', 'qdint8', 'qbint4', 'qpint8'];
  const otherTypes: XnnDatatypeName[] = ['fp16', 'bf16', 'int32', 'pfp32', 'invalid'];
  for (const datatype of [...quantized, ...otherTypes]) {
    it(`rejects ${datatype} with its name`, async () => {
      const graph = new XnnGraphBuilder();
      const x = graph.input([2, 3], datatype);
      const y = graph.output([2, 3]);
      graph.unary('XNNCopy', x, y);
      const error = await expectErrorCode(Program.load(buildGraphProgram(graph)), 'ERR_UNSUPPORTED_DTYPE');
      expect(error.message).toContain(`xnn_datatype_${datatype}`);
    });
  }

  it('numbers datatypes as XNNPACK does', () => {
    expect(XnnDatatype.qint8).toBe(3);
  });
});

/**
 * Re-encodes the payload's XNNGraph after `edit` changes its JSON form: flatc decodes it
 * against schema/xnnpack.fbs and encodes the edited JSON, and the result is wrapped in a
 * new XH00 header with the original constant data.
 */
function editGraph(payload: XnnpackPayload, edit: (graph: Record<string, any>) => void): Uint8Array {
  const json = decodeXnnGraph(payload.payload, repoRoot) as Record<string, any>;
  edit(json);
  const directory = mkdtempSync(path.join(tmpdir(), 'xnn-edit-'));
  try {
    const input = path.join(directory, 'graph.json');
    writeFileSync(input, JSON.stringify(json));
    const schema = path.join(repoRoot, 'schema', 'xnnpack.fbs');
    const result = spawnSync('flatc', ['--binary', '-o', directory, schema, input], { encoding: 'utf8' });
    if (result.status !== 0) throw new Error(`flatc failed to encode the edited graph: ${result.stderr}${result.stdout}`);
    const flatbuffer = readFileSync(path.join(directory, 'graph.bin'));
    const header = readXnnpackHeader(payload.payload);
    const constants = payload.payload.subarray(header.constantDataOffset);
    const flatbufferOffset = 32;
    const constantOffset = flatbufferOffset + Math.ceil(flatbuffer.length / 16) * 16;
    const out = new Uint8Array(constantOffset + constants.length);
    const view = new DataView(out.buffer);
    out.set(new TextEncoder().encode('XH00'), 4);
    view.setUint16(8, 30, true);
    view.setUint32(10, flatbufferOffset, true);
    view.setUint32(14, flatbuffer.length, true);
    view.setUint32(18, constantOffset, true);
    view.setBigUint64(22, BigInt(constants.length), true);
    out.set(flatbuffer, flatbufferOffset);
    out.set(constants, constantOffset);
    return out;
  } finally {
    rmSync(directory, { recursive: true, force: true });
  }
}

/** The XNNTensorValue of value `index` in a decoded graph. */
function tensorValue(graph: Record<string, any>, index: number): Record<string, any> {
  return graph.xvalues[index].xvalue_union;
}

describe.runIf(hasFlatc)('edited graphs', () => {
  it('re-encodes an unchanged graph that runs', async () => {
    const payload = editGraph(built, () => {});
    expect(await loadAndRun(programWithPayload(payload, built.namedData), [smallInput])).toBeUndefined();
  });

  it('rejects an external id out of range', async () => {
    const payload = editGraph(built, (graph) => (tensorValue(graph, 6).external_id = 7));
    await expectLoadError(programWithPayload(payload, built.namedData), 'ERR_DELEGATE', /value 6 has external id 7 but the graph declares 2 externals/);
  });

  it('rejects a duplicated external id', async () => {
    const payload = editGraph(built, (graph) => (tensorValue(graph, 6).external_id = 0));
    await expectLoadError(programWithPayload(payload, built.namedData), 'ERR_DELEGATE', /external id 0 is used twice/);
  });

  it('rejects outputs numbered before inputs', async () => {
    const payload = editGraph(built, (graph) => {
      tensorValue(graph, 0).external_id = 1;
      tensorValue(graph, 6).external_id = 0;
    });
    await expectLoadError(programWithPayload(payload, built.namedData), 'ERR_DELEGATE', /external ids do not list the inputs before the outputs/);
  });

  it('rejects an external id with no value', async () => {
    const payload = editGraph(built, (graph) => (graph.num_externs = 3));
    await expectLoadError(programWithPayload(payload, built.namedData), 'ERR_DELEGATE', /external id 2 has no value/);
  });

  it('rejects a duplicated value id', async () => {
    const payload = editGraph(built, (graph) => (tensorValue(graph, 5).id_out = 4));
    await expectLoadError(programWithPayload(payload, built.namedData), 'ERR_DELEGATE', /value id 4 is defined twice/);
  });

  it('rejects a constant index out of range', async () => {
    const payload = editGraph(built, (graph) => (tensorValue(graph, 1).constant_buffer_idx = 9));
    await expectLoadError(programWithPayload(payload, built.namedData), 'ERR_DELEGATE', /constant index 9 is out of range \(4 entries\)/);
  });

  it('rejects a constant offset out of range', async () => {
    const payload = editGraph(built, (graph) => (graph.constant_data[3].offset = 4096));
    await expectLoadError(programWithPayload(payload, built.namedData), 'ERR_DELEGATE', /constant 3 \(offset 4096/);
  });

  it('rejects a constant that is also external', async () => {
    const payload = editGraph(built, (graph) => (tensorValue(graph, 0).constant_buffer_idx = 1));
    await expectLoadError(programWithPayload(payload, built.namedData), 'ERR_DELEGATE', /value 0 is both constant and external/);
  });

  it('rejects unknown value flags', async () => {
    const payload = editGraph(built, (graph) => (tensorValue(graph, 4).flags = 8));
    await expectLoadError(programWithPayload(payload, built.namedData), 'ERR_DELEGATE', /value 4 has unknown flag bits 8/);
  });

  it('rejects a quantized tensor value with its datatype', async () => {
    const payload = editGraph(built, (graph) => {
      const value = graph.xvalues[4];
      value.xvalue_union = { tensor_value: { ...value.xvalue_union, datatype: 'xnn_datatype_qint8' } };
      value.xvalue_union_type = 'XNNQuantizedTensorValue';
    });
    const error = await expectErrorCode(Program.load(programWithPayload(payload, built.namedData)), 'ERR_UNSUPPORTED_DTYPE');
    expect(error.message).toMatch(/value 4 is quantized \(xnn_datatype_qint8\)/);
  });

  it('rejects a dynamically quantized value with its datatype', async () => {
    const payload = editGraph(built, (graph) => (tensorValue(graph, 0).dq_datatype = 'xnn_datatype_qdint8'));
    const error = await expectErrorCode(Program.load(programWithPayload(payload, built.namedData)), 'ERR_UNSUPPORTED_DTYPE');
    expect(error.message).toMatch(/value 0 is dynamically quantized to xnn_datatype_qdint8/);
  });
});

describe('delegate arguments', () => {
  function programWithArgs(makeArgs: (forward: ReturnType<ProgramBuilder['method']>) => { args: number[]; inputs: number[]; outputs: number[] }): Uint8Array {
    const program = new ProgramBuilder();
    const forward = program.method('forward');
    const { delegateIndex } = addXnnpackDelegate(program, forward, smallGraph());
    const { args, inputs, outputs } = makeArgs(forward);
    forward.delegateCall(delegateIndex, args);
    forward.setInputs(inputs).setOutputs(outputs);
    return program.build();
  }

  it('rejects a missing argument', async () => {
    const bytes = programWithArgs((forward) => {
      const x = forward.tensor({ dtype: 'float32', sizes: [2, 3] });
      return { args: [x], inputs: [x], outputs: [x] };
    });
    const error = await loadAndRun(bytes, [smallInput]);
    expect((error as EmbedImageError).code).toBe('ERR_DELEGATE');
    expect((error as Error).message).toMatch(/called with 1 arguments, its graph has 2 externals/);
  });

  it('rejects an argument that is not a tensor', async () => {
    const bytes = programWithArgs((forward) => {
      const x = forward.tensor({ dtype: 'float32', sizes: [2, 3] });
      const y = forward.tensor({ dtype: 'float32', sizes: [2, 4] });
      return { args: [forward.int(3), y], inputs: [x], outputs: [y] };
    });
    const error = await loadAndRun(bytes, [smallInput]);
    expect((error as EmbedImageError).code).toBe('ERR_DELEGATE');
    expect((error as Error).message).toMatch(/argument 0 is not a tensor/);
  });

  it('rejects an int32 argument', async () => {
    const bytes = programWithArgs((forward) => {
      const x = forward.tensor({ dtype: 'int32', sizes: [2, 3] });
      const y = forward.tensor({ dtype: 'float32', sizes: [2, 4] });
      return { args: [x, y], inputs: [x], outputs: [y] };
    });
    const error = await loadAndRun(bytes, [{ dtype: 'int32', shape: [2, 3], data: new Int32Array(6) }]);
    expect((error as EmbedImageError).code).toBe('ERR_DELEGATE');
    expect((error as Error).message).toMatch(/argument 0 is int32, expected float32/);
  });
});

describe('shapes at run time', () => {
  async function expectRunError(graph: XnnGraphBuilder, inputs: Float32Array[], fragment: RegExp): Promise<void> {
    const error = await expectErrorCode(runGraph(graph, inputs), 'ERR_DELEGATE');
    expect(error.message).toMatch(fragment);
  }

  it('rejects FullyConnected input channels unlike the filter', async () => {
    const graph = new XnnGraphBuilder();
    const x = graph.input([2, 5]);
    const w = graph.constant([3, 4], new Float32Array(12));
    const y = graph.output([2, 3]);
    graph.fullyConnected(x, w, XNN_INVALID_VALUE_ID, y);
    await expectRunError(graph, [new Float32Array(10)], /node 0 \(FullyConnected\): input \[2, 5\] does not end in the filter's 4 input channels/);
  });

  it('rejects dynamic FullyConnected channels', async () => {
    // The bound [4, 6] matches the filter, but this call passes 5 channels.
    const graph = new XnnGraphBuilder();
    const x = graph.input([4, 6]);
    const w = graph.constant([2, 6], new Float32Array(12));
    const y = graph.output([4, 2]);
    graph.fullyConnected(x, w, XNN_INVALID_VALUE_ID, y);
    const error = await expectErrorCode(runGraphCalls(graph, [[{ data: new Float32Array(15), shape: [3, 5] }]], { dynamism: 'dynamic_bound' }), 'ERR_DELEGATE');
    expect(error.message).toMatch(/FullyConnected\): input \[3, 5\]/);
  });

  it('rejects FullyConnected bias of the wrong size', async () => {
    const graph = new XnnGraphBuilder();
    const x = graph.input([2, 4]);
    const w = graph.constant([3, 4], new Float32Array(12));
    const b = graph.constant([5], new Float32Array(5));
    const y = graph.output([2, 3]);
    graph.fullyConnected(x, w, b, y);
    await expectRunError(graph, [new Float32Array(8)], /FullyConnected\): bias has 5 elements, expected 3/);
  });

  it('rejects shapes that do not broadcast', async () => {
    const graph = new XnnGraphBuilder();
    const a = graph.input([2, 3]);
    const b = graph.input([4]);
    const y = graph.output([2, 3]);
    graph.binary('XNNSubtract', a, b, y);
    await expectRunError(graph, [new Float32Array(6), new Float32Array(4)], /node 0 \(Subtract\): shapes \[2, 3\] and \[4\] do not broadcast/);
  });

  it('rejects BatchMatrixMultiply inner dims that differ', async () => {
    const graph = new XnnGraphBuilder();
    const a = graph.input([2, 3, 4]);
    const b = graph.input([2, 5, 6]);
    const y = graph.output([2, 3, 6]);
    graph.binary('XNNBatchMatrixMultiply', a, b, y);
    await expectRunError(graph, [new Float32Array(24), new Float32Array(60)], /BatchMatrixMultiply\): inner dimensions of \[2, 3, 4\] and \[2, 5, 6\] differ/);
  });

  it('rejects Conv2d input channels unlike the groups', async () => {
    const graph = new XnnGraphBuilder();
    const x = graph.input([1, 4, 4, 3]);
    const f = graph.constant([2, 1, 1, 2], new Float32Array(4));
    const y = graph.output([1, 4, 4, 2]);
    graph.conv('XNNConv2d', { kernelHeight: 1, kernelWidth: 1, groupInputChannels: 2, groupOutputChannels: 2 }, x, f, XNN_INVALID_VALUE_ID, y);
    await expectRunError(graph, [new Float32Array(48)], /node 0 \(Conv2d\): input has 3 channels, expected 2/);
  });

  it('rejects a Conv2d filter of the wrong layout', async () => {
    const graph = new XnnGraphBuilder();
    const x = graph.input([1, 4, 4, 2]);
    const f = graph.constant([2, 2, 1, 1], new Float32Array(4));
    const y = graph.output([1, 3, 4, 2]);
    graph.conv('XNNConv2d', { kernelHeight: 2, kernelWidth: 1, groupInputChannels: 2, groupOutputChannels: 2 }, x, f, XNN_INVALID_VALUE_ID, y);
    await expectRunError(graph, [new Float32Array(32)], /Conv2d\): filter is \[2, 2, 1, 1\], expected \[2, 2, 1, 2\]/);
  });

  it('rejects a pooling window larger than the input', async () => {
    const graph = new XnnGraphBuilder();
    const x = graph.input([1, 2, 2, 1]);
    const y = graph.output([1, 1, 1, 1]);
    graph.pooling('XNNMaxPooling2d', { poolingHeight: 3, poolingWidth: 3 }, x, y);
    await expectRunError(graph, [new Float32Array(4)], /MaxPooling2d\): the pooling window does not fit the \[1, 2, 2, 1\] input/);
  });

  it('rejects an output rank unlike the program tensor', async () => {
    const graph = new XnnGraphBuilder();
    const x = graph.input([2, 3]);
    const y = graph.output([6]);
    graph.unary('XNNCopy', x, y);
    await expectRunError(graph, [new Float32Array(6)], /output 1 has rank 2 but the program's tensor has 1/);
  });

  it('rejects an output above the static tensor', async () => {
    const graph = new XnnGraphBuilder();
    const x = graph.input([2, 3]);
    const y = graph.output([2, 2]);
    graph.unary('XNNCopy', x, y);
    await expectRunError(graph, [new Float32Array(6)], /XNNPACK output 1/);
  });

  it('rejects a resize of an empty input', async () => {
    // Every output pixel would read input pixels that do not exist.
    const graph = new XnnGraphBuilder();
    const x = graph.input([1, 0, 2, 1]);
    const y = graph.output([1, 3, 3, 1]);
    graph.resizeBilinear(3, 3, x, y);
    await expectRunError(graph, [new Float32Array(0)], /StaticResizeBilinear2D\): input \[1, 0, 2, 1\] has no pixels/);
  });

  it('runs attention with no query tokens', async () => {
    // T = 0 once divided by zero when counting heads.
    const graph = new XnnGraphBuilder();
    const q = graph.input([1, 2, 0, 2]);
    const k = graph.input([1, 2, 3, 2]);
    const v = graph.input([1, 2, 3, 2]);
    const s = graph.constant([2], [1, 1]);
    const m = graph.input([0, 3]);
    const out = graph.output([1, 2, 0, 2]);
    graph.scaledDotProductAttention({ query: q, key: k, value: v, scale: s, mask: m }, out);
    const rng = makeRng(4100);
    const [output] = await runGraph(graph, [new Float32Array(0), randomFloats(rng, 12), randomFloats(rng, 12), new Float32Array(0)]);
    expect(output!.shape).toEqual([1, 2, 0, 2]);
  });

  it('reports an arena it cannot allocate', async () => {
    // A 2^38-element intermediate (1 TiB) passes the element limit but not the allocator.
    const graph = new XnnGraphBuilder();
    const x = graph.input([1, 1]);
    const padded = graph.intermediate([1, 1]);
    const y = graph.output([1, 1]);
    graph.constantPad([1 << 19, 1 << 19], [0, 0], 0, x, padded);
    graph.slice([0, 0], [1, 1], padded, y);
    await expectErrorCode(runGraph(graph, [new Float32Array(1)]), 'ERR_OUT_OF_MEMORY');
  });
});
