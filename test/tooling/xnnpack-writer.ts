/**
 * Writes XnnpackBackend delegate payloads for tests: a builder over `schema/xnnpack.fbs`
 * (the XNNGraph flatbuffer, identifier `XN01`) plus the 32-byte payload header, laid out as
 * upstream ExecuTorch writes them (main at commit cff6f4dd32e6,
 * `backends/xnnpack/serialization/xnnpack_graph_serialize.py` and
 * `backends/xnnpack/operators/node_visitor.py`).
 *
 * Payload layout (all numbers little-endian):
 * - bytes 0..4 zero, 4..8 magic `XH00`, 8..10 header length (uint16, 30), 10..14 flatbuffer
 *   offset (uint32, 32: the header rounded up to 16), 14..18 flatbuffer size (uint32),
 *   18..22 constant data offset (uint32: flatbuffer offset + size rounded up to 16),
 *   22..30 constant data size (uint64), then zero padding to 32;
 * - the flatbuffer, zero-padded to a multiple of 16;
 * - the constant data region: constants stored in the payload, each at a 16-byte aligned
 *   offset relative to the region's start.
 *
 * Graph conventions:
 * - a value's `id_out` is its index in `xvalues`, as upstream assigns it;
 * - external inputs get external ids 0..n_in-1 in the order they were defined, external
 *   outputs the ids after them; a DelegateCall's arguments are the delegate's external
 *   inputs then its outputs in that order. Other values have external id UINT32_MAX;
 * - `constant_data[0]` is a reserved empty entry. A constant is either stored in the
 *   payload (`offset` into the constant data region) or as program named data (`offset`
 *   UINT64_MAX, `named_key` the hex sha256 of its bytes), which current upstream uses for
 *   weights. build() returns the named data, deduplicated by key, for the program writer.
 *
 * Usage:
 * ```ts
 * const graph = new XnnGraphBuilder();
 * const x = graph.input([1, 4]);
 * const w = graph.constant([3, 4], weights);          // named data by default
 * const y = graph.output([1, 3]);
 * graph.fullyConnected(x, w, XNN_INVALID_VALUE_ID, y);
 * const { payload, namedData } = graph.build();
 * addXnnpackDelegate(program, forward, graph)          // or do the same by hand
 * ```
 *
 * The flatbuffer is built with the `flatbuffers` Builder by hand, as `pte-writer.ts` does,
 * and without forced defaults: like upstream's flatc-built payloads, fields equal to their
 * schema default are omitted.
 */
import { createHash } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

import { Builder } from 'flatbuffers';

import type { MethodBuilder, ProgramBuilder } from './pte-writer.js';

/** XNNPACK's XNN_INVALID_VALUE_ID: an absent optional input (a bias, for example). */
export const XNN_INVALID_VALUE_ID = 0xffffffff;
/** XNN_VALUE_FLAG_EXTERNAL_INPUT and XNN_VALUE_FLAG_EXTERNAL_OUTPUT of XNNPACK's `include/xnnpack.h`. */
export const XNN_VALUE_FLAG_EXTERNAL_INPUT = 0x1;
export const XNN_VALUE_FLAG_EXTERNAL_OUTPUT = 0x2;
/** XNN_FLAG_TRANSPOSE_WEIGHTS: FullyConnected filter stored [in, out]; BatchMatrixMultiply B transposed. */
export const XNN_FLAG_TRANSPOSE_WEIGHTS = 0x1;

export const XNNPACK_HEADER_MAGIC = 'XH00';
export const XNNPACK_GRAPH_IDENTIFIER = 'XN01';
/** Length written in the header: bytes 0..30 (padding, magic, length, two uint32 pairs, uint64). */
export const XNNPACK_HEADER_LENGTH = 30;
/** Alignment of the flatbuffer, the constant data region and each constant in it (upstream's CONSTANT_TENSOR_ALIGNMENT). */
export const XNNPACK_CONSTANT_ALIGNMENT = 16;
const UINT64_MAX = 0xffffffffffffffffn;

/** Values of the schema's `XNNDatatype` enum (numbered like XNNPACK's `enum xnn_datatype`). */
export const XnnDatatype = {
  invalid: 0,
  fp32: 1,
  fp16: 2,
  qint8: 3,
  quint8: 4,
  qint32: 5,
  qcint8: 6,
  qcint32: 7,
  qcint4: 8,
  qdint8: 9,
  qbint4: 10,
  qpint8: 11,
  int32: 12,
  pfp32: 13,
  bf16: 14,
} as const;
export type XnnDatatypeName = keyof typeof XnnDatatype;

/** Member names of the schema's `XNodeUnion` in declaration order: the union tag is the index + 1. */
export const XNODE_UNION_MEMBERS = [
  'XNNAdd',
  'XNNFullyConnected',
  'XNNSoftmax',
  'XNNSigmoid',
  'XNNStaticTranspose',
  'XNNClamp',
  'XNNConv2d',
  'XNNDiv',
  'XNNStaticResizeBilinear2D',
  'XNNStaticConstantPad',
  'XNNAvgPooling2d',
  'XNNMinimum',
  'XNNDepthwiseConv2d',
  'XNNMaxPooling2d',
  'XNNMultiply',
  'XNNSubtract',
  'XNNFloor',
  'XNNConvert',
  'XNNGlobalAvgPooling2d',
  'XNNStaticReshape',
  'XNNArgMaxPooling2d',
  'XNNSquareRoot',
  'XNNCeiling',
  'XNNHardswish',
  'XNNLeakyReLU',
  'XNNMaximum',
  'XNNNegate',
  'XNNSquare',
  'XNNELU',
  'XNNAbs',
  'XNNPReLU',
  'XNNConcatenate2',
  'XNNConcatenate3',
  'XNNConcatenate4',
  'XNNStaticSlice',
  'XNNScaledDotProductAttention',
  'XNNBatchMatrixMultiply',
  'XNNConcatenate5',
  'XNNConvTranspose2d',
  'XNNReciprocalSquareRoot',
  'XNNLog',
  'XNNGelu',
  'XNNTanh',
  'XNNExp',
  'XNNSin',
  'XNNCopy',
  'XNNCos',
] as const;
export type XNodeUnionMember = (typeof XNODE_UNION_MEMBERS)[number];

/** `XValueUnion` tag of `XNNTensorValue`. */
const XVALUE_TENSOR_VALUE = 1;

/** Nodes stored as `_XNNNode2x1`. */
export const BINARY_NODES = ['XNNAdd', 'XNNSubtract', 'XNNMultiply', 'XNNDiv', 'XNNMinimum', 'XNNMaximum', 'XNNPReLU', 'XNNBatchMatrixMultiply'] as const;
export type BinaryNode = (typeof BINARY_NODES)[number];

/** Nodes stored as `_XNNNode1x1`. */
export const UNARY_NODES = [
  'XNNSoftmax',
  'XNNSigmoid',
  'XNNClamp',
  'XNNFloor',
  'XNNConvert',
  'XNNGlobalAvgPooling2d',
  'XNNSquareRoot',
  'XNNCeiling',
  'XNNHardswish',
  'XNNNegate',
  'XNNSquare',
  'XNNAbs',
  'XNNReciprocalSquareRoot',
  'XNNLog',
  'XNNGelu',
  'XNNTanh',
  'XNNExp',
  'XNNSin',
  'XNNCopy',
  'XNNCos',
] as const;
export type UnaryNode = (typeof UNARY_NODES)[number];

export type ConvNode = 'XNNConv2d' | 'XNNDepthwiseConv2d' | 'XNNConvTranspose2d';
export type PoolingNode = 'XNNAvgPooling2d' | 'XNNMaxPooling2d';

/** Fields of `_XNNNodeConv` other than the value ids. Paddings, adjustments default to 0; strides, dilations and groups to 1. */
export interface ConvParams {
  kernelHeight: number;
  kernelWidth: number;
  groupInputChannels: number;
  groupOutputChannels: number;
  paddingTop?: number;
  paddingRight?: number;
  paddingBottom?: number;
  paddingLeft?: number;
  subsamplingHeight?: number;
  subsamplingWidth?: number;
  dilationHeight?: number;
  dilationWidth?: number;
  groups?: number;
  adjustmentHeight?: number;
  adjustmentWidth?: number;
  flags?: number;
}

/** Fields of `_XNNPooling2D` other than the value ids. Paddings default to 0; strides and dilations to 1. */
export interface PoolingParams {
  poolingHeight: number;
  poolingWidth: number;
  paddingTop?: number;
  paddingRight?: number;
  paddingBottom?: number;
  paddingLeft?: number;
  strideHeight?: number;
  strideWidth?: number;
  dilationHeight?: number;
  dilationWidth?: number;
  flags?: number;
}

/** Options every node takes: `XNode.debug_handle` and the fused clamp `XNode.output_min_max`. */
export interface NodeOptions {
  debugHandle?: number;
  outputMinMax?: { min: number; max: number };
}

type FieldValue = { kind: 'uint'; value: number } | { kind: 'float'; value: number } | { kind: 'uintVector'; value: number[] };

/** A node as written: its union member and the table's fields by slot, in schema order. */
interface NodeRecord {
  member: XNodeUnionMember;
  fields: FieldValue[];
  options: NodeOptions;
}

export interface XnnValueSpec {
  dims: number[];
  datatype: XnnDatatypeName;
  kind: 'input' | 'output' | 'intermediate' | 'constant';
  /** For constants: the little-endian bytes and where they are stored. */
  data?: Uint8Array;
  storage?: 'named' | 'payload';
}

export interface NamedDataEntry {
  key: string;
  data: Uint8Array;
}

export interface XnnpackPayload {
  payload: Uint8Array;
  /** Named data the payload refers to, deduplicated by key; the program must store it. */
  namedData: NamedDataEntry[];
  /** `id_out` of the external inputs, then of the external outputs, in external-id order. */
  externalInputs: number[];
  externalOutputs: number[];
}

function uint(value: number): FieldValue {
  if (!Number.isInteger(value) || value < 0 || value > 0xffffffff) throw new Error(`expected a uint32, got ${value}`);
  return { kind: 'uint', value };
}

function uintVector(values: number[]): FieldValue {
  values.forEach((value) => uint(value));
  return { kind: 'uintVector', value: [...values] };
}

function alignUp(value: number, alignment: number): number {
  return Math.ceil(value / alignment) * alignment;
}

/** Returns the bytes of float32 data (a Float32Array is used as-is, numbers are converted). */
export function float32Bytes(data: Float32Array | ArrayLike<number>): Uint8Array {
  const array = data instanceof Float32Array ? data : Float32Array.from(data);
  return new Uint8Array(array.buffer, array.byteOffset, array.byteLength);
}

/** Returns the hex sha256 of the bytes: the named data key upstream gives a constant. */
export function sha256Hex(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** An XNNGraph under construction. Value and node methods return value ids (`id_out`). */
export class XnnGraphBuilder {
  readonly values: XnnValueSpec[] = [];
  readonly nodes: NodeRecord[] = [];
  /** `XNNGraph.version`; upstream writes "0". */
  version = '0';

  #value(spec: XnnValueSpec): number {
    for (const size of spec.dims) uint(size);
    this.values.push(spec);
    return this.values.length - 1;
  }

  /** Defines an external input (flag 1). External ids follow the order of definition. */
  input(dims: number[], datatype: XnnDatatypeName = 'fp32'): number {
    return this.#value({ dims: [...dims], datatype, kind: 'input' });
  }

  /** Defines an external output (flag 2); its external id comes after every input's. */
  output(dims: number[], datatype: XnnDatatypeName = 'fp32'): number {
    return this.#value({ dims: [...dims], datatype, kind: 'output' });
  }

  /** Defines a value internal to the graph. */
  intermediate(dims: number[], datatype: XnnDatatypeName = 'fp32'): number {
    return this.#value({ dims: [...dims], datatype, kind: 'intermediate' });
  }

  /**
   * Defines an fp32 constant. `storage` 'named' (default, as current upstream stores weights)
   * puts the bytes in the program's named data under their sha256; 'payload' puts them in
   * the payload's constant data region.
   */
  constant(dims: number[], data: Float32Array | ArrayLike<number>, storage: 'named' | 'payload' = 'named'): number {
    const bytes = float32Bytes(data);
    const count = dims.reduce((product, size) => product * size, 1);
    if (bytes.length !== count * 4) {
      throw new Error(`constant of dims [${dims.join(', ')}] needs ${count} float32 values, got ${bytes.length / 4}`);
    }
    return this.#value({ dims: [...dims], datatype: 'fp32', kind: 'constant', data: bytes, storage });
  }

  /** Returns the dims of a defined value. */
  dims(id: number): number[] {
    const value = this.values[id];
    if (!value) throw new Error(`value ${id} is not defined`);
    return value.dims;
  }

  #node(member: XNodeUnionMember, fields: FieldValue[], options: NodeOptions = {}): void {
    this.nodes.push({ member, fields, options });
  }

  /** Adds a `_XNNNode2x1` node: Add, Subtract, Multiply, Div, Minimum, Maximum, PReLU or BatchMatrixMultiply. */
  binary(member: BinaryNode, input1: number, input2: number, output: number, flags = 0, options?: NodeOptions): number {
    this.#node(member, [uint(input1), uint(input2), uint(output), uint(flags)], options);
    return output;
  }

  /** Adds a `_XNNNode1x1` node (Softmax over the last dim, Sigmoid, Clamp, Gelu, Copy and the others). */
  unary(member: UnaryNode, input: number, output: number, flags = 0, options?: NodeOptions): number {
    this.#node(member, [uint(input), uint(output), uint(flags)], options);
    return output;
  }

  /** Adds XNNClamp: the bounds are the node's `output_min_max`, as upstream's op_clamp.py writes them. */
  clamp(input: number, output: number, min: number, max: number, options: NodeOptions = {}): number {
    return this.unary('XNNClamp', input, output, 0, { ...options, outputMinMax: { min, max } });
  }

  /** Adds XNNFullyConnected; `bias` XNN_INVALID_VALUE_ID means none, flags 1 means the filter is [in, out]. */
  fullyConnected(input: number, filter: number, bias: number, output: number, flags = 0, options?: NodeOptions): number {
    this.#node('XNNFullyConnected', [uint(input), uint(filter), uint(bias), uint(output), uint(flags)], options);
    return output;
  }

  /** Adds a `_XNNNodeConv` node: NHWC input, filter [out, kh, kw, in/groups], bias [out] or XNN_INVALID_VALUE_ID. */
  conv(member: ConvNode, params: ConvParams, input: number, filter: number, bias: number, output: number, options?: NodeOptions): number {
    this.#node(
      member,
      [
        uint(params.paddingTop ?? 0),
        uint(params.paddingRight ?? 0),
        uint(params.paddingBottom ?? 0),
        uint(params.paddingLeft ?? 0),
        uint(params.kernelHeight),
        uint(params.kernelWidth),
        uint(params.subsamplingHeight ?? 1),
        uint(params.subsamplingWidth ?? 1),
        uint(params.dilationHeight ?? 1),
        uint(params.dilationWidth ?? 1),
        uint(params.groupInputChannels),
        uint(params.groupOutputChannels),
        uint(params.groups ?? 1),
        uint(params.adjustmentHeight ?? 0),
        uint(params.adjustmentWidth ?? 0),
        uint(input),
        uint(filter),
        uint(bias),
        uint(output),
        uint(params.flags ?? 0),
      ],
      options,
    );
    return output;
  }

  /** Adds a `_XNNPooling2D` node (average or max pooling, NHWC). */
  pooling(member: PoolingNode, params: PoolingParams, input: number, output: number, options?: NodeOptions): number {
    this.#node(
      member,
      [
        uint(params.paddingTop ?? 0),
        uint(params.paddingRight ?? 0),
        uint(params.paddingBottom ?? 0),
        uint(params.paddingLeft ?? 0),
        uint(params.poolingHeight),
        uint(params.poolingWidth),
        uint(params.strideHeight ?? 1),
        uint(params.strideWidth ?? 1),
        uint(params.dilationHeight ?? 1),
        uint(params.dilationWidth ?? 1),
        uint(input),
        uint(output),
        uint(params.flags ?? 0),
      ],
      options,
    );
    return output;
  }

  /** Adds XNNArgMaxPooling2d, which writes the maxima and their indices. */
  argMaxPooling(params: Omit<PoolingParams, 'strideHeight' | 'strideWidth' | 'dilationHeight' | 'dilationWidth'>, input: number, outputValue: number, outputIndex: number, options?: NodeOptions): void {
    this.#node(
      'XNNArgMaxPooling2d',
      [
        uint(params.paddingTop ?? 0),
        uint(params.paddingRight ?? 0),
        uint(params.paddingBottom ?? 0),
        uint(params.paddingLeft ?? 0),
        uint(params.poolingHeight),
        uint(params.poolingWidth),
        uint(input),
        uint(outputValue),
        uint(outputIndex),
        uint(params.flags ?? 0),
      ],
      options,
    );
  }

  /** Adds XNNStaticTranspose: output dim i is input dim perm[i]. */
  transpose(perm: number[], input: number, output: number, options?: NodeOptions): number {
    this.#node('XNNStaticTranspose', [uint(perm.length), uintVector(perm), uint(input), uint(output), uint(0)], options);
    return output;
  }

  /** Adds XNNStaticReshape; a 0 in `newShape` is the one inferred dim (upstream's op_view_copy.py writes -1 as 0). */
  reshape(newShape: number[], input: number, output: number, options?: NodeOptions): number {
    this.#node('XNNStaticReshape', [uint(newShape.length), uintVector(newShape), uint(input), uint(output), uint(0)], options);
    return output;
  }

  /** Adds XNNStaticSlice of `sizes` elements starting at `offsets`. */
  slice(offsets: number[], sizes: number[], input: number, output: number, options?: NodeOptions): number {
    if (offsets.length !== sizes.length) throw new Error(`slice offsets (${offsets.length}) and sizes (${sizes.length}) differ in rank`);
    this.#node('XNNStaticSlice', [uint(offsets.length), uintVector(offsets), uintVector(sizes), uint(input), uint(output), uint(0)], options);
    return output;
  }

  /** Adds XNNConcatenate2..5 on `axis`; absent inputs are XNN_INVALID_VALUE_ID, as upstream's op_cat.py writes them. */
  concatenate(axis: number, inputs: number[], output: number, options?: NodeOptions): number {
    if (inputs.length < 2 || inputs.length > 5) throw new Error(`concatenate takes 2 to 5 inputs, got ${inputs.length}`);
    const member = `XNNConcatenate${inputs.length}` as XNodeUnionMember;
    const id = (index: number): FieldValue => uint(inputs[index] ?? XNN_INVALID_VALUE_ID);
    this.#node(member, [uint(axis), id(0), id(1), id(2), id(3), uint(output), uint(0), id(4)], options);
    return output;
  }

  /** Adds XNNStaticConstantPad (NHWC paddings per dim). */
  constantPad(prePaddings: number[], postPaddings: number[], paddingValue: number, input: number, output: number, options?: NodeOptions): number {
    this.#node(
      'XNNStaticConstantPad',
      [uintVector(prePaddings), uintVector(postPaddings), { kind: 'float', value: paddingValue }, uint(input), uint(output), uint(0)],
      options,
    );
    return output;
  }

  /** Adds XNNStaticResizeBilinear2D (NHWC). */
  resizeBilinear(newHeight: number, newWidth: number, input: number, output: number, flags = 0, options?: NodeOptions): number {
    this.#node('XNNStaticResizeBilinear2D', [uint(newHeight), uint(newWidth), uint(input), uint(output), uint(flags)], options);
    return output;
  }

  leakyRelu(negativeSlope: number, input: number, output: number, options?: NodeOptions): number {
    this.#node('XNNLeakyReLU', [{ kind: 'float', value: negativeSlope }, uint(input), uint(output), uint(0)], options);
    return output;
  }

  elu(alpha: number, input: number, output: number, options?: NodeOptions): number {
    this.#node('XNNELU', [{ kind: 'float', value: alpha }, uint(input), uint(output), uint(0)], options);
    return output;
  }

  /** Adds XNNScaledDotProductAttention; `scale` and `mask` are value ids. */
  scaledDotProductAttention(ids: { query: number; key: number; value: number; scale: number; mask: number }, output: number, options?: NodeOptions): number {
    this.#node(
      'XNNScaledDotProductAttention',
      [uint(ids.query), uint(ids.key), uint(ids.value), uint(ids.scale), uint(ids.mask), uint(output), uint(0)],
      options,
    );
    return output;
  }

  /** Serializes the graph to a payload and the named data it refers to. */
  build(): XnnpackPayload {
    const externalInputs: number[] = [];
    const externalOutputs: number[] = [];
    this.values.forEach((value, id) => {
      if (value.kind === 'input') externalInputs.push(id);
      if (value.kind === 'output') externalOutputs.push(id);
    });
    const externalIds = new Map<number, number>();
    [...externalInputs, ...externalOutputs].forEach((id, externalId) => externalIds.set(id, externalId));

    // Constants: entry 0 of constant_data is reserved; payload-stored bytes are packed 16-aligned.
    const constantEntries: { offset: bigint; size: number; key?: string }[] = [{ offset: 0n, size: 0 }];
    const constantIndex = new Map<number, number>();
    const payloadConstants: { offset: number; data: Uint8Array }[] = [];
    const namedData = new Map<string, Uint8Array>();
    let constantDataSize = 0;
    this.values.forEach((value, id) => {
      if (value.kind !== 'constant' || !value.data) return;
      constantIndex.set(id, constantEntries.length);
      if (value.storage === 'payload') {
        const offset = alignUp(constantDataSize, XNNPACK_CONSTANT_ALIGNMENT);
        payloadConstants.push({ offset, data: value.data });
        constantDataSize = offset + value.data.length;
        constantEntries.push({ offset: BigInt(offset), size: value.data.length });
      } else {
        const key = sha256Hex(value.data);
        if (!namedData.has(key)) namedData.set(key, value.data);
        constantEntries.push({ offset: UINT64_MAX, size: value.data.length, key });
      }
    });

    const flatbuffer = this.#serialize(externalIds, externalInputs, externalOutputs, constantEntries, constantIndex);

    const flatbufferOffset = alignUp(XNNPACK_HEADER_LENGTH, XNNPACK_CONSTANT_ALIGNMENT);
    const constantDataOffset = flatbufferOffset + alignUp(flatbuffer.length, XNNPACK_CONSTANT_ALIGNMENT);
    const payload = new Uint8Array(constantDataOffset + constantDataSize);
    const view = new DataView(payload.buffer);
    payload.set(new TextEncoder().encode(XNNPACK_HEADER_MAGIC), 4);
    view.setUint16(8, XNNPACK_HEADER_LENGTH, true);
    view.setUint32(10, flatbufferOffset, true);
    view.setUint32(14, flatbuffer.length, true);
    view.setUint32(18, constantDataOffset, true);
    view.setBigUint64(22, BigInt(constantDataSize), true);
    payload.set(flatbuffer, flatbufferOffset);
    for (const constant of payloadConstants) payload.set(constant.data, constantDataOffset + constant.offset);

    return {
      payload,
      namedData: [...namedData].map(([key, data]) => ({ key, data })),
      externalInputs,
      externalOutputs,
    };
  }

  #serialize(
    externalIds: Map<number, number>,
    externalInputs: number[],
    externalOutputs: number[],
    constantEntries: { offset: bigint; size: number; key?: string }[],
    constantIndex: Map<number, number>,
  ): Uint8Array {
    const builder = new Builder(1024);
    const uintVectorOf = (items: number[]): number => {
      builder.startVector(4, items.length, 4);
      for (let i = items.length - 1; i >= 0; i--) builder.addInt32(items[i]! | 0);
      return builder.endVector();
    };
    const offsetVectorOf = (offsets: number[]): number => {
      builder.startVector(4, offsets.length, 4);
      for (let i = offsets.length - 1; i >= 0; i--) builder.addOffset(offsets[i]!);
      return builder.endVector();
    };

    const nodeOffsets = this.nodes.map((node) => {
      // Vectors first: a table cannot be open while they are written.
      const vectors = node.fields.map((field) => (field.kind === 'uintVector' ? uintVectorOf(field.value) : 0));
      builder.startObject(node.fields.length);
      node.fields.forEach((field, slot) => {
        if (field.kind === 'uint') builder.addFieldInt32(slot, field.value | 0, 0);
        else if (field.kind === 'float') builder.addFieldFloat32(slot, field.value, 0);
        else builder.addFieldOffset(slot, vectors[slot]!, 0);
      });
      const body = builder.endObject();

      let minMax = 0;
      if (node.options.outputMinMax) {
        builder.startObject(2);
        builder.addFieldFloat32(0, node.options.outputMinMax.min, 0);
        builder.addFieldFloat32(1, node.options.outputMinMax.max, 0);
        minMax = builder.endObject();
      }
      builder.startObject(4);
      builder.addFieldInt8(0, XNODE_UNION_MEMBERS.indexOf(node.member) + 1, 0);
      builder.addFieldOffset(1, body, 0);
      builder.addFieldInt32(2, (node.options.debugHandle ?? 0) | 0, 0);
      if (minMax) builder.addFieldOffset(3, minMax, 0);
      return builder.endObject();
    });

    const valueOffsets = this.values.map((value, id) => {
      const dims = uintVectorOf(value.dims);
      const externalId = externalIds.get(id) ?? XNN_INVALID_VALUE_ID;
      let flags = 0;
      if (value.kind === 'input') flags = XNN_VALUE_FLAG_EXTERNAL_INPUT;
      if (value.kind === 'output') flags = XNN_VALUE_FLAG_EXTERNAL_OUTPUT;
      builder.startObject(8);
      builder.addFieldInt16(0, XnnDatatype[value.datatype], 0);
      builder.addFieldInt32(1, value.dims.length, 0);
      builder.addFieldOffset(2, dims, 0);
      builder.addFieldInt32(3, constantIndex.get(id) ?? 0, 0);
      builder.addFieldInt32(4, externalId | 0, 0);
      builder.addFieldInt32(5, flags, 0);
      builder.addFieldInt32(6, id, 0);
      const tensorValue = builder.endObject();
      builder.startObject(2);
      builder.addFieldInt8(0, XVALUE_TENSOR_VALUE, 0);
      builder.addFieldOffset(1, tensorValue, 0);
      return builder.endObject();
    });

    const constantOffsets = constantEntries.map((entry) => {
      const key = entry.key !== undefined ? builder.createString(entry.key) : 0;
      builder.startObject(3);
      builder.addFieldInt64(0, BigInt.asIntN(64, entry.offset), 0n);
      builder.addFieldInt64(1, BigInt(entry.size), 0n);
      if (key) builder.addFieldOffset(2, key, 0);
      return builder.endObject();
    });

    const version = builder.createString(this.version);
    const xnodes = offsetVectorOf(nodeOffsets);
    const xvalues = offsetVectorOf(valueOffsets);
    const inputIds = uintVectorOf(externalInputs);
    const outputIds = uintVectorOf(externalOutputs);
    const constantBuffer = offsetVectorOf([]);
    const memBufferSizes = uintVectorOf([]);
    const constantData = offsetVectorOf(constantOffsets);

    builder.startObject(9);
    builder.addFieldOffset(0, version, 0);
    builder.addFieldOffset(1, xnodes, 0);
    builder.addFieldOffset(2, xvalues, 0);
    builder.addFieldInt32(3, externalInputs.length + externalOutputs.length, 0);
    builder.addFieldOffset(4, inputIds, 0);
    builder.addFieldOffset(5, outputIds, 0);
    builder.addFieldOffset(6, constantBuffer, 0);
    builder.addFieldOffset(7, memBufferSizes, 0);
    builder.addFieldOffset(8, constantData, 0);
    builder.finish(builder.endObject(), XNNPACK_GRAPH_IDENTIFIER);
    return builder.asUint8Array().slice();
  }
}

/** Tracks which named data keys a program already stores, so shared weights are written once. */
const storedKeys = new WeakMap<ProgramBuilder, Set<string>>();

/**
 * Builds the graph and adds it to `method` as an XnnpackBackend delegate stored in a segment,
 * with its named data added to `program` (each key once). Returns the delegate index for
 * `method.delegateCall()` and the payload's external value ids.
 */
export function addXnnpackDelegate(program: ProgramBuilder, method: MethodBuilder, graph: XnnGraphBuilder): { delegateIndex: number; built: XnnpackPayload } {
  const built = graph.build();
  let keys = storedKeys.get(program);
  if (!keys) {
    keys = new Set(program.namedData.map((entry) => entry.key));
    storedKeys.set(program, keys);
  }
  for (const entry of built.namedData) {
    if (keys.has(entry.key)) continue;
    keys.add(entry.key);
    program.addNamedData(entry.key, entry.data, XNNPACK_CONSTANT_ALIGNMENT);
  }
  const delegateIndex = method.delegate({ id: 'XnnpackBackend', payload: built.payload });
  return { delegateIndex, built };
}

/** The fields of an XNNPACK payload header. */
export interface XnnpackHeader {
  magic: string;
  headerLength: number;
  flatbufferOffset: number;
  flatbufferSize: number;
  constantDataOffset: number;
  constantDataSize: bigint;
}

/** Reads the 32-byte payload header (independently of the builder, for tests). */
export function readXnnpackHeader(payload: Uint8Array): XnnpackHeader {
  const view = new DataView(payload.buffer, payload.byteOffset, payload.byteLength);
  return {
    magic: new TextDecoder().decode(payload.subarray(4, 8)),
    headerLength: view.getUint16(8, true),
    flatbufferOffset: view.getUint32(10, true),
    flatbufferSize: view.getUint32(14, true),
    constantDataOffset: view.getUint32(18, true),
    constantDataSize: view.getBigUint64(22, true),
  };
}

/**
 * Decodes a payload's XNNGraph to JSON with `flatc --json --strict-json --raw-binary
 * --defaults-json` against `schema/xnnpack.fbs`. Integers of 16 digits or more (uint64
 * offsets) are returned as strings so they keep their exact value; flatc's inf and nan
 * become Infinity and NaN.
 */
export function decodeXnnGraph(payload: Uint8Array, repoRoot: string): Record<string, unknown> {
  const header = readXnnpackHeader(payload);
  const directory = mkdtempSync(path.join(tmpdir(), 'xnn-json-'));
  try {
    const input = path.join(directory, 'graph.bin');
    writeFileSync(input, payload.subarray(header.flatbufferOffset, header.flatbufferOffset + header.flatbufferSize));
    const schema = path.join(repoRoot, 'schema', 'xnnpack.fbs');
    const result = spawnSync('flatc', ['--json', '--strict-json', '--raw-binary', '--defaults-json', '-o', directory, schema, '--', input], { encoding: 'utf8' });
    if (result.status !== 0) throw new Error(`flatc failed to decode the XNNGraph (exit ${result.status}): ${result.stderr}${result.stdout}`);
    const text = readFileSync(path.join(directory, 'graph.json'), 'utf8');
    // flatc prints infinite floats as inf/-inf and NaN as nan, which JSON lacks.
    const quoted = text.replace(/:\s*(\d{16,})/g, ': "$1"').replace(/:\s*(-?inf|-?nan)\b/g, ': "$1"');
    const floats: Record<string, number> = { inf: Infinity, '-inf': -Infinity, nan: NaN, '-nan': NaN };
    return JSON.parse(quoted, (_key, value: unknown) => (typeof value === 'string' && value in floats ? floats[value] : value)) as Record<string, unknown>;
  } finally {
    rmSync(directory, { recursive: true, force: true });
  }
}
