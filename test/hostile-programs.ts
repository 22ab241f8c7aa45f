/**
 * Small valid programs and a flatbuffer patcher for the hostile-input tests, also written
 * as seeds by `npm run fuzz`. Every program here loads and runs, and the tests corrupt them.
 */
import { ProgramBuilder, type BuildOptions } from './tooling/pte-writer.js';

/** A named program for exhaustive corruption loops and fuzz seeds. */
export interface NamedProgram {
  name: string;
  bytes: Uint8Array;
}

/** Field slots of the schema's tables (`schema/program.fbs`), in declaration order. */
export const Slot = {
  program: { executionPlan: 1, constantBuffer: 2, backendDelegateData: 3, segments: 4, constantSegment: 5, mutableDataSegments: 6, namedData: 7 },
  plan: { name: 0, values: 2, inputs: 3, outputs: 4, chains: 5, operators: 6, delegates: 7, nonConstBufferSizes: 8 },
  evalue: { valType: 0, val: 1 },
  tensor: { scalarType: 0, storageOffset: 1, sizes: 2, dimOrder: 3, dataBufferIdx: 5, allocationInfo: 6, shapeDynamism: 8, extraTensorInfo: 9 },
  allocation: { memoryId: 0, offsetLow: 1, offsetHigh: 2 },
  chain: { instructions: 2 },
  instruction: { argsType: 0, args: 1 },
  kernelCall: { opIndex: 0, args: 1 },
  delegateCall: { delegateIndex: 0, args: 1 },
  jumpFalse: { cond: 0, destination: 1 },
  delegate: { id: 0, processed: 1 },
  delegateReference: { location: 0, index: 1 },
  dataSegment: { offset: 0, size: 1 },
  subsegment: { segmentIndex: 0, offsets: 1 },
} as const;

/**
 * Reads and patches a written .pte flatbuffer in place: tables, vectors and scalar fields
 * by absolute byte position. Only fields that are present can be patched, so build the
 * programs with `writeDefaults: true` when a patched field may hold its default.
 */
export class FlatPatcher {
  readonly bytes: Uint8Array;
  readonly view: DataView;

  constructor(bytes: Uint8Array) {
    this.bytes = bytes.slice();
    this.view = new DataView(this.bytes.buffer, this.bytes.byteOffset, this.bytes.byteLength);
  }

  /** Position of the root Program table. */
  root(): number {
    return this.view.getUint32(0, true);
  }

  /** Position of a field's bytes in `table`, or undefined when the field is absent. */
  field(table: number, slot: number): number | undefined {
    const vtable = table - this.view.getInt32(table, true);
    const vtableSize = this.view.getUint16(vtable, true);
    const entry = 4 + slot * 2;
    if (entry + 2 > vtableSize) return undefined;
    const offset = this.view.getUint16(vtable + entry, true);
    return offset === 0 ? undefined : table + offset;
  }

  /** Like field(), but throws when the field is absent. */
  require(table: number, slot: number): number {
    const position = this.field(table, slot);
    if (position === undefined) throw new Error(`field ${slot} of the table at ${table} is absent`);
    return position;
  }

  /** Follows the offset stored in a table or vector field to the table, vector or string. */
  deref(table: number, slot: number): number {
    const position = this.require(table, slot);
    return position + this.view.getUint32(position, true);
  }

  /** Element count of the vector at `vector`. */
  length(vector: number): number {
    return this.view.getUint32(vector, true);
  }

  /** Returns the table that element `index` of a vector of tables points to. */
  tableAt(vector: number, index: number): number {
    const position = vector + 4 + index * 4;
    return position + this.view.getUint32(position, true);
  }

  /** Position of element `index` of a vector of scalars of `width` bytes. */
  elementAt(vector: number, index: number, width: number): number {
    return vector + 4 + index * width;
  }

  /** Returns execution plan `index` (the first by default). */
  plan(index = 0): number {
    return this.tableAt(this.deref(this.root(), Slot.program.executionPlan), index);
  }

  /** Returns the union table (Tensor, Int, ...) of value `index` of a plan. */
  valueTable(plan: number, index: number): number {
    const evalue = this.tableAt(this.deref(plan, Slot.plan.values), index);
    return this.deref(evalue, Slot.evalue.val);
  }

  /** Returns the EValue table of value `index` of a plan. */
  evalue(plan: number, index: number): number {
    return this.tableAt(this.deref(plan, Slot.plan.values), index);
  }

  /** Returns the arguments table (KernelCall, JumpFalseCall, ...) of instruction `index` of chain 0. */
  instructionArgs(plan: number, index: number): number {
    const chain = this.tableAt(this.deref(plan, Slot.plan.chains), 0);
    const instruction = this.tableAt(this.deref(chain, Slot.chain.instructions), index);
    return this.deref(instruction, Slot.instruction.args);
  }

  /** Returns the Instruction table of instruction `index` of chain 0. */
  instruction(plan: number, index: number): number {
    const chain = this.tableAt(this.deref(plan, Slot.plan.chains), 0);
    return this.tableAt(this.deref(chain, Slot.chain.instructions), index);
  }

  /** Marks a field absent by zeroing its vtable entry (vtables may be shared between tables). */
  removeField(table: number, slot: number): void {
    const vtable = table - this.view.getInt32(table, true);
    this.view.setUint16(vtable + 4 + slot * 2, 0, true);
  }

  setU8(position: number, value: number): void {
    this.view.setUint8(position, value);
  }

  setI32(position: number, value: number): void {
    this.view.setInt32(position, value, true);
  }

  setU32(position: number, value: number): void {
    this.view.setUint32(position, value, true);
  }

  setI64(position: number, value: bigint): void {
    this.view.setBigInt64(position, value, true);
  }

  setU64(position: number, value: bigint): void {
    this.view.setBigUint64(position, value, true);
  }

  getU64(position: number): bigint {
    return this.view.getBigUint64(position, true);
  }
}

/** Options that store every scalar field, so that any field can be patched. */
export const patchable: BuildOptions = { writeDefaults: true };

/** y = relu(x) on float32 [4]: the smallest program, for the exhaustive loops. */
export function buildRelu(options: BuildOptions = {}): Uint8Array {
  const program = new ProgramBuilder();
  const forward = program.method('forward');
  const x = forward.tensor({ dtype: 'float32', sizes: [4] });
  const y = forward.tensor({ dtype: 'float32', sizes: [4] });
  forward.kernel('aten::relu.out', [x, y, y]);
  forward.setInputs([x]).setOutputs([y]);
  return program.build(options);
}

/**
 * y = x + c on float32 [2, 2] with c a constant in the constant segment, so the file has an
 * extended header and one segment.
 */
export function buildAddConstant(options: BuildOptions = {}): Uint8Array {
  const program = new ProgramBuilder();
  const forward = program.method('forward');
  const c = forward.tensor({ dtype: 'float32', sizes: [2, 2], constant: [1, 2, 3, 4] });
  const x = forward.tensor({ dtype: 'float32', sizes: [2, 2] });
  const y = forward.tensor({ dtype: 'float32', sizes: [2, 2] });
  forward.kernel('aten::add.out', [x, c, forward.int(1), y, y]);
  forward.setInputs([x]).setOutputs([y]);
  return program.build(options);
}

/** y = x * x on a DYNAMIC_BOUND float32 input of upper bound [8]. */
export function buildDynamicSquare(options: BuildOptions = {}): Uint8Array {
  const program = new ProgramBuilder();
  const forward = program.method('forward');
  const x = forward.tensor({ dtype: 'float32', sizes: [8], dynamism: 'dynamic_bound' });
  const y = forward.tensor({ dtype: 'float32', sizes: [8], dynamism: 'dynamic_bound' });
  forward.kernel('aten::mul.out', [x, x, y, y]);
  forward.setInputs([x]).setOutputs([y]);
  return program.build(options);
}

/**
 * Builds a loop: instruction 0 negates x, and instruction 1 jumps back to 0 while the Bool
 * `flag` is false. As written, flag is true and the body runs once. Patching it to false
 * makes the method loop until the instruction limit stops it.
 */
export function buildLoop(options: BuildOptions = {}): Uint8Array {
  const program = new ProgramBuilder();
  const forward = program.method('forward');
  const x = forward.tensor({ dtype: 'int32', sizes: [2] });
  const flag = forward.bool(true);
  forward.kernel('aten::neg.out', [x, x, x]);
  forward.jumpFalse(flag, 0);
  forward.setInputs([x]).setOutputs([x]);
  return program.build(options);
}

/** Every instruction kind and value type in one method, for fuzz seeds. */
export function buildKitchenSink(options: BuildOptions = {}): Uint8Array {
  const program = new ProgramBuilder();
  const forward = program.method('forward');
  const x = forward.tensor({ dtype: 'float32', sizes: [2, 3] });
  const transposed = forward.tensor({ dtype: 'int64', sizes: [2, 3], dimOrder: [1, 0] });
  const state = forward.tensor({ dtype: 'float32', sizes: [2, 3], initial: [1, 1, 1, 1, 1, 1] });
  const sum = forward.tensor({ dtype: 'float32', sizes: [2, 3] });
  const mask = forward.tensor({ dtype: 'bool', sizes: [2, 3] });
  const picked = forward.tensor({ dtype: 'float32', sizes: [2, 3] });
  const grown = forward.tensor({ dtype: 'float32', sizes: [2, 3], dynamism: 'dynamic_unbound', planned: false });
  const copy = forward.tensor({ dtype: 'float32', sizes: [2, 3] });
  forward.kernel('aten::add.out', [x, state, forward.int(1), sum, sum]);
  forward.kernel('aten::gt.Scalar_out', [sum, forward.double(1.5), mask, mask]);
  forward.kernel('aten::where.self_out', [mask, sum, x, picked, picked]);
  forward.kernel('aten::clamp.out', [picked, forward.double(-1), forward.none(), grown, grown]);
  forward.move(grown, copy);
  forward.jumpFalse(forward.bool(true), 0);
  forward.free(grown);
  forward.intList([forward.int(2), forward.int(3)]);
  forward.tensorList([x, sum]);
  forward.optionalTensorList([x, -1]);
  forward.doubleList([0.5, 2]);
  forward.boolList([true, false]);
  forward.string('text');
  forward.setInputs([x, transposed]).setOutputs([picked, mask, transposed, copy]);

  const other = program.method('scalars');
  const n = other.int(7);
  const d = other.double(2.5);
  const b = other.bool(false);
  const s = other.string('hello');
  other.setInputs([]).setOutputs([n, d, b, s]);
  return program.build(options);
}

/** A method whose only work is a delegate of an unknown backend, with an inline payload. */
export function buildDelegate(options: BuildOptions = {}): Uint8Array {
  const program = new ProgramBuilder();
  const forward = program.method('forward');
  const x = forward.tensor({ dtype: 'float32', sizes: [4] });
  const y = forward.tensor({ dtype: 'float32', sizes: [4] });
  const delegate = forward.delegate({
    id: 'FuzzBackend',
    payload: new Uint8Array([1, 2, 3, 4]),
    location: 'inline',
    compileSpecs: [{ key: 'k', value: 'v' }],
  });
  forward.delegateCall(delegate, [x, y]);
  forward.setInputs([x]).setOutputs([y]);
  program.addNamedData('weights', new Uint8Array(16));
  return program.build(options);
}

/** Builds the programs that `npm run fuzz` writes as seeds, each with and without default-valued fields. */
export function seedPrograms(): NamedProgram[] {
  const builders: [string, (options: BuildOptions) => Uint8Array][] = [
    ['relu', buildRelu],
    ['add-constant', buildAddConstant],
    ['add-constant-inline', (options) => buildAddConstant({ ...options, constants: 'inline' })],
    ['dynamic-square', buildDynamicSquare],
    ['loop', buildLoop],
    ['kitchen-sink', buildKitchenSink],
    ['delegate', buildDelegate],
  ];
  const seeds: NamedProgram[] = [];
  for (const [name, build] of builders) {
    seeds.push({ name, bytes: build({}) });
    seeds.push({ name: `${name}-defaults`, bytes: build(patchable) });
  }
  return seeds;
}
