/**
 * Reads and writes safetensors files (the format of Hugging Face `model.safetensors`):
 * an 8-byte little-endian uint64 header length N, N bytes of JSON mapping each tensor name
 * to `{dtype, shape, data_offsets: [begin, end]}` (plus an optional `__metadata__` object of
 * strings), then the tensor data; offsets are relative to the first byte after the header.
 * Format reference: huggingface/safetensors README, "Format" section.
 *
 * Floating-point tensors (F32, F16, BF16, F64) are returned as Float32Array. Tensors of other
 * dtypes (such as an int64 `position_ids` buffer) can only be skipped, since the CLIP weights
 * this serves are all floating point.
 */
import { readFileSync } from 'node:fs';

export interface SafetensorsTensor {
  /** The dtype as stored in the file (F32, F16, BF16 or F64). */
  dtype: string;
  shape: number[];
  data: Float32Array;
}

const floatSizes: Record<string, number> = { F64: 8, F32: 4, F16: 2, BF16: 2 };
/** Element sizes of every safetensors dtype, so entries that are not read can still be checked. */
const elementSizes: Record<string, number> = { ...floatSizes, I64: 8, U64: 8, I32: 4, U32: 4, I16: 2, U16: 2, I8: 1, U8: 1, BOOL: 1, F8_E4M3: 1, F8_E5M2: 1 };

/** Converts an IEEE 754 half-precision bit pattern to a number. */
export function float16ToNumber(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exponent = (bits >> 10) & 0x1f;
  const fraction = bits & 0x3ff;
  if (exponent === 0) return sign * fraction * 2 ** -24;
  if (exponent === 0x1f) return fraction === 0 ? sign * Infinity : NaN;
  return sign * (1 + fraction / 1024) * 2 ** (exponent - 15);
}

function convert(dtype: string, bytes: Uint8Array, count: number): Float32Array {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out = new Float32Array(count);
  switch (dtype) {
    case 'F32':
      for (let i = 0; i < count; i++) out[i] = view.getFloat32(i * 4, true);
      break;
    case 'F64':
      for (let i = 0; i < count; i++) out[i] = view.getFloat64(i * 8, true);
      break;
    case 'F16':
      for (let i = 0; i < count; i++) out[i] = float16ToNumber(view.getUint16(i * 2, true));
      break;
    case 'BF16': {
      // bfloat16 is the upper half of a float32.
      const widened = new Uint32Array(out.buffer);
      for (let i = 0; i < count; i++) widened[i] = view.getUint16(i * 2, true) << 16;
      break;
    }
    default:
      throw new Error(`unsupported safetensors dtype ${dtype}`);
  }
  return out;
}

/**
 * Parses safetensors bytes and throws with the tensor name on any inconsistent entry. Only
 * tensors that `select` accepts (default: all) are converted, and they must be floating
 * point. The others are checked for consistent offsets and left out of the result.
 */
export function parseSafetensors(bytes: Uint8Array, label = 'safetensors data', select: (name: string) => boolean = () => true): Map<string, SafetensorsTensor> {
  if (bytes.length < 8) throw new Error(`${label}: file is ${bytes.length} bytes, shorter than the 8-byte header length`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLength = view.getBigUint64(0, true);
  if (headerLength > BigInt(bytes.length - 8)) {
    throw new Error(`${label}: not a safetensors file: its first 8 bytes give a header length of ${headerLength}, more than the file's ${bytes.length} bytes`);
  }
  const dataStart = 8 + Number(headerLength);
  let header: Record<string, unknown>;
  try {
    header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, dataStart))) as Record<string, unknown>;
  } catch (error) {
    throw new Error(`${label}: header is not valid JSON (${(error as Error).message})`);
  }
  const dataLength = bytes.length - dataStart;

  const tensors = new Map<string, SafetensorsTensor>();
  for (const [name, entry] of Object.entries(header)) {
    if (name === '__metadata__') continue;
    const { dtype, shape, data_offsets: offsets } = entry as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    const selected = select(name);
    if (typeof dtype !== 'string' || !(dtype in (selected ? floatSizes : elementSizes))) {
      const expected = selected ? 'F32, F16, BF16 or F64' : 'a safetensors dtype';
      throw new Error(`${label}: tensor "${name}" has dtype ${JSON.stringify(dtype)}; expected ${expected}`);
    }
    if (!Array.isArray(shape) || !shape.every((size) => Number.isSafeInteger(size) && size >= 0)) {
      throw new Error(`${label}: tensor "${name}" has an invalid shape ${JSON.stringify(shape)}`);
    }
    if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every((offset) => Number.isSafeInteger(offset) && offset >= 0)) {
      throw new Error(`${label}: tensor "${name}" has invalid data_offsets ${JSON.stringify(offsets)}`);
    }
    const [begin, end] = offsets as [number, number];
    const count = (shape as number[]).reduce((product, size) => product * size, 1);
    if (end < begin || end > dataLength) {
      throw new Error(`${label}: tensor "${name}" data_offsets [${begin}, ${end}] fall outside the ${dataLength} data bytes`);
    }
    if (end - begin !== count * elementSizes[dtype]!) {
      throw new Error(`${label}: tensor "${name}" has ${end - begin} bytes, but ${dtype} [${(shape as number[]).join(', ')}] needs ${count * elementSizes[dtype]!}`);
    }
    if (!selected) continue;
    const data = convert(dtype, bytes.subarray(dataStart + begin, dataStart + end), count);
    tensors.set(name, { dtype, shape: [...(shape as number[])], data });
  }
  return tensors;
}

/** Reads a safetensors file. */
export function readSafetensors(path: string, select?: (name: string) => boolean): Map<string, SafetensorsTensor> {
  return parseSafetensors(new Uint8Array(readFileSync(path)), path, select);
}

/** Serializes float32 tensors (in map order) as safetensors bytes, data 8-byte aligned as the reference writer pads the header. */
export function serializeSafetensors(tensors: Map<string, { shape: number[]; data: Float32Array }>): Uint8Array {
  const header: Record<string, unknown> = {};
  let offset = 0;
  for (const [name, tensor] of tensors) {
    header[name] = { dtype: 'F32', shape: tensor.shape, data_offsets: [offset, offset + tensor.data.byteLength] };
    offset += tensor.data.byteLength;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - ((8 + json.length) % 8)) % 8);
  const headerBytes = new TextEncoder().encode(json);
  const bytes = new Uint8Array(8 + headerBytes.length + offset);
  new DataView(bytes.buffer).setBigUint64(0, BigInt(headerBytes.length), true);
  bytes.set(headerBytes, 8);
  let position = 8 + headerBytes.length;
  for (const tensor of tensors.values()) {
    bytes.set(new Uint8Array(tensor.data.buffer, tensor.data.byteOffset, tensor.data.byteLength), position);
    position += tensor.data.byteLength;
  }
  return bytes;
}
