/**
 * Writes ONNX models (protobuf `ModelProto`) with a small hand-written protobuf encoder, for
 * benchmarks that run the same weights in onnxruntime-node. Field numbers follow
 * `onnx/onnx.proto` (ONNX 1.14, IR version 8); only the fields used here are written.
 */

type Chunk = Uint8Array;

/** Protobuf wire encoding of the few types ONNX models need. */
class ProtoWriter {
  private readonly chunks: Chunk[] = [];
  private length = 0;

  private push(chunk: Chunk): void {
    this.chunks.push(chunk);
    this.length += chunk.length;
  }

  private varint(value: number | bigint): void {
    let rest = BigInt.asUintN(64, BigInt(value));
    const bytes: number[] = [];
    do {
      let byte = Number(rest & 0x7fn);
      rest >>= 7n;
      if (rest !== 0n) byte |= 0x80;
      bytes.push(byte);
    } while (rest !== 0n);
    this.push(Uint8Array.from(bytes));
  }

  private key(field: number, wireType: number): void {
    this.varint((field << 3) | wireType);
  }

  int(field: number, value: number | bigint): this {
    this.key(field, 0);
    this.varint(value);
    return this;
  }

  float(field: number, value: number): this {
    this.key(field, 5);
    const bytes = new Uint8Array(4);
    new DataView(bytes.buffer).setFloat32(0, value, true);
    this.push(bytes);
    return this;
  }

  bytes(field: number, value: Uint8Array): this {
    this.key(field, 2);
    this.varint(value.length);
    this.push(value);
    return this;
  }

  string(field: number, value: string): this {
    return this.bytes(field, new TextEncoder().encode(value));
  }

  message(field: number, body: ProtoWriter): this {
    this.key(field, 2);
    this.varint(body.length);
    for (const chunk of body.chunks) this.push(chunk);
    return this;
  }

  finish(): Uint8Array {
    const out = new Uint8Array(this.length);
    let offset = 0;
    for (const chunk of this.chunks) {
      out.set(chunk, offset);
      offset += chunk.length;
    }
    return out;
  }
}

export type AttributeValue = number | number[] | string | { ints: number[] } | { floats: number[] };

export interface OnnxNode {
  op: string;
  inputs: string[];
  outputs: string[];
  attributes?: Record<string, AttributeValue>;
}

export interface OnnxInitializer {
  name: string;
  dims: number[];
  data: Float32Array | BigInt64Array;
}

export interface OnnxValueInfo {
  name: string;
  /** A number for a fixed size, a string for a symbolic one such as "batch". */
  shape: (number | string)[];
}

// TensorProto.DataType values.
const FLOAT = 1;
const INT64 = 7;
// AttributeProto.AttributeType values.
const ATTRIBUTE_FLOAT = 1;
const ATTRIBUTE_INT = 2;
const ATTRIBUTE_STRING = 3;
const ATTRIBUTE_FLOATS = 6;
const ATTRIBUTE_INTS = 7;

function attribute(name: string, value: AttributeValue): ProtoWriter {
  const proto = new ProtoWriter().string(1, name);
  if (typeof value === 'string') return proto.string(4, value).int(20, ATTRIBUTE_STRING);
  if (typeof value === 'number') {
    return Number.isInteger(value) ? proto.int(3, value).int(20, ATTRIBUTE_INT) : proto.float(2, value).int(20, ATTRIBUTE_FLOAT);
  }
  if (Array.isArray(value) || 'ints' in value) {
    const items = Array.isArray(value) ? value : value.ints;
    for (const item of items) proto.int(8, item);
    return proto.int(20, ATTRIBUTE_INTS);
  }
  for (const item of value.floats) proto.float(7, item);
  return proto.int(20, ATTRIBUTE_FLOATS);
}

function tensor(initializer: OnnxInitializer): ProtoWriter {
  const proto = new ProtoWriter();
  for (const dim of initializer.dims) proto.int(1, dim);
  proto.int(2, initializer.data instanceof Float32Array ? FLOAT : INT64);
  proto.string(8, initializer.name);
  const raw = new Uint8Array(initializer.data.buffer, initializer.data.byteOffset, initializer.data.byteLength);
  return proto.bytes(9, raw);
}

function valueInfo(info: OnnxValueInfo): ProtoWriter {
  const shape = new ProtoWriter();
  for (const dim of info.shape) {
    const dimension = new ProtoWriter();
    if (typeof dim === 'number') dimension.int(1, dim);
    else dimension.string(2, dim);
    shape.message(1, dimension);
  }
  const tensorType = new ProtoWriter().int(1, FLOAT).message(2, shape);
  const type = new ProtoWriter().message(1, tensorType);
  return new ProtoWriter().string(1, info.name).message(2, type);
}

/** Serializes a single-graph model with the default ONNX domain at `opset`. */
export function writeOnnxModel(graph: {
  name: string;
  nodes: OnnxNode[];
  initializers: OnnxInitializer[];
  inputs: OnnxValueInfo[];
  outputs: OnnxValueInfo[];
  opset?: number;
}): Uint8Array {
  const proto = new ProtoWriter();
  graph.nodes.forEach((node, index) => {
    const nodeProto = new ProtoWriter();
    for (const input of node.inputs) nodeProto.string(1, input);
    for (const output of node.outputs) nodeProto.string(2, output);
    nodeProto.string(3, `${node.op}_${index}`);
    nodeProto.string(4, node.op);
    for (const [name, value] of Object.entries(node.attributes ?? {})) nodeProto.message(5, attribute(name, value));
    proto.message(1, nodeProto);
  });
  proto.string(2, graph.name);
  for (const initializer of graph.initializers) proto.message(5, tensor(initializer));
  for (const input of graph.inputs) proto.message(11, valueInfo(input));
  for (const output of graph.outputs) proto.message(12, valueInfo(output));

  const opset = new ProtoWriter().string(1, '').int(2, graph.opset ?? 17);
  return new ProtoWriter().int(1, 8).string(2, 'embed-image bench').message(7, proto).message(8, opset).finish();
}
