/**
 * Writes ExecuTorch programs (.pte) for tests: a small builder over the project's
 * `schema/program.fbs`, with the file layout of upstream ExecuTorch's exporter (main at
 * commit cff6f4dd32e6, `exir/_serialize/_program.py`).
 *
 * The flatbuffer is built by hand with the `flatbuffers` package's Builder (2.0.7) rather
 * than with `flatc --ts` bindings, for two reasons found with flatc 2.0.8:
 * - the generated TypeScript ignores `force_align: 16` on `Buffer.storage` and
 *   `BackendDelegateInlineData.data` (it calls `startVector(1, n, 1)`), so inline constants
 *   would not be 16-byte aligned as upstream writes them;
 * - the generated files import each other without `.js` extensions, which `tsc` rejects
 *   under `moduleResolution: NodeNext`.
 * The field slot numbers below follow the table definitions in `schema/program.fbs`.
 *
 * Usage:
 * ```ts
 * const program = new ProgramBuilder();
 * const forward = program.method('forward');
 * const x = forward.tensor({ dtype: 'float32', sizes: [3] });
 * const one = forward.tensor({ dtype: 'float32', sizes: [3], constant: [1, 1, 1] });
 * const y = forward.tensor({ dtype: 'float32', sizes: [3] });
 * forward.kernel('aten::add.out', [x, one, forward.int(1), y, y]);
 * forward.setInputs([x]).setOutputs([y]);
 * const bytes = program.build();  // a Uint8Array for Program.load()
 * ```
 *
 * File layout (all numbers little-endian):
 * - bytes 0..4 root table offset, bytes 4..8 the file identifier `ET12`;
 * - with an extended header, 32 bytes at offset 8: magic `eh00`, header length (uint32),
 *   program size, segment base offset and segment data size (uint64 each). The 24-byte form
 *   omits the data size but still occupies 32 bytes, so the flatbuffer stays 16-byte aligned;
 * - segments from the segment base offset, the program size rounded up to the segment
 *   alignment. `DataSegment.offset` is relative to that base. Upstream's order is the
 *   constant segment, the mutable data segment, delegate payloads, then named data.
 */
import { Builder } from 'flatbuffers';

/** Element types of the schema's `ScalarType` enum (the c10::ScalarType numbering). */
export const ScalarType = {
  uint8: 0,
  int8: 1,
  int16: 2,
  int32: 3,
  int64: 4,
  float16: 5,
  float32: 6,
  float64: 7,
  bool: 11,
  bfloat16: 15,
  uint16: 27,
  uint32: 28,
  uint64: 29,
} as const;

export type DTypeName = keyof typeof ScalarType;

const elementSizes: Record<DTypeName, number> = {
  uint8: 1,
  int8: 1,
  int16: 2,
  int32: 4,
  int64: 8,
  float16: 2,
  float32: 4,
  float64: 8,
  bool: 1,
  bfloat16: 2,
  uint16: 2,
  uint32: 4,
  uint64: 8,
};

/** `KernelTypes` union tags of `EValue.val`. */
const KernelTypes = {
  Null: 1,
  Int: 2,
  Bool: 3,
  Double: 4,
  Tensor: 5,
  String: 6,
  IntList: 7,
  DoubleList: 8,
  BoolList: 9,
  TensorList: 10,
  OptionalTensorList: 11,
} as const;

/** `InstructionArguments` union tags of `Instruction.instr_args`. */
const InstructionTypes = {
  KernelCall: 1,
  DelegateCall: 2,
  MoveCall: 3,
  JumpFalseCall: 4,
  FreeCall: 5,
} as const;

const FILE_IDENTIFIER = 'ET12';
const EXTENDED_HEADER_MAGIC = 'eh00';
/** Bytes that the extended header occupies after the identifier in both of its forms. */
const EXTENDED_HEADER_SPACE = 32;

export type Dynamism = 'static' | 'dynamic_bound' | 'dynamic_unbound';
const dynamismCodes: Record<Dynamism, number> = { static: 0, dynamic_bound: 1, dynamic_unbound: 2 };

/** Tensor element data: plain numbers (converted by dtype), bigints for 64-bit types, or raw bytes. */
export type TensorValues = ArrayLike<number> | ArrayLike<bigint> | ArrayBufferView;

/** Where a planned tensor lives: an arena (memory id, default 1) and a byte offset in it. */
export interface Placement {
  memoryId?: number;
  /** Byte offset in the arena; omitted means the sequential planner chooses one. */
  offset?: number;
}

export interface TensorSpec {
  /** A dtype name, or a raw `ScalarType` number for types the names do not cover. */
  dtype: DTypeName | number;
  sizes: number[];
  /** Memory layout, outermost dimension first; defaults to the identity 0..rank-1. */
  dimOrder?: number[];
  /** Defaults to 'static'. With 'dynamic_bound', `sizes` is the upper bound. */
  dynamism?: Dynamism;
  /** Constant data, stored in the constant segment or in the inline `constant_buffer`. */
  constant?: TensorValues;
  /**
   * Memory planning of a non-constant tensor. `true` (the default) lets the sequential planner
   * place it in arena 1, and a Placement fixes the arena or offset (to alias values). `false`
   * leaves it unplanned: an input whose memory the caller provides, or a tensor whose storage
   * the runtime allocates.
   */
  planned?: boolean | Placement;
  /** Initial value of a planned tensor, stored in the mutable data segment. */
  initial?: TensorValues;
  /** Marks the tensor as stored in an external `.ptd` file under this fully qualified name. */
  external?: string;
  /** Overrides `extra_tensor_info.mutable_data_segments_idx` (written only when set). */
  mutableDataSegmentsIndex?: number;
  /** Overrides the computed `data_buffer_idx`. */
  dataBufferIndex?: number;
  storageOffset?: number;
  requiresGrad?: boolean;
}

export interface CompileSpec {
  key: string;
  value: Uint8Array | string;
}

export interface DelegateSpec {
  /** Backend id such as "XnnpackBackend". */
  id: string;
  payload: Uint8Array;
  /** Where the payload is stored: 'inline' in `backend_delegate_data` or a 'segment'. Default 'segment'. */
  location?: 'inline' | 'segment';
  compileSpecs?: CompileSpec[];
  /** Alignment of the payload's segment (combined with the program's segment alignment). */
  alignment?: number;
  /** Overrides `processed.index`, for example to point past the segment list on purpose. */
  processedIndex?: number;
}

export interface BuildOptions {
  /**
   * The extended header: 'auto' (default) writes the 32-byte form when segment data is
   * present, as upstream does; 'none' never writes it; 32 or 24 always write that form.
   */
  extendedHeader?: 'auto' | 'none' | 32 | 24;
  /** Constant storage: 'segment' (default, current upstream) or the deprecated 'inline' `constant_buffer`. */
  constants?: 'segment' | 'inline';
  /** Alignment of the segment base offset and of each segment (default 128, as upstream). */
  segmentAlignment?: number;
  /** Alignment of each constant inside the constant segment and of inline buffers (default 16). */
  tensorAlignment?: number;
  /** `Program.version` (default 0). */
  version?: number;
  /** Stores scalar fields that equal the schema default, which upstream omits (default false). */
  writeDefaults?: boolean;
}

interface TensorValue {
  kind: 'Tensor';
  spec: TensorSpec;
  scalarType: number;
  nbytes: number;
  constantBytes?: Uint8Array;
  initialBytes?: Uint8Array;
  placement?: { memoryId: number; offset?: number };
  /** Filled in by build(): data_buffer_idx and the planned offset. */
  dataBufferIndex?: number;
  plannedOffset?: number;
}

type Value =
  | { kind: 'Null' }
  | { kind: 'Int'; value: bigint }
  | { kind: 'Bool'; value: boolean }
  | { kind: 'Double'; value: number }
  | { kind: 'String'; value: string }
  | { kind: 'IntList'; items: number[] }
  | { kind: 'DoubleList'; items: number[] }
  | { kind: 'BoolList'; items: boolean[] }
  | { kind: 'TensorList'; items: number[] }
  | { kind: 'OptionalTensorList'; items: number[] }
  | TensorValue;

type Instruction =
  | { kind: 'KernelCall'; opIndex: number; args: number[] }
  | { kind: 'DelegateCall'; delegateIndex: number; args: number[] }
  | { kind: 'MoveCall'; from: number; to: number }
  | { kind: 'JumpFalseCall'; cond: number; destination: number }
  | { kind: 'FreeCall'; value: number };

/** Splits "aten::add.out" into the schema's name "aten::add" and overload "out". */
export function splitOperatorName(fullName: string): { name: string; overload: string } {
  const namespaceEnd = fullName.indexOf('::');
  const dot = fullName.indexOf('.', namespaceEnd < 0 ? 0 : namespaceEnd + 2);
  if (dot < 0) return { name: fullName, overload: '' };
  return { name: fullName.slice(0, dot), overload: fullName.slice(dot + 1) };
}

function alignUp(value: number, alignment: number): number {
  return Math.ceil(value / alignment) * alignment;
}

function checkAlignment(name: string, alignment: number): void {
  if (!Number.isInteger(alignment) || alignment < 1 || (alignment & (alignment - 1)) !== 0) {
    throw new Error(`${name} must be a power of two, got ${alignment}`);
  }
}

function gcd(a: number, b: number): number {
  return b === 0 ? a : gcd(b, a % b);
}

function scalarTypeOf(dtype: DTypeName | number): number {
  if (typeof dtype === 'number') return dtype;
  const code = ScalarType[dtype];
  if (code === undefined) throw new Error(`unknown dtype "${String(dtype)}"`);
  return code;
}

function elementSizeOf(dtype: DTypeName | number): number {
  if (typeof dtype === 'number') {
    const name = (Object.keys(ScalarType) as DTypeName[]).find((key) => ScalarType[key] === dtype);
    return name ? elementSizes[name] : 1;
  }
  return elementSizes[dtype];
}

/**
 * Converts tensor values to little-endian bytes of `dtype`. Typed arrays and DataViews are
 * taken as raw bytes; number and bigint arrays are converted element by element.
 */
export function tensorBytes(dtype: DTypeName | number, values: TensorValues): Uint8Array {
  if (ArrayBuffer.isView(values)) {
    return new Uint8Array(values.buffer, values.byteOffset, values.byteLength).slice();
  }
  const count = values.length;
  const size = elementSizeOf(dtype);
  const bytes = new Uint8Array(count * size);
  const view = new DataView(bytes.buffer);
  for (let i = 0; i < count; i++) {
    const item = values[i] as number | bigint;
    switch (dtype) {
      case 'float32':
        view.setFloat32(i * 4, Number(item), true);
        break;
      case 'float64':
        view.setFloat64(i * 8, Number(item), true);
        break;
      case 'int64':
        view.setBigInt64(i * 8, BigInt(item), true);
        break;
      case 'uint64':
        view.setBigUint64(i * 8, BigInt(item), true);
        break;
      case 'int32':
        view.setInt32(i * 4, Number(item), true);
        break;
      case 'uint32':
        view.setUint32(i * 4, Number(item), true);
        break;
      case 'int16':
        view.setInt16(i * 2, Number(item), true);
        break;
      case 'uint16':
        view.setUint16(i * 2, Number(item), true);
        break;
      case 'int8':
        view.setInt8(i, Number(item));
        break;
      case 'uint8':
      case 'bool':
        view.setUint8(i, Number(item));
        break;
      default:
        throw new Error(`cannot convert numbers to dtype ${String(dtype)}; pass the bytes as a Uint8Array`);
    }
  }
  return bytes;
}

/** One execution plan: values, inputs and outputs, operators, delegates and one chain of instructions. */
export class MethodBuilder {
  readonly name: string;
  /** @internal */ readonly values: Value[] = [];
  /** @internal */ readonly instructions: Instruction[] = [];
  /** @internal */ readonly operators: { name: string; overload: string }[] = [];
  /** @internal */ readonly delegates: DelegateSpec[] = [];
  /** @internal */ inputs: number[] = [];
  /** @internal */ outputs: number[] = [];
  /** @internal */ bufferSizes?: number[];
  /** @internal */ containerMeta?: { inputs: string; outputs: string };

  constructor(name: string) {
    this.name = name;
  }

  #add(value: Value): number {
    this.values.push(value);
    return this.values.length - 1;
  }

  /** Adds a tensor value and returns its value index. */
  tensor(spec: TensorSpec): number {
    if (spec.constant !== undefined && spec.initial !== undefined) {
      throw new Error('a tensor is either constant or has an initial value, not both');
    }
    const scalarType = scalarTypeOf(spec.dtype);
    const count = spec.sizes.reduce((product, size) => product * size, 1);
    const nbytes = count * elementSizeOf(spec.dtype);
    const value: TensorValue = { kind: 'Tensor', spec, scalarType, nbytes };
    if (spec.constant !== undefined) value.constantBytes = tensorBytes(spec.dtype, spec.constant);
    if (spec.initial !== undefined) value.initialBytes = tensorBytes(spec.dtype, spec.initial);

    const isConstant = spec.constant !== undefined || spec.external !== undefined;
    const planned = spec.planned ?? !isConstant;
    if (planned !== false) {
      const placement = planned === true ? {} : planned;
      value.placement = { memoryId: placement.memoryId ?? 1 };
      if (placement.offset !== undefined) value.placement.offset = placement.offset;
    }
    return this.#add(value);
  }

  none(): number {
    return this.#add({ kind: 'Null' });
  }

  int(value: number | bigint): number {
    return this.#add({ kind: 'Int', value: BigInt(value) });
  }

  bool(value: boolean): number {
    return this.#add({ kind: 'Bool', value });
  }

  double(value: number): number {
    return this.#add({ kind: 'Double', value });
  }

  string(value: string): number {
    return this.#add({ kind: 'String', value });
  }

  /** Adds an IntList whose items are the value indices of Int values (the format's rule). */
  intList(intValueIndices: number[]): number {
    return this.#add({ kind: 'IntList', items: [...intValueIndices] });
  }

  /** Adds one Int value per integer, then an IntList over them; returns the list's index. */
  ints(integers: (number | bigint)[]): number {
    const indices = integers.map((integer) => this.int(integer));
    return this.intList(indices);
  }

  doubleList(items: number[]): number {
    return this.#add({ kind: 'DoubleList', items: [...items] });
  }

  boolList(items: boolean[]): number {
    return this.#add({ kind: 'BoolList', items: [...items] });
  }

  /** Adds a TensorList over the given tensor value indices. */
  tensorList(tensorValueIndices: number[]): number {
    return this.#add({ kind: 'TensorList', items: [...tensorValueIndices] });
  }

  /** Adds an OptionalTensorList; -1 marks None. */
  optionalTensorList(tensorValueIndices: number[]): number {
    return this.#add({ kind: 'OptionalTensorList', items: [...tensorValueIndices] });
  }

  /** Returns the index of an operator such as "aten::add.out" in the plan, adding it once. */
  operator(fullName: string): number {
    const { name, overload } = splitOperatorName(fullName);
    const found = this.operators.findIndex((item) => item.name === name && item.overload === overload);
    if (found >= 0) return found;
    this.operators.push({ name, overload });
    return this.operators.length - 1;
  }

  /** Adds a delegate and returns its index for delegateCall(). */
  delegate(spec: DelegateSpec): number {
    this.delegates.push(spec);
    return this.delegates.length - 1;
  }

  /** The index the next instruction will get (a jump destination). */
  get nextInstruction(): number {
    return this.instructions.length;
  }

  #instruction(instruction: Instruction): number {
    this.instructions.push(instruction);
    return this.instructions.length - 1;
  }

  /**
   * Adds a KernelCall; `args` are value indices: the operator schema's arguments in order
   * (out arguments included), then its returns. Returns the instruction index.
   */
  kernel(operatorName: string, args: number[]): number {
    return this.#instruction({ kind: 'KernelCall', opIndex: this.operator(operatorName), args: [...args] });
  }

  /** Adds a KernelCall with a raw operator index (which may be out of range on purpose). */
  kernelByIndex(opIndex: number, args: number[]): number {
    return this.#instruction({ kind: 'KernelCall', opIndex, args: [...args] });
  }

  delegateCall(delegateIndex: number, args: number[]): number {
    return this.#instruction({ kind: 'DelegateCall', delegateIndex, args: [...args] });
  }

  move(from: number, to: number): number {
    return this.#instruction({ kind: 'MoveCall', from, to });
  }

  /** Adds a JumpFalseCall: jumps to `destination` when the Bool value `cond` is false. */
  jumpFalse(cond: number, destination: number): number {
    return this.#instruction({ kind: 'JumpFalseCall', cond, destination });
  }

  /** Sets the destination of an earlier JumpFalseCall (for forward jumps). */
  patchJump(instructionIndex: number, destination: number): void {
    const instruction = this.instructions[instructionIndex];
    if (instruction?.kind !== 'JumpFalseCall') {
      throw new Error(`instruction ${instructionIndex} is not a JumpFalseCall`);
    }
    instruction.destination = destination;
  }

  free(value: number): number {
    return this.#instruction({ kind: 'FreeCall', value });
  }

  setInputs(indices: number[]): this {
    this.inputs = [...indices];
    return this;
  }

  setOutputs(indices: number[]): this {
    this.outputs = [...indices];
    return this;
  }

  /** Overrides the computed `non_const_buffer_sizes` (entry 0 is the reserved one). */
  setBufferSizes(sizes: number[]): this {
    this.bufferSizes = [...sizes];
    return this;
  }

  /** Sets `container_meta_type` (upstream's encoded pytree specs of inputs and outputs). */
  setContainerMeta(inputs: string, outputs: string): this {
    this.containerMeta = { inputs, outputs };
    return this;
  }
}

interface Segment {
  data: Uint8Array;
  alignment: number;
}

/** A whole program: methods in file order, named data, and build() to serialize them. */
export class ProgramBuilder {
  readonly methods: MethodBuilder[] = [];
  readonly namedData: { key: string; data: Uint8Array; alignment: number }[] = [];
  /** Entries written to `Program.named_data` that point at a given segment index as-is. */
  readonly rawNamedData: { key: string; segmentIndex: number }[] = [];

  /** Adds an execution plan; plans are written in the order they are added. */
  method(name: string): MethodBuilder {
    const method = new MethodBuilder(name);
    this.methods.push(method);
    return method;
  }

  /** Adds named data (bytes that backends look up by key), stored in its own segment. */
  addNamedData(key: string, data: Uint8Array, alignment = 1): this {
    this.namedData.push({ key, data, alignment });
    return this;
  }

  /** Serializes the program to .pte bytes. */
  build(options: BuildOptions = {}): Uint8Array {
    const constantsMode = options.constants ?? 'segment';
    const segmentAlignment = options.segmentAlignment ?? 128;
    const tensorAlignment = options.tensorAlignment ?? 16;
    checkAlignment('segmentAlignment', segmentAlignment);
    checkAlignment('tensorAlignment', tensorAlignment);

    // Buffers indexed by data_buffer_idx; entry 0 is the reserved empty one.
    const constants: Uint8Array[] = [new Uint8Array(0)];
    const mutables: Uint8Array[] = [new Uint8Array(0)];
    let externalCount = 0;
    for (const method of this.methods) {
      planMemory(method);
      for (const value of method.values) {
        if (value.kind !== 'Tensor') continue;
        if (value.constantBytes) {
          value.dataBufferIndex = constants.length;
          constants.push(value.constantBytes);
        } else if (value.initialBytes) {
          value.dataBufferIndex = mutables.length;
          mutables.push(value.initialBytes);
        } else if (value.spec.external !== undefined) {
          value.dataBufferIndex = externalCount++;
        } else {
          value.dataBufferIndex = 0;
        }
        if (value.spec.dataBufferIndex !== undefined) value.dataBufferIndex = value.spec.dataBufferIndex;
      }
    }

    const segments: Segment[] = [];
    // Files with inline constants still carry an empty constant_segment, as upstream wrote them.
    let constantSegment: { segmentIndex: number; offsets: number[] } = { segmentIndex: 0, offsets: [] };
    if (constantsMode === 'segment') {
      const packed = packBuffers(constants, tensorAlignment);
      constantSegment = { segmentIndex: segments.length, offsets: packed.offsets };
      segments.push({ data: packed.data, alignment: 1 });
    }
    let mutableSegment: { segmentIndex: number; offsets: number[] } | undefined;
    if (mutables.length > 1) {
      // Upstream packs mutable data without padding: the runtime copies it at method load.
      const packed = packBuffers(mutables, 1);
      mutableSegment = { segmentIndex: segments.length, offsets: packed.offsets };
      segments.push({ data: packed.data, alignment: 1 });
    }

    const inlineDelegateData: Uint8Array[] = [];
    const delegateReferences = new Map<DelegateSpec, { location: number; index: number }>();
    for (const method of this.methods) {
      for (const delegate of method.delegates) {
        let reference: { location: number; index: number };
        if ((delegate.location ?? 'segment') === 'inline') {
          reference = { location: 0, index: inlineDelegateData.length };
          inlineDelegateData.push(delegate.payload);
        } else {
          reference = { location: 1, index: segments.length };
          segments.push({ data: delegate.payload, alignment: delegate.alignment ?? 1 });
        }
        if (delegate.processedIndex !== undefined) reference.index = delegate.processedIndex;
        delegateReferences.set(delegate, reference);
      }
    }

    const namedDataEntries = this.namedData.map((entry) => {
      const segmentIndex = segments.length;
      segments.push({ data: entry.data, alignment: entry.alignment });
      return { key: entry.key, segmentIndex };
    });
    namedDataEntries.push(...this.rawNamedData);

    // Segment offsets relative to the segment base offset.
    const dataSegments: { offset: number; size: number }[] = [];
    let segmentDataSize = 0;
    for (const segment of segments) {
      const alignment = (segmentAlignment * segment.alignment) / gcd(segmentAlignment, segment.alignment);
      const offset = alignUp(segmentDataSize, alignment);
      dataSegments.push({ offset, size: segment.data.length });
      segmentDataSize = offset + segment.data.length;
    }

    const flatbuffer = serializeProgram({
      version: options.version ?? 0,
      writeDefaults: options.writeDefaults ?? false,
      methods: this.methods,
      constantBuffer: constantsMode === 'inline' ? constants : undefined,
      tensorAlignment,
      inlineDelegateData,
      delegateReferences,
      dataSegments,
      constantSegment,
      mutableSegment,
      namedData: namedDataEntries,
    });

    const headerOption = options.extendedHeader ?? 'auto';
    let headerLength: number;
    if (headerOption === 'auto') headerLength = segmentDataSize > 0 ? 32 : 0;
    else if (headerOption === 'none') headerLength = 0;
    else headerLength = headerOption;
    if (headerLength === 0) {
      if (segmentDataSize === 0) return flatbuffer;
      // Without a header the runtime cannot find the segments; tests use this on purpose.
      const baseOffset = alignUp(flatbuffer.length, segmentAlignment);
      return concatenate(flatbuffer, baseOffset, segments, dataSegments, segmentDataSize);
    }

    const programSize = flatbuffer.length + EXTENDED_HEADER_SPACE;
    const segmentBaseOffset = segmentDataSize > 0 ? alignUp(programSize, segmentAlignment) : 0;
    const header = new Uint8Array(EXTENDED_HEADER_SPACE);
    const view = new DataView(header.buffer);
    header.set(new TextEncoder().encode(EXTENDED_HEADER_MAGIC), 0);
    view.setUint32(4, headerLength, true);
    view.setBigUint64(8, BigInt(programSize), true);
    view.setBigUint64(16, BigInt(segmentBaseOffset), true);
    if (headerLength >= 32) view.setBigUint64(24, BigInt(segmentDataSize), true);

    // Insert the header after the identifier and move the root offset past it. Offsets inside
    // a flatbuffer are relative, and 32 is a multiple of every alignment in the schema.
    const program = new Uint8Array(programSize);
    program.set(flatbuffer.subarray(0, 8), 0);
    program.set(header, 8);
    program.set(flatbuffer.subarray(8), 8 + EXTENDED_HEADER_SPACE);
    const programView = new DataView(program.buffer);
    programView.setUint32(0, programView.getUint32(0, true) + EXTENDED_HEADER_SPACE, true);
    if (segmentDataSize === 0) return program;
    return concatenate(program, segmentBaseOffset, segments, dataSegments, segmentDataSize);
  }
}

function concatenate(
  program: Uint8Array,
  baseOffset: number,
  segments: Segment[],
  dataSegments: { offset: number; size: number }[],
  segmentDataSize: number,
): Uint8Array {
  const file = new Uint8Array(baseOffset + segmentDataSize);
  file.set(program, 0);
  segments.forEach((segment, index) => {
    file.set(segment.data, baseOffset + dataSegments[index]!.offset);
  });
  return file;
}

/** Packs buffers back to back, padding each but the last to `alignment`, as upstream does. */
function packBuffers(buffers: Uint8Array[], alignment: number): { data: Uint8Array; offsets: number[] } {
  const offsets: number[] = [];
  let size = 0;
  buffers.forEach((buffer, index) => {
    offsets.push(size);
    size += buffer.length;
    if (index < buffers.length - 1) size = alignUp(size, alignment);
  });
  const data = new Uint8Array(size);
  buffers.forEach((buffer, index) => data.set(buffer, offsets[index]!));
  return { data, offsets };
}

/**
 * Assigns offsets to planned tensors without an explicit one: sequentially, 16-byte aligned,
 * after the highest explicitly placed byte of the same arena. Computes arena sizes unless the
 * method sets them.
 */
function planMemory(method: MethodBuilder): void {
  const ends = new Map<number, number>();
  const tensors = method.values.filter((value): value is TensorValue => value.kind === 'Tensor' && value.placement !== undefined);
  for (const tensor of tensors) {
    const placement = tensor.placement!;
    if (placement.offset === undefined) continue;
    tensor.plannedOffset = placement.offset;
    const end = placement.offset + tensor.nbytes;
    ends.set(placement.memoryId, Math.max(ends.get(placement.memoryId) ?? 0, end));
  }
  for (const tensor of tensors) {
    const placement = tensor.placement!;
    if (placement.offset !== undefined) continue;
    const offset = alignUp(ends.get(placement.memoryId) ?? 0, 16);
    tensor.plannedOffset = offset;
    ends.set(placement.memoryId, offset + tensor.nbytes);
  }
  if (method.bufferSizes) return;
  const maxMemoryId = Math.max(0, ...ends.keys());
  const sizes = [0];
  for (let memoryId = 1; memoryId <= maxMemoryId; memoryId++) sizes.push(alignUp(ends.get(memoryId) ?? 0, 16));
  method.bufferSizes = sizes;
}

interface SerializeInput {
  version: number;
  writeDefaults: boolean;
  methods: MethodBuilder[];
  constantBuffer: Uint8Array[] | undefined;
  tensorAlignment: number;
  inlineDelegateData: Uint8Array[];
  delegateReferences: Map<DelegateSpec, { location: number; index: number }>;
  dataSegments: { offset: number; size: number }[];
  constantSegment: { segmentIndex: number; offsets: number[] };
  mutableSegment: { segmentIndex: number; offsets: number[] } | undefined;
  namedData: { key: string; segmentIndex: number }[];
}

/** Builds the Program flatbuffer (identifier ET12) without header or segments. */
function serializeProgram(input: SerializeInput): Uint8Array {
  const builder = new Builder(1024);
  // Upstream's files omit scalar fields equal to the schema default; writeDefaults stores them
  // anyway. Every addFieldOffset call below passes a real offset, so forcing is safe.
  builder.forceDefaults(input.writeDefaults);
  // Align the finished buffer to 16, the schema's largest force_align, even when no aligned
  // vector is written, so the buffer size is a multiple of 16 as in upstream's files.
  builder.prep(16, 0);
  const writer = new TableWriter(builder);

  const plans = input.methods.map((method) => writer.executionPlan(method, input.delegateReferences));
  const planVector = writer.offsetVector(plans);

  const constantBuffer = input.constantBuffer
    ? writer.offsetVector(
        input.constantBuffer.map((storage) => {
          const vector = writer.byteVector(storage, input.tensorAlignment);
          builder.startObject(1);
          builder.addFieldOffset(0, vector, 0);
          return builder.endObject();
        }),
      )
    : writer.offsetVector([]);

  const delegateData = writer.offsetVector(
    input.inlineDelegateData.map((data) => {
      const vector = writer.byteVector(data, 16);
      builder.startObject(1);
      builder.addFieldOffset(0, vector, 0);
      return builder.endObject();
    }),
  );

  const segments = writer.offsetVector(
    input.dataSegments.map((segment) => {
      builder.startObject(2);
      builder.addFieldInt64(0, BigInt(segment.offset), 0n);
      builder.addFieldInt64(1, BigInt(segment.size), 0n);
      return builder.endObject();
    }),
  );

  const constantSegment = writer.subsegmentOffsets(input.constantSegment);
  const mutableSegments = input.mutableSegment ? writer.offsetVector([writer.subsegmentOffsets(input.mutableSegment)]) : 0;
  const namedData =
    input.namedData.length > 0
      ? writer.offsetVector(
          input.namedData.map((entry) => {
            const key = builder.createString(entry.key);
            builder.startObject(2);
            builder.addFieldOffset(0, key, 0);
            builder.addFieldInt32(1, entry.segmentIndex, 0);
            return builder.endObject();
          }),
        )
      : 0;

  builder.startObject(8);
  builder.addFieldInt32(0, input.version, 0);
  builder.addFieldOffset(1, planVector, 0);
  builder.addFieldOffset(2, constantBuffer, 0);
  builder.addFieldOffset(3, delegateData, 0);
  builder.addFieldOffset(4, segments, 0);
  builder.addFieldOffset(5, constantSegment, 0);
  if (mutableSegments) builder.addFieldOffset(6, mutableSegments, 0);
  if (namedData) builder.addFieldOffset(7, namedData, 0);
  const root = builder.endObject();
  builder.finish(root, FILE_IDENTIFIER);
  return builder.asUint8Array().slice();
}

/** Writes the schema's tables; each method returns the offset of the table or vector it wrote. */
class TableWriter {
  readonly builder: Builder;

  constructor(builder: Builder) {
    this.builder = builder;
  }

  offsetVector(offsets: number[]): number {
    this.builder.startVector(4, offsets.length, 4);
    for (let i = offsets.length - 1; i >= 0; i--) this.builder.addOffset(offsets[i]!);
    return this.builder.endVector();
  }

  int32Vector(items: number[]): number {
    this.builder.startVector(4, items.length, 4);
    for (let i = items.length - 1; i >= 0; i--) this.builder.addInt32(items[i]!);
    return this.builder.endVector();
  }

  int64Vector(items: (number | bigint)[]): number {
    this.builder.startVector(8, items.length, 8);
    for (let i = items.length - 1; i >= 0; i--) this.builder.addInt64(BigInt(items[i]!));
    return this.builder.endVector();
  }

  float64Vector(items: number[]): number {
    this.builder.startVector(8, items.length, 8);
    for (let i = items.length - 1; i >= 0; i--) this.builder.addFloat64(items[i]!);
    return this.builder.endVector();
  }

  byteVector(items: ArrayLike<number>, alignment = 1): number {
    this.builder.startVector(1, items.length, alignment);
    for (let i = items.length - 1; i >= 0; i--) this.builder.addInt8(items[i]!);
    return this.builder.endVector();
  }

  subsegmentOffsets(subsegment: { segmentIndex: number; offsets: number[] }): number {
    const offsets = this.int64Vector(subsegment.offsets);
    this.builder.startObject(2);
    this.builder.addFieldInt32(0, subsegment.segmentIndex, 0);
    this.builder.addFieldOffset(1, offsets, 0);
    return this.builder.endObject();
  }

  executionPlan(method: MethodBuilder, delegateReferences: Map<DelegateSpec, { location: number; index: number }>): number {
    const builder = this.builder;
    const name = builder.createString(method.name);
    let containerMeta = 0;
    if (method.containerMeta) {
      const encodedInputs = builder.createString(method.containerMeta.inputs);
      const encodedOutputs = builder.createString(method.containerMeta.outputs);
      builder.startObject(2);
      builder.addFieldOffset(0, encodedInputs, 0);
      builder.addFieldOffset(1, encodedOutputs, 0);
      containerMeta = builder.endObject();
    }
    const values = this.offsetVector(method.values.map((value) => this.evalue(value)));
    const inputs = this.int32Vector(method.inputs);
    const outputs = this.int32Vector(method.outputs);
    const chain = this.chain(method);
    const chains = this.offsetVector([chain]);
    const operators = this.offsetVector(
      method.operators.map((operator) => {
        const operatorName = builder.createString(operator.name);
        const overload = builder.createString(operator.overload);
        builder.startObject(2);
        builder.addFieldOffset(0, operatorName, 0);
        builder.addFieldOffset(1, overload, 0);
        return builder.endObject();
      }),
    );
    const delegates = this.offsetVector(method.delegates.map((delegate) => this.delegate(delegate, delegateReferences.get(delegate)!)));
    const bufferSizes = this.int64Vector(method.bufferSizes ?? [0]);

    builder.startObject(10);
    builder.addFieldOffset(0, name, 0);
    if (containerMeta) builder.addFieldOffset(1, containerMeta, 0);
    builder.addFieldOffset(2, values, 0);
    builder.addFieldOffset(3, inputs, 0);
    builder.addFieldOffset(4, outputs, 0);
    builder.addFieldOffset(5, chains, 0);
    builder.addFieldOffset(6, operators, 0);
    builder.addFieldOffset(7, delegates, 0);
    builder.addFieldOffset(8, bufferSizes, 0);
    return builder.endObject();
  }

  chain(method: MethodBuilder): number {
    const builder = this.builder;
    const instructions = this.offsetVector(method.instructions.map((instruction) => this.instruction(instruction)));
    const inputs = this.int32Vector([]);
    const outputs = this.int32Vector([]);
    builder.startObject(4);
    builder.addFieldOffset(0, inputs, 0);
    builder.addFieldOffset(1, outputs, 0);
    builder.addFieldOffset(2, instructions, 0);
    return builder.endObject();
  }

  instruction(instruction: Instruction): number {
    const builder = this.builder;
    let body: number;
    switch (instruction.kind) {
      case 'KernelCall':
      case 'DelegateCall': {
        const args = this.int32Vector(instruction.args);
        builder.startObject(2);
        builder.addFieldInt32(0, instruction.kind === 'KernelCall' ? instruction.opIndex : instruction.delegateIndex, 0);
        builder.addFieldOffset(1, args, 0);
        body = builder.endObject();
        break;
      }
      case 'MoveCall':
        builder.startObject(2);
        builder.addFieldInt32(0, instruction.from, 0);
        builder.addFieldInt32(1, instruction.to, 0);
        body = builder.endObject();
        break;
      case 'JumpFalseCall':
        builder.startObject(2);
        builder.addFieldInt32(0, instruction.cond, 0);
        builder.addFieldInt32(1, instruction.destination, 0);
        body = builder.endObject();
        break;
      case 'FreeCall':
        builder.startObject(1);
        builder.addFieldInt32(0, instruction.value, 0);
        body = builder.endObject();
        break;
    }
    builder.startObject(2);
    builder.addFieldInt8(0, InstructionTypes[instruction.kind], 0);
    builder.addFieldOffset(1, body, 0);
    return builder.endObject();
  }

  delegate(delegate: DelegateSpec, reference: { location: number; index: number }): number {
    const builder = this.builder;
    const id = builder.createString(delegate.id);
    builder.startObject(2);
    builder.addFieldInt8(0, reference.location, 0);
    builder.addFieldInt32(1, reference.index, 0);
    const processed = builder.endObject();
    const compileSpecs = this.offsetVector(
      (delegate.compileSpecs ?? []).map((spec) => {
        const key = builder.createString(spec.key);
        const bytes = typeof spec.value === 'string' ? new TextEncoder().encode(spec.value) : spec.value;
        const value = this.byteVector(bytes);
        builder.startObject(2);
        builder.addFieldOffset(0, key, 0);
        builder.addFieldOffset(1, value, 0);
        return builder.endObject();
      }),
    );
    builder.startObject(3);
    builder.addFieldOffset(0, id, 0);
    builder.addFieldOffset(1, processed, 0);
    builder.addFieldOffset(2, compileSpecs, 0);
    return builder.endObject();
  }

  evalue(value: Value): number {
    const builder = this.builder;
    let body: number;
    switch (value.kind) {
      case 'Null':
        builder.startObject(0);
        body = builder.endObject();
        break;
      case 'Int':
        builder.startObject(1);
        builder.addFieldInt64(0, value.value, 0n);
        body = builder.endObject();
        break;
      case 'Bool':
        builder.startObject(1);
        builder.addFieldInt8(0, value.value ? 1 : 0, 0);
        body = builder.endObject();
        break;
      case 'Double':
        builder.startObject(1);
        // -0 equals the default 0 under !=, so compare with NaN to keep its sign bit.
        builder.addFieldFloat64(0, value.value, Object.is(value.value, -0) ? Number.NaN : 0);
        body = builder.endObject();
        break;
      case 'String': {
        const text = builder.createString(value.value);
        builder.startObject(1);
        builder.addFieldOffset(0, text, 0);
        body = builder.endObject();
        break;
      }
      case 'IntList':
      case 'DoubleList':
      case 'BoolList':
      case 'TensorList':
      case 'OptionalTensorList': {
        let items: number;
        if (value.kind === 'IntList') items = this.int64Vector(value.items);
        else if (value.kind === 'DoubleList') items = this.float64Vector(value.items);
        else if (value.kind === 'BoolList') items = this.byteVector(value.items.map((item) => (item ? 1 : 0)));
        else items = this.int32Vector(value.items);
        builder.startObject(1);
        builder.addFieldOffset(0, items, 0);
        body = builder.endObject();
        break;
      }
      case 'Tensor':
        body = this.tensor(value);
        break;
    }
    builder.startObject(2);
    builder.addFieldInt8(0, KernelTypes[value.kind], 0);
    builder.addFieldOffset(1, body, 0);
    return builder.endObject();
  }

  tensor(value: TensorValue): number {
    const builder = this.builder;
    const spec = value.spec;
    const rank = spec.sizes.length;
    const sizes = this.int32Vector(spec.sizes);
    const dimOrder = this.byteVector(spec.dimOrder ?? Array.from({ length: rank }, (_, index) => index));

    let allocation = 0;
    if (value.placement) {
      const offset = value.plannedOffset ?? 0;
      builder.startObject(3);
      builder.addFieldInt32(0, value.placement.memoryId, 0);
      builder.addFieldInt32(1, offset % 2 ** 32, 0);
      builder.addFieldInt32(2, Math.floor(offset / 2 ** 32), 0);
      allocation = builder.endObject();
    }

    let extra = 0;
    if (spec.external !== undefined || spec.mutableDataSegmentsIndex !== undefined) {
      const fqn = spec.external !== undefined ? builder.createString(spec.external) : 0;
      builder.startObject(5);
      builder.addFieldInt64(0, BigInt(spec.mutableDataSegmentsIndex ?? 0), 0n);
      if (fqn) builder.addFieldOffset(1, fqn, 0);
      builder.addFieldInt8(2, spec.external !== undefined ? 1 : 0, 0);
      extra = builder.endObject();
    }

    builder.startObject(10);
    builder.addFieldInt8(0, value.scalarType, 0);
    builder.addFieldInt32(1, spec.storageOffset ?? 0, 0);
    builder.addFieldOffset(2, sizes, 0);
    builder.addFieldOffset(3, dimOrder, 0);
    builder.addFieldInt8(4, spec.requiresGrad ? 1 : 0, 0);
    builder.addFieldInt32(5, value.dataBufferIndex ?? 0, 0);
    if (allocation) builder.addFieldOffset(6, allocation, 0);
    builder.addFieldInt8(7, 0, 0);
    builder.addFieldInt8(8, dynamismCodes[spec.dynamism ?? 'static'], 0);
    if (extra) builder.addFieldOffset(9, extra, 0);
    return builder.endObject();
  }
}
