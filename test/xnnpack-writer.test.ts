// Structure checks of the XNNPACK payload writer: the header is read back byte by byte and
// the XNNGraph flatbuffer is decoded with flatc against schema/xnnpack.fbs, a decoder that
// shares no code with the writer. These tests need no native addon.
import { readFileSync } from 'node:fs';
import path from 'node:path';

import { describe, expect, it } from 'vitest';

import { repoRoot } from './helpers.js';
import { hasFlatc } from './tooling/flatc-json.js';
import { ProgramBuilder } from './tooling/pte-writer.js';
import {
  BINARY_NODES,
  UNARY_NODES,
  XNN_INVALID_VALUE_ID,
  XNODE_UNION_MEMBERS,
  XnnGraphBuilder,
  addXnnpackDelegate,
  decodeXnnGraph,
  readXnnpackHeader,
  sha256Hex,
  type XNodeUnionMember,
} from './tooling/xnnpack-writer.js';

type Json = Record<string, unknown>;

function tensorValues(graph: Json): Json[] {
  return (graph.xvalues as Json[]).map((value) => {
    expect(value.xvalue_union_type).toBe('XNNTensorValue');
    return value.xvalue_union as Json;
  });
}

function nodes(graph: Json): Json[] {
  return graph.xnodes as Json[];
}

/** Builds y = FC(x, w, b), z = y * c, with w in named data and b, c in the payload. */
function smallGraph(): { graph: XnnGraphBuilder; weight: Float32Array; scale: Float32Array } {
  const graph = new XnnGraphBuilder();
  const weight = Float32Array.from([1, 2, 3, 4, 5, 6]);
  const scale = Float32Array.from([0.5, -1, 2]);
  const x = graph.input([1, 2]);
  const w = graph.constant([3, 2], weight);
  const b = graph.constant([3], [0.25, 0.5, 0.75], 'payload');
  const c = graph.constant([3], scale, 'payload');
  const y = graph.intermediate([1, 3]);
  const z = graph.output([1, 3]);
  graph.fullyConnected(x, w, b, y);
  graph.binary('XNNMultiply', y, c, z, 0, { debugHandle: 7 });
  return { graph, weight, scale };
}

describe('XNNPACK payload header', () => {
  const { payload } = smallGraph().graph.build();
  const header = readXnnpackHeader(payload);

  it('starts with four zero bytes', () => {
    expect(Array.from(payload.subarray(0, 4))).toEqual([0, 0, 0, 0]);
  });

  it('has the XH00 magic', () => {
    expect(header.magic).toBe('XH00');
  });

  it('has header length 30', () => {
    expect(header.headerLength).toBe(30);
  });

  it('puts the flatbuffer at 32', () => {
    expect(header.flatbufferOffset).toBe(32);
  });

  it('has the XN01 identifier', () => {
    const identifier = payload.subarray(header.flatbufferOffset + 4, header.flatbufferOffset + 8);
    expect(new TextDecoder().decode(identifier)).toBe('XN01');
  });

  it('aligns the constant data to 16', () => {
    expect(header.constantDataOffset).toBe(32 + Math.ceil(header.flatbufferSize / 16) * 16);
  });

  it('sizes constant data for two padded constants', () => {
    // 12 bytes of bias padded to 16, then 12 bytes of scale.
    expect(header.constantDataSize).toBe(28n);
  });

  it('ends at the constant data', () => {
    expect(payload.length).toBe(header.constantDataOffset + 28);
  });
});

describe.runIf(hasFlatc)('XNNGraph decoded by flatc', () => {
  const { graph, weight, scale } = smallGraph();
  const built = graph.build();
  const decoded = decodeXnnGraph(built.payload, repoRoot);
  const values = tensorValues(decoded);
  const header = readXnnpackHeader(built.payload);

  it('writes version 0', () => {
    expect(decoded.version).toBe('0');
  });

  it('numbers values by position', () => {
    expect(values.map((value) => value.id_out)).toEqual([0, 1, 2, 3, 4, 5]);
  });

  it('writes dims', () => {
    expect(values.map((value) => value.dims)).toEqual([[1, 2], [3, 2], [3], [3], [1, 3], [1, 3]]);
  });

  it('writes num_dims', () => {
    expect(values.map((value) => value.num_dims)).toEqual([2, 2, 1, 1, 2, 2]);
  });

  it('writes fp32 datatypes', () => {
    expect(values.every((value) => value.datatype === 'xnn_datatype_fp32')).toBe(true);
  });

  it('flags external values', () => {
    expect(values.map((value) => value.flags)).toEqual([1, 0, 0, 0, 0, 2]);
  });

  it('gives externals ids in order', () => {
    expect(values.map((value) => value.external_id)).toEqual([0, XNN_INVALID_VALUE_ID, XNN_INVALID_VALUE_ID, XNN_INVALID_VALUE_ID, XNN_INVALID_VALUE_ID, 1]);
  });

  it('counts externals', () => {
    expect(decoded.num_externs).toBe(2);
  });

  it('lists input ids', () => {
    expect(decoded.input_ids).toEqual([0]);
  });

  it('lists output ids', () => {
    expect(decoded.output_ids).toEqual([5]);
  });

  it('indexes constants', () => {
    expect(values.map((value) => value.constant_buffer_idx)).toEqual([0, 1, 2, 3, 0, 0]);
  });

  it('reserves constant entry 0', () => {
    expect((decoded.constant_data as Json[])[0]).toEqual({ offset: 0, size: 0 });
  });

  it('keys named constants by sha256', () => {
    const entry = (decoded.constant_data as Json[])[1]!;
    expect(entry.named_key).toBe(sha256Hex(new Uint8Array(weight.buffer)));
  });

  it('marks named constants with UINT64_MAX', () => {
    expect((decoded.constant_data as Json[])[1]!.offset).toBe('18446744073709551615');
  });

  it('sizes named constants', () => {
    expect((decoded.constant_data as Json[])[1]!.size).toBe(24);
  });

  it('offsets payload constants 16-aligned', () => {
    expect((decoded.constant_data as Json[]).slice(2).map((entry) => entry.offset)).toEqual([0, 16]);
  });

  it('stores payload constant bytes', () => {
    const start = header.constantDataOffset + 16;
    expect(Array.from(new Float32Array(built.payload.slice(start, start + 12).buffer))).toEqual(Array.from(scale));
  });

  it('returns the named data', () => {
    expect(built.namedData.map((entry) => entry.key)).toEqual([sha256Hex(new Uint8Array(weight.buffer))]);
  });

  it('writes the FullyConnected node', () => {
    expect(nodes(decoded)[0]).toMatchObject({
      xnode_union_type: 'XNNFullyConnected',
      xnode_union: { input1_id: 0, filter_id: 1, bias_id: 2, output_id: 4, flags: 0 },
    });
  });

  it('writes the Multiply node', () => {
    expect(nodes(decoded)[1]).toMatchObject({ xnode_union_type: 'XNNMultiply', xnode_union: { input1_id: 4, input2_id: 3, output_id: 5 } });
  });

  it('writes the debug handle', () => {
    expect(nodes(decoded)[1]!.debug_handle).toBe(7);
  });
});

describe('XNodeUnion numbering', () => {
  it('matches schema/xnnpack.fbs', () => {
    const schema = readFileSync(path.join(repoRoot, 'schema', 'xnnpack.fbs'), 'utf8');
    const body = /union XNodeUnion \{([^}]*)\}/.exec(schema)![1]!;
    const names = body
      .split(',')
      .map((item) => item.trim().split(':')[0]!.trim())
      .filter((name) => name.length > 0);
    expect(names).toEqual([...XNODE_UNION_MEMBERS]);
  });
});

describe.runIf(hasFlatc)('every node type', () => {
  const graph = new XnnGraphBuilder();
  const a = graph.input([1, 2, 2, 4]);
  const b = graph.intermediate([1, 2, 2, 4]);
  const c = graph.intermediate([1, 2, 2, 4]);
  const d = graph.intermediate([1, 2, 2, 4]);
  const expected: { type: XNodeUnionMember; fields: Json; minMax?: Json }[] = [];

  for (const member of BINARY_NODES) {
    graph.binary(member, a, b, c, member === 'XNNBatchMatrixMultiply' ? 1 : 0);
    expected.push({ type: member, fields: { input1_id: a, input2_id: b, output_id: c, flags: member === 'XNNBatchMatrixMultiply' ? 1 : 0 } });
  }
  for (const member of UNARY_NODES) {
    graph.unary(member, b, c, 0);
    expected.push({ type: member, fields: { input_id: b, output_id: c, flags: 0 } });
  }
  graph.clamp(a, b, -1.5, 6);
  expected.push({ type: 'XNNClamp', fields: { input_id: a, output_id: b }, minMax: { output_min: -1.5, output_max: 6 } });
  graph.fullyConnected(a, b, XNN_INVALID_VALUE_ID, c, 1);
  expected.push({ type: 'XNNFullyConnected', fields: { input1_id: a, filter_id: b, bias_id: XNN_INVALID_VALUE_ID, output_id: c, flags: 1 } });
  for (const member of ['XNNConv2d', 'XNNDepthwiseConv2d', 'XNNConvTranspose2d'] as const) {
    graph.conv(member, { kernelHeight: 3, kernelWidth: 2, groupInputChannels: 4, groupOutputChannels: 8, paddingTop: 1, paddingLeft: 2, subsamplingHeight: 2, groups: 1, adjustmentWidth: 1 }, a, b, c, d);
    expected.push({
      type: member,
      fields: {
        padding_top: 1,
        padding_right: 0,
        padding_bottom: 0,
        padding_left: 2,
        kernel_height: 3,
        kernel_width: 2,
        subsampling_height: 2,
        subsampling_width: 1,
        dilation_height: 1,
        dilation_width: 1,
        group_input_channels: 4,
        group_output_channels: 8,
        groups: 1,
        adjustment_height: 0,
        adjustment_width: 1,
        input1_id: a,
        filter_id: b,
        bias_id: c,
        output_id: d,
        flags: 0,
      },
    });
  }
  for (const member of ['XNNAvgPooling2d', 'XNNMaxPooling2d'] as const) {
    graph.pooling(member, { poolingHeight: 2, poolingWidth: 3, strideHeight: 2, strideWidth: 2, paddingBottom: 1 }, a, b);
    expected.push({
      type: member,
      fields: { padding_bottom: 1, pooling_height: 2, pooling_width: 3, stride_height: 2, stride_width: 2, dilation_height: 1, dilation_width: 1, input_id: a, output_id: b },
    });
  }
  graph.argMaxPooling({ poolingHeight: 2, poolingWidth: 2, paddingRight: 1 }, a, b, c);
  expected.push({ type: 'XNNArgMaxPooling2d', fields: { padding_right: 1, pooling_height: 2, pooling_width: 2, input_id: a, output_value_id: b, output_index_id: c } });
  graph.transpose([0, 2, 3, 1], a, b);
  expected.push({ type: 'XNNStaticTranspose', fields: { num_dims: 4, perm: [0, 2, 3, 1], input_id: a, output_id: b } });
  graph.reshape([1, 0, 4], a, b);
  expected.push({ type: 'XNNStaticReshape', fields: { num_dims: 3, new_shape: [1, 0, 4], input_id: a, output_id: b } });
  graph.slice([0, 1, 0, 2], [1, 1, 2, 2], a, b);
  expected.push({ type: 'XNNStaticSlice', fields: { num_dims: 4, offsets: [0, 1, 0, 2], sizes: [1, 1, 2, 2], input_id: a, output_id: b } });
  for (let count = 2; count <= 5; count++) {
    const inputs = [a, b, c, d, a].slice(0, count);
    graph.concatenate(3, inputs, d);
    expected.push({
      type: `XNNConcatenate${count}` as XNodeUnionMember,
      fields: {
        axis: 3,
        input1_id: a,
        input2_id: b,
        input3_id: count > 2 ? c : XNN_INVALID_VALUE_ID,
        input4_id: count > 3 ? d : XNN_INVALID_VALUE_ID,
        input5_id: count > 4 ? a : XNN_INVALID_VALUE_ID,
        output_id: d,
      },
    });
  }
  graph.constantPad([0, 1, 1, 0], [0, 2, 2, 0], 0.5, a, b);
  expected.push({ type: 'XNNStaticConstantPad', fields: { pre_paddings: [0, 1, 1, 0], post_paddings: [0, 2, 2, 0], padding_value: 0.5, input_id: a, output_id: b } });
  graph.resizeBilinear(4, 6, a, b, 8);
  expected.push({ type: 'XNNStaticResizeBilinear2D', fields: { new_height: 4, new_width: 6, input_id: a, output_id: b, flags: 8 } });
  graph.leakyRelu(0.125, a, b);
  expected.push({ type: 'XNNLeakyReLU', fields: { negative_slope: 0.125, input_id: a, output_id: b } });
  graph.elu(1.5, a, b);
  expected.push({ type: 'XNNELU', fields: { alpha: 1.5, input_id: a, output_id: b } });
  graph.scaledDotProductAttention({ query: a, key: b, value: c, scale: d, mask: a }, b);
  expected.push({ type: 'XNNScaledDotProductAttention', fields: { query_id: a, key_id: b, value_id: c, scale_id: d, mask_id: a, output_id: b } });

  const decoded = decodeXnnGraph(graph.build().payload, repoRoot);
  const written = nodes(decoded);

  it('writes one node per call', () => {
    expect(written.length).toBe(expected.length);
  });

  it('covers every union member', () => {
    expect(new Set(expected.map((item) => item.type))).toEqual(new Set(XNODE_UNION_MEMBERS));
  });

  it.each(expected.map((item, index) => [index, item.type] as const))('node %i is %s', (index, type) => {
    expect(written[index]!.xnode_union_type).toBe(type);
  });

  it.each(expected.map((item, index) => [index, item.type] as const))('node %i (%s) has its fields', (index) => {
    expect(written[index]!.xnode_union).toMatchObject(expected[index]!.fields);
  });

  it('writes output_min_max', () => {
    const index = expected.findIndex((item) => item.minMax !== undefined);
    expect(written[index]!.output_min_max).toEqual({ output_min: -1.5, output_max: 6 });
  });

  it('omits output_min_max elsewhere', () => {
    expect(written[0]!.output_min_max).toBeUndefined();
  });
});

describe('named data', () => {
  it('deduplicates equal constants in a graph', () => {
    const graph = new XnnGraphBuilder();
    graph.constant([2], [1, 2]);
    graph.constant([2], [1, 2]);
    expect(graph.build().namedData.length).toBe(1);
  });

  it('stores each key once per program', () => {
    const program = new ProgramBuilder();
    const method = program.method('forward');
    for (let i = 0; i < 2; i++) {
      const graph = new XnnGraphBuilder();
      graph.constant([2], [3, 4]);
      addXnnpackDelegate(program, method, graph);
    }
    expect(program.namedData.length).toBe(1);
  });

  it('adds one delegate per graph', () => {
    const program = new ProgramBuilder();
    const method = program.method('forward');
    addXnnpackDelegate(program, method, new XnnGraphBuilder());
    addXnnpackDelegate(program, method, new XnnGraphBuilder());
    expect(method.delegates.map((delegate) => delegate.id)).toEqual(['XnnpackBackend', 'XnnpackBackend']);
  });
});

describe('input checks', () => {
  it('rejects a constant of the wrong length', () => {
    expect(() => new XnnGraphBuilder().constant([2, 2], [1, 2, 3])).toThrow(/needs 4 float32 values, got 3/);
  });

  it('rejects a concatenation of six', () => {
    const graph = new XnnGraphBuilder();
    expect(() => graph.concatenate(0, [0, 1, 2, 3, 4, 5], 6)).toThrow(/2 to 5 inputs/);
  });

  it('rejects negative dims', () => {
    expect(() => new XnnGraphBuilder().input([-1])).toThrow(/uint32/);
  });
});
