/**
 * NumPy `.npy` files: reading (format versions 1.0, 2.0 and 3.0) and writing (1.0, or 2.0 when
 * the header is 64 KiB or longer), for the tensor dtypes that embed-image runs.
 *
 * A file starts with the magic string "\x93NUMPY", a major and a minor version byte, and the
 * header length (uint16 little-endian in 1.0, uint32 in 2.0 and 3.0). The header follows: a
 * Python dict literal such as `{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }`,
 * padded with spaces and ended by a newline. The raw array data comes after the header.
 *
 * Arrays stored in Fortran order (`'fortran_order': True`) are transposed into C (row-major)
 * order on reading, so a Tensor always holds row-major data. Files are always written in C order.
 */
import { readFile } from 'node:fs/promises';
import { endianness } from 'node:os';

import { writeFileAtomic } from './atomic-file.js';
import { EmbedImageError } from './errors.js';
import { checkTensor, typedArrayConstructor, type DType, type Tensor, type TensorData } from './program.js';

const MAGIC = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]; // "\x93NUMPY"
const HOST_LITTLE_ENDIAN = endianness() === 'LE';

/** numpy 1.24 (which wrote the test fixtures) pads the header so the data starts at a multiple of 64 bytes. */
const ARRAY_ALIGN = 64;
/** numpy 1.24 leaves room for a 21-digit first dimension, so the header can be rewritten in place. */
const GROWTH_AXIS_MAX_DIGITS = 21;
/** Nesting depth of the header literal past which it is rejected (a real header has depth 2). */
const MAX_LITERAL_DEPTH = 16;

interface DTypeCode {
  dtype: DType;
  kind: 'f' | 'i' | 'u' | 'b';
  itemSize: number;
  /** The descr string numpy writes for this dtype. */
  descr: string;
}

const DTYPE_CODES: DTypeCode[] = [
  { dtype: 'float32', kind: 'f', itemSize: 4, descr: '<f4' },
  { dtype: 'float64', kind: 'f', itemSize: 8, descr: '<f8' },
  { dtype: 'int64', kind: 'i', itemSize: 8, descr: '<i8' },
  { dtype: 'int32', kind: 'i', itemSize: 4, descr: '<i4' },
  { dtype: 'int16', kind: 'i', itemSize: 2, descr: '<i2' },
  { dtype: 'int8', kind: 'i', itemSize: 1, descr: '|i1' },
  { dtype: 'uint8', kind: 'u', itemSize: 1, descr: '|u1' },
  { dtype: 'bool', kind: 'b', itemSize: 1, descr: '|b1' },
];

const SUPPORTED_DESCRS = DTYPE_CODES.map((code) => code.descr).join(' ');

function npyError(source: string, problem: string): EmbedImageError {
  return new EmbedImageError('ERR_NPY', `${source}: ${problem}`);
}

// ---------------------------------------------------------------------------------------------
// Header literal parser. The header is parsed as data, never evaluated: only the literal forms
// numpy writes (and older numpy versions wrote) are accepted.

type PyValue = string | number | boolean | null | PyValue[] | { tuple: PyValue[] } | Map<string, PyValue>;

class LiteralParser {
  #position = 0;

  constructor(
    private readonly text: string,
    private readonly source: string,
  ) {}

  parseDocument(): PyValue {
    const value = this.#parseValue(0);
    this.#skipWhitespace();
    if (this.#position < this.text.length) this.#fail(`unexpected ${JSON.stringify(this.text[this.#position])} after the dict`);
    return value;
  }

  #fail(problem: string): never {
    if (this.#position >= this.text.trimEnd().length && !problem.startsWith('unexpected end')) problem = 'unexpected end of the header';
    throw npyError(this.source, `the header is not a valid Python dict literal: ${problem} at character ${this.#position} of ${JSON.stringify(this.text.trimEnd())}`);
  }

  #skipWhitespace(): void {
    while (this.#position < this.text.length && ' \t\n\r\f\v'.includes(this.text[this.#position]!)) this.#position += 1;
  }

  #peek(): string | undefined {
    this.#skipWhitespace();
    return this.text[this.#position];
  }

  #expect(character: string): void {
    if (this.#peek() !== character) this.#fail(`expected ${JSON.stringify(character)}`);
    this.#position += 1;
  }

  #parseValue(depth: number): PyValue {
    if (depth > MAX_LITERAL_DEPTH) this.#fail(`nesting deeper than ${MAX_LITERAL_DEPTH} levels`);
    const character = this.#peek();
    if (character === undefined) this.#fail('unexpected end of the header');
    if (character === '{') return this.#parseDict(depth);
    if (character === '(') return this.#parseSequence(depth, '(', ')');
    if (character === '[') return this.#parseSequence(depth, '[', ']');
    if (character === "'" || character === '"') return this.#parseString();
    if ((character === 'u' || character === 'b') && (this.text[this.#position + 1] === "'" || this.text[this.#position + 1] === '"')) {
      // Python 2 era headers may spell strings u'...'; the prefix does not change the text here.
      this.#position += 1;
      return this.#parseString();
    }
    if (/[0-9+-]/.test(character)) return this.#parseInteger();
    return this.#parseName();
  }

  #parseDict(depth: number): Map<string, PyValue> {
    this.#expect('{');
    const entries = new Map<string, PyValue>();
    while (this.#peek() !== '}') {
      const keyStart = this.#position;
      const key = this.#parseValue(depth + 1);
      if (typeof key !== 'string') {
        this.#position = keyStart;
        this.#fail('dict keys must be strings');
      }
      if (entries.has(key)) this.#fail(`duplicate key '${key}'`);
      this.#expect(':');
      entries.set(key, this.#parseValue(depth + 1));
      if (this.#peek() === ',') this.#position += 1;
      else if (this.#peek() !== '}') this.#fail('expected "," or "}"');
    }
    this.#position += 1;
    return entries;
  }

  /** Parses a tuple or a list. A parenthesized single value without a comma is that value, as in Python. */
  #parseSequence(depth: number, open: string, close: string): PyValue {
    this.#expect(open);
    const items: PyValue[] = [];
    let sawComma = false;
    while (this.#peek() !== close) {
      items.push(this.#parseValue(depth + 1));
      if (this.#peek() === ',') {
        this.#position += 1;
        sawComma = true;
      } else if (this.#peek() !== close) {
        this.#fail(`expected "," or "${close}"`);
      }
    }
    this.#position += 1;
    if (open === '[') return items;
    if (items.length === 1 && !sawComma) return items[0]!;
    return { tuple: items };
  }

  #parseString(): string {
    const quote = this.text[this.#position]!;
    this.#position += 1;
    let value = '';
    while (true) {
      const character = this.text[this.#position];
      if (character === undefined || character === '\n') this.#fail('unterminated string');
      this.#position += 1;
      if (character === quote) return value;
      if (character === '\\') {
        const escaped = this.text[this.#position];
        if (escaped === undefined) this.#fail('unterminated string');
        this.#position += 1;
        const simple: Record<string, string> = { '\\': '\\', "'": "'", '"': '"', n: '\n', t: '\t', r: '\r', '0': '\0' };
        const replacement = simple[escaped];
        if (replacement === undefined) this.#fail(`unsupported escape "\\${escaped}" in a string`);
        value += replacement;
      } else {
        value += character;
      }
    }
  }

  /** Parses a decimal integer; a trailing "L" (Python 2 long, as in "(3L, 4L)") is accepted. */
  #parseInteger(): number {
    const match = /^[+-]?[0-9]+L?/.exec(this.text.slice(this.#position));
    if (!match) this.#fail('invalid number');
    const digits = match[0].replace(/L$/, '');
    this.#position += match[0].length;
    if (/^[0-9.eEjJxX_]/.test(this.text[this.#position] ?? '')) this.#fail('only decimal integers are allowed');
    const value = Number(digits);
    if (!Number.isSafeInteger(value)) this.#fail(`integer ${digits} is larger than ${Number.MAX_SAFE_INTEGER}`);
    return value;
  }

  #parseName(): boolean | null {
    const match = /^[A-Za-z_][A-Za-z0-9_]*/.exec(this.text.slice(this.#position));
    if (!match) this.#fail(`unexpected ${JSON.stringify(this.text[this.#position])}`);
    this.#position += match[0].length;
    if (match[0] === 'True') return true;
    if (match[0] === 'False') return false;
    if (match[0] === 'None') return null;
    this.#position -= match[0].length;
    return this.#fail(`unexpected name "${match[0]}" (only True, False and None are allowed)`);
  }
}

// ---------------------------------------------------------------------------------------------
// Reading

interface NpyHeader {
  code: DTypeCode;
  fortranOrder: boolean;
  shape: number[];
  /** Byte offset of the array data. */
  dataOffset: number;
}

function dtypeFromDescr(descr: PyValue, source: string): DTypeCode {
  if (typeof descr !== 'string') {
    throw npyError(source, `structured or subarray dtypes are not supported (descr is ${JSON.stringify(descr)}); save a plain array with one of ${SUPPORTED_DESCRS}`);
  }
  const match = /^([<>=|]?)([a-zA-Z])(\d+)$/.exec(descr);
  const code = match && DTYPE_CODES.find((candidate) => candidate.kind === match[2] && candidate.itemSize === Number(match[3]));
  if (!match || !code) {
    throw npyError(source, `dtype '${descr}' is not supported; supported dtypes are ${SUPPORTED_DESCRS}`);
  }
  const byteOrder = match[1];
  // Byte order means nothing for one-byte items, so numpy reads '>u1' like '|u1'.
  if (code.itemSize > 1) {
    const bigEndian = byteOrder === '>' || (byteOrder === '=' && !HOST_LITTLE_ENDIAN);
    if (bigEndian) {
      throw npyError(source, `dtype '${descr}' is big-endian; only little-endian data is supported (in numpy: array.astype('${code.descr}'))`);
    }
    if (byteOrder === '|' || byteOrder === '') {
      throw npyError(source, `dtype '${descr}' has ${code.itemSize}-byte items but no byte order; expected '${code.descr}'`);
    }
  }
  return code;
}

function shapeFromValue(value: PyValue, source: string): number[] {
  if (typeof value !== 'object' || value === null || !('tuple' in value)) {
    throw npyError(source, `'shape' must be a tuple of integers, got ${JSON.stringify(value)}`);
  }
  const shape: number[] = [];
  for (const size of value.tuple) {
    if (typeof size !== 'number' || size < 0) {
      throw npyError(source, `'shape' must hold non-negative integers, got ${JSON.stringify(size)}`);
    }
    shape.push(size);
  }
  return shape;
}

function parseHeader(bytes: Uint8Array, source: string): NpyHeader {
  if (bytes.length < MAGIC.length || MAGIC.some((byte, index) => bytes[index] !== byte)) {
    throw npyError(source, 'not a .npy file (it does not start with the magic string "\\x93NUMPY")');
  }
  if (bytes.length < 8) throw npyError(source, 'truncated: the file ends inside the format version');
  const major = bytes[6]!;
  const minor = bytes[7]!;
  if (!((major === 1 || major === 2 || major === 3) && minor === 0)) {
    throw npyError(source, `format version ${major}.${minor} is not supported; versions 1.0, 2.0 and 3.0 are`);
  }
  const lengthSize = major === 1 ? 2 : 4;
  const prefixSize = 8 + lengthSize;
  if (bytes.length < prefixSize) throw npyError(source, 'truncated: the file ends inside the header length');
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLength = major === 1 ? view.getUint16(8, true) : view.getUint32(8, true);
  const dataOffset = prefixSize + headerLength;
  if (bytes.length < dataOffset) {
    throw npyError(source, `truncated: the header is ${headerLength} bytes long but the file ends after ${bytes.length - prefixSize} of them`);
  }

  const headerBytes = bytes.subarray(prefixSize, dataOffset);
  let text: string;
  if (major === 3) {
    try {
      text = new TextDecoder('utf-8', { fatal: true }).decode(headerBytes);
    } catch {
      throw npyError(source, 'the header of a version 3.0 file is not valid UTF-8');
    }
  } else {
    text = Buffer.from(headerBytes).toString('latin1');
  }

  const dict = new LiteralParser(text, source).parseDocument();
  if (!(dict instanceof Map)) throw npyError(source, `the header is not a Python dict literal: ${JSON.stringify(text)}`);
  const keys = [...dict.keys()].sort();
  if (keys.join(',') !== 'descr,fortran_order,shape') {
    throw npyError(source, `the header must have exactly the keys 'descr', 'fortran_order' and 'shape', got ${keys.map((key) => `'${key}'`).join(', ') || 'none'}`);
  }
  const fortranOrder = dict.get('fortran_order');
  if (typeof fortranOrder !== 'boolean') {
    throw npyError(source, `'fortran_order' must be True or False, got ${JSON.stringify(fortranOrder)}`);
  }
  return {
    code: dtypeFromDescr(dict.get('descr')!, source),
    fortranOrder,
    shape: shapeFromValue(dict.get('shape')!, source),
    dataOffset,
  };
}

/** Returns the element count of `shape`, or throws ERR_NPY when it is not a safe integer. */
function elementCount(shape: number[], source: string): number {
  let count = 1;
  for (const size of shape) count *= size;
  if (!Number.isSafeInteger(count)) {
    throw npyError(source, `shape (${shape.join(', ')}) has more than ${Number.MAX_SAFE_INTEGER} elements`);
  }
  return count;
}

function swapBytes(bytes: Uint8Array, itemSize: number): void {
  for (let start = 0; start < bytes.length; start += itemSize) bytes.subarray(start, start + itemSize).reverse();
}

/** Reorders Fortran-order (column-major) elements into C (row-major) order. */
function fortranToC<T extends TensorData>(fortran: T, shape: number[]): T {
  const result = new (fortran.constructor as new (length: number) => T)(fortran.length);
  if (fortran.length === 0) return result;
  const rank = shape.length;
  // In Fortran order the first index varies fastest, so its stride is 1.
  const fortranStrides: number[] = [];
  let stride = 1;
  for (let axis = 0; axis < rank; axis += 1) {
    fortranStrides.push(stride);
    stride *= shape[axis]!;
  }
  const index = new Array<number>(rank).fill(0);
  for (let position = 0; position < result.length; position += 1) {
    let source = 0;
    for (let axis = 0; axis < rank; axis += 1) source += index[axis]! * fortranStrides[axis]!;
    result[position] = fortran[source]!;
    // Advance the row-major multi-index, last axis fastest.
    for (let axis = rank - 1; axis >= 0; axis -= 1) {
      index[axis] = index[axis]! + 1;
      if (index[axis]! < shape[axis]!) break;
      index[axis] = 0;
    }
  }
  return result;
}

/**
 * Decodes the bytes of a `.npy` file into a row-major tensor. `source` names the file in error
 * messages. Throws ERR_NPY for any malformed or unsupported file.
 */
export function decodeNpy(bytes: Uint8Array, source = '<buffer>'): Tensor {
  const header = parseHeader(bytes, source);
  const count = elementCount(header.shape, source);
  const dataSize = bytes.length - header.dataOffset;
  const expectedSize = count * header.code.itemSize;
  if (dataSize !== expectedSize) {
    const problem = dataSize < expectedSize ? 'truncated' : 'too long';
    throw npyError(
      source,
      `${problem}: shape (${header.shape.join(', ')}) of '${header.code.descr}' needs ${expectedSize} bytes of data but the file has ${dataSize}`,
    );
  }

  // Copy, so the tensor owns aligned memory whatever the header length was. The Uint8Array
  // constructor copies, while Buffer.slice would return a view of the same memory.
  const raw = new Uint8Array(bytes.subarray(header.dataOffset));
  if (!HOST_LITTLE_ENDIAN && header.code.itemSize > 1) swapBytes(raw, header.code.itemSize);
  const Constructor = typedArrayConstructor(header.code.dtype) as unknown as new (buffer: ArrayBuffer, offset: number, length: number) => TensorData;
  let data = new Constructor(raw.buffer, 0, count);
  if (header.code.dtype === 'bool') {
    // numpy treats any non-zero byte as True; tensors hold exactly 0 or 1.
    for (let index = 0; index < data.length; index += 1) if (data[index] !== 0) data[index] = 1;
  }
  if (header.fortranOrder && header.shape.length > 1) data = fortranToC(data, header.shape);
  return { dtype: header.code.dtype, shape: header.shape, data };
}

/** Reads a `.npy` file into a row-major tensor. */
export async function readNpy(path: string): Promise<Tensor> {
  let bytes: Uint8Array;
  try {
    bytes = await readFile(path);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new EmbedImageError('ERR_FILE_NOT_FOUND', `${path}: file not found`, { cause: error });
    throw new EmbedImageError('ERR_FILE_READ', `${path}: cannot read the file: ${(error as Error).message}`, { cause: error });
  }
  return decodeNpy(bytes, path);
}

// ---------------------------------------------------------------------------------------------
// Writing

function pythonTupleRepr(shape: number[]): string {
  if (shape.length === 1) return `(${shape[0]},)`;
  return `(${shape.join(', ')})`;
}

/**
 * Encodes a tensor as a `.npy` file in C order. The header has the same bytes that numpy 1.24 writes for the same array, including numpy's spare room for a longer first dimension.
 */
export function encodeNpy(tensor: Tensor): Uint8Array {
  checkTensor(tensor, 'tensor to encode as .npy');
  const code = DTYPE_CODES.find((candidate) => candidate.dtype === tensor.dtype)!;

  let header = `{'descr': '${code.descr}', 'fortran_order': False, 'shape': ${pythonTupleRepr(tensor.shape)}, }`;
  if (tensor.shape.length > 0) header += ' '.repeat(Math.max(0, GROWTH_AXIS_MAX_DIGITS - String(tensor.shape[0]).length));

  // Version 1.0 stores the header length in 16 bits; longer headers need version 2.0.
  let major = 1;
  let prefixSize = 10;
  let padding = ARRAY_ALIGN - ((prefixSize + header.length + 1) % ARRAY_ALIGN);
  if (header.length + 1 + padding > 0xffff) {
    major = 2;
    prefixSize = 12;
    padding = ARRAY_ALIGN - ((prefixSize + header.length + 1) % ARRAY_ALIGN);
  }
  const fullHeader = `${header}${' '.repeat(padding)}\n`;

  const data = new Uint8Array(tensor.data.buffer, tensor.data.byteOffset, tensor.data.byteLength);
  const bytes = new Uint8Array(prefixSize + fullHeader.length + data.byteLength);
  bytes.set(MAGIC, 0);
  bytes[6] = major;
  bytes[7] = 0;
  const view = new DataView(bytes.buffer);
  if (major === 1) view.setUint16(8, fullHeader.length, true);
  else view.setUint32(8, fullHeader.length, true);
  bytes.set(Buffer.from(fullHeader, 'latin1'), prefixSize);
  const dataOffset = prefixSize + fullHeader.length;
  bytes.set(data, dataOffset);
  if (!HOST_LITTLE_ENDIAN && code.itemSize > 1) swapBytes(bytes.subarray(dataOffset), code.itemSize);
  return bytes;
}

/**
 * Writes a tensor to a `.npy` file atomically: the bytes go to a temporary file in the same
 * folder, which is then renamed over `path`, so readers never see a partial file.
 */
export async function writeNpy(path: string, tensor: Tensor): Promise<void> {
  await writeFileAtomic(path, encodeNpy(tensor));
}
