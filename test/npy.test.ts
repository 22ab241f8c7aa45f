import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { EmbedImageError } from '../src/errors.js';
import { decodeNpy, encodeNpy, readNpy, writeNpy } from '../src/npy.js';
import type { DType, Tensor, TensorData } from '../src/program.js';

const fixtures = join(dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'npy');

/** Builds .npy bytes from a raw header text, padded the way numpy pads it. */
function npyBytes(header: string, data: Uint8Array = new Uint8Array(0), version = 1): Uint8Array {
  const prefixSize = version === 1 ? 10 : 12;
  const padding = 64 - ((prefixSize + header.length + 1) % 64);
  const text = Buffer.from(`${header}${' '.repeat(padding)}\n`, version === 3 ? 'utf8' : 'latin1');
  const bytes = new Uint8Array(prefixSize + text.length + data.length);
  bytes.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, version, 0]);
  const view = new DataView(bytes.buffer);
  if (version === 1) view.setUint16(8, text.length, true);
  else view.setUint32(8, text.length, true);
  bytes.set(text, prefixSize);
  bytes.set(data, prefixSize + text.length);
  return bytes;
}

function decodeError(bytes: Uint8Array): EmbedImageError {
  try {
    decodeNpy(bytes, 'case.npy');
  } catch (error) {
    if (error instanceof EmbedImageError) return error;
    throw error;
  }
  throw new Error('decodeNpy accepted malformed input');
}

function fixture(name: string): Promise<Tensor> {
  return readNpy(join(fixtures, name));
}

describe('npy read numpy fixtures', () => {
  it('float32 2x3', async () => {
    const tensor = await fixture('f4-2x3.npy');
    expect(tensor.dtype).toBe('float32');
    expect(tensor.shape).toEqual([2, 3]);
    expect(tensor.data).toBeInstanceOf(Float32Array);
    expect([...tensor.data]).toEqual([0.5, -1.25, 3, Math.fround(0.001), 65504, -0]);
    expect(Object.is(tensor.data[5], -0)).toBe(true);
  });

  it('float64 3', async () => {
    const tensor = await fixture('f8-3.npy');
    expect(tensor.dtype).toBe('float64');
    expect(tensor.shape).toEqual([3]);
    expect([...tensor.data]).toEqual([1 / 3, -2.5e-300, 1e300]);
  });

  it('int64 0-d', async () => {
    const tensor = await fixture('i8-0d.npy');
    expect(tensor.dtype).toBe('int64');
    expect(tensor.shape).toEqual([]);
    expect([...tensor.data]).toEqual([-7n]);
  });

  it('int64 beyond 2^53', async () => {
    const tensor = await fixture('i8-2.npy');
    expect(tensor.data).toBeInstanceOf(BigInt64Array);
    expect([...tensor.data]).toEqual([-9007199254740993n, 9223372036854775807n]);
  });

  it('int32 2x2', async () => {
    const tensor = await fixture('i4-2x2.npy');
    expect(tensor.dtype).toBe('int32');
    expect(tensor.shape).toEqual([2, 2]);
    expect([...tensor.data]).toEqual([1, -2, 2147483647, -2147483648]);
  });

  it('int16 4', async () => {
    const tensor = await fixture('i2-4.npy');
    expect(tensor.dtype).toBe('int16');
    expect([...tensor.data]).toEqual([0, -1, 32767, -32768]);
  });

  it('int8 4', async () => {
    const tensor = await fixture('i1-4.npy');
    expect(tensor.dtype).toBe('int8');
    expect([...tensor.data]).toEqual([0, -1, 127, -128]);
  });

  it('uint8 2x2x3', async () => {
    const tensor = await fixture('u1-2x2x3.npy');
    expect(tensor.dtype).toBe('uint8');
    expect(tensor.shape).toEqual([2, 2, 3]);
    expect([...tensor.data]).toEqual([0, 21, 42, 63, 84, 105, 126, 147, 168, 189, 210, 231]);
  });

  it('bool 5', async () => {
    const tensor = await fixture('b1-5.npy');
    expect(tensor.dtype).toBe('bool');
    expect(tensor.data).toBeInstanceOf(Uint8Array);
    expect([...tensor.data]).toEqual([1, 0, 0, 1, 1]);
  });

  it('empty 0x3', async () => {
    const tensor = await fixture('f4-0x3.npy');
    expect(tensor.shape).toEqual([0, 3]);
    expect(tensor.data.length).toBe(0);
  });

  it('fortran order to C order', async () => {
    const tensor = await fixture('f4-fortran-2x3.npy');
    expect(tensor.shape).toEqual([2, 3]);
    expect([...tensor.data]).toEqual([0, 1, 2, 3, 4, 5]);
  });

  it('format version 2.0', async () => {
    const tensor = await fixture('f4-v2-3.npy');
    expect([...tensor.data]).toEqual([1, 2, 3]);
  });

  it('format version 3.0', async () => {
    const tensor = await fixture('f4-v3-3.npy');
    expect([...tensor.data]).toEqual([1, 2, 3]);
  });

  it('big-endian rejected with its descr', async () => {
    const path = join(fixtures, 'f4-be-2.npy');
    const error = await readNpy(path).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(EmbedImageError);
    expect((error as EmbedImageError).code).toBe('ERR_NPY');
    expect((error as EmbedImageError).message).toContain(path);
    expect((error as EmbedImageError).message).toContain("'>f4' is big-endian");
  });
});

describe('npy write matches numpy bytes', () => {
  const cases = ['f4-2x3.npy', 'f8-3.npy', 'i8-0d.npy', 'i8-2.npy', 'i4-2x2.npy', 'i2-4.npy', 'i1-4.npy', 'u1-2x2x3.npy', 'b1-5.npy', 'f4-0x3.npy'];
  for (const name of cases) {
    it(name, async () => {
      const expected = new Uint8Array(await readFile(join(fixtures, name)));
      const tensor = decodeNpy(expected, name);
      expect(Buffer.from(encodeNpy(tensor)).equals(Buffer.from(expected))).toBe(true);
    });
  }
});

describe('npy round trip', () => {
  const samples: Record<DType, (count: number) => TensorData> = {
    float32: (count) => Float32Array.from({ length: count }, (_, index) => index * 0.25 - 1),
    float64: (count) => Float64Array.from({ length: count }, (_, index) => index / 3 - 7),
    int64: (count) => BigInt64Array.from({ length: count }, (_, index) => BigInt(index) * 0x1_0000_0001n - 5n),
    int32: (count) => Int32Array.from({ length: count }, (_, index) => index * 65537 - 100),
    int16: (count) => Int16Array.from({ length: count }, (_, index) => index * 1000 - 3000),
    int8: (count) => Int8Array.from({ length: count }, (_, index) => index * 9 - 64),
    uint8: (count) => Uint8Array.from({ length: count }, (_, index) => (index * 37) % 256),
    bool: (count) => Uint8Array.from({ length: count }, (_, index) => index % 3 === 0 ? 1 : 0),
  };
  const shapes = [[], [0], [3], [2, 3], [2, 0, 4], [1, 1, 1, 1, 5], [12345]];

  for (const dtype of Object.keys(samples) as DType[]) {
    for (const shape of shapes) {
      it(`${dtype} [${shape.join(', ')}]`, () => {
        const count = shape.reduce((product, size) => product * size, 1);
        const tensor: Tensor = { dtype, shape, data: samples[dtype](count) };
        const decoded = decodeNpy(encodeNpy(tensor));
        expect(decoded.dtype).toBe(dtype);
        expect(decoded.shape).toEqual(shape);
        expect(decoded.data.constructor).toBe(tensor.data.constructor);
        expect([...decoded.data]).toEqual([...tensor.data]);
      });
    }
  }

  it('data offset is 64-byte aligned', () => {
    const bytes = encodeNpy({ dtype: 'float32', shape: [2, 3], data: new Float32Array(6) });
    const headerLength = new DataView(bytes.buffer).getUint16(8, true);
    expect((10 + headerLength) % 64).toBe(0);
  });

  it('subarray view encodes only its elements', () => {
    const backing = new Float32Array([9, 1, 2, 3, 9]);
    const decoded = decodeNpy(encodeNpy({ dtype: 'float32', shape: [3], data: backing.subarray(1, 4) }));
    expect([...decoded.data]).toEqual([1, 2, 3]);
  });

  it('long header uses version 2.0', () => {
    const shape = new Array<number>(25_000).fill(1);
    const bytes = encodeNpy({ dtype: 'uint8', shape, data: new Uint8Array([7]) });
    expect(bytes[6]).toBe(2);
    const decoded = decodeNpy(bytes);
    expect(decoded.shape.length).toBe(25_000);
    expect([...decoded.data]).toEqual([7]);
  });

  it('non-zero bool bytes read as 1', () => {
    const decoded = decodeNpy(npyBytes("{'descr': '|b1', 'fortran_order': False, 'shape': (3,), }", new Uint8Array([0, 2, 255])));
    expect([...decoded.data]).toEqual([0, 1, 1]);
  });

  it('fortran order 3-d', () => {
    // Element (i, j, k) of shape (2, 3, 2) holds 100i + 10j + k; Fortran order puts i fastest.
    const fortran: number[] = [];
    for (let k = 0; k < 2; k += 1) for (let j = 0; j < 3; j += 1) for (let i = 0; i < 2; i += 1) fortran.push(100 * i + 10 * j + k);
    const bytes = npyBytes("{'descr': '<i4', 'fortran_order': True, 'shape': (2, 3, 2), }", new Uint8Array(Int32Array.from(fortran).buffer));
    const decoded = decodeNpy(bytes);
    expect([...decoded.data]).toEqual([0, 1, 10, 11, 20, 21, 100, 101, 110, 111, 120, 121]);
  });

  it('accepted descr spellings', () => {
    const spellings: [string, DType][] = [['=f4', 'float32'], ['<u1', 'uint8'], ['|u1', 'uint8'], ['>u1', 'uint8'], ['<b1', 'bool'], ['<i1', 'int8']];
    for (const [descr, dtype] of spellings) {
      const itemSize = dtype === 'float32' ? 4 : 1;
      const decoded = decodeNpy(npyBytes(`{'descr': '${descr}', 'fortran_order': False, 'shape': (2,), }`, new Uint8Array(2 * itemSize)));
      expect(decoded.dtype, descr).toBe(dtype);
    }
  });

  it('python 2 header spellings', () => {
    const decoded = decodeNpy(npyBytes("{u'descr': u'<i2', \"fortran_order\": False, 'shape': (2L, 1L)}", new Uint8Array(4)));
    expect(decoded.shape).toEqual([2, 1]);
  });

  it('invalid tensor rejected on write', () => {
    expect(() => encodeNpy({ dtype: 'float32', shape: [4], data: new Float32Array(3) })).toThrow(/4 elements but data has 3/);
  });
});

describe('npy malformed input', () => {
  const good = "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }";
  const twoFloats = new Uint8Array(8);
  const cases: [string, Uint8Array, RegExp][] = [
    ['empty file', new Uint8Array(0), /not a \.npy file/],
    ['bad magic', Buffer.from('PK\x03\x04 not numpy at all'), /not a \.npy file/],
    ['truncated version', npyBytes(good).subarray(0, 7), /ends inside the format version/],
    ['truncated header length', npyBytes(good).subarray(0, 9), /ends inside the header length/],
    ['truncated header', npyBytes(good).subarray(0, 40), /truncated: the header is 118 bytes long/],
    ['version 4.0', npyBytes(good, twoFloats, 4), /version 4\.0 is not supported/],
    ['version 1.1', (() => { const bytes = npyBytes(good, twoFloats); bytes[7] = 1; return bytes; })(), /version 1\.1 is not supported/],
    ['header is a list', npyBytes("['<f4', False, (2,)]", twoFloats), /not a Python dict literal/],
    ['header is code', npyBytes("__import__('os').system('true')", twoFloats), /unexpected name "__import__"/],
    ['call inside dict', npyBytes("{'descr': str('<f4'), 'fortran_order': False, 'shape': (2,), }", twoFloats), /unexpected name "str"/],
    ['unterminated dict', npyBytes("{'descr': '<f4', 'fortran_order': False", twoFloats), /unexpected end of the header/],
    ['unterminated string', npyBytes("{'descr': '<f4, 'fortran_order': False, 'shape': (2,), }", twoFloats), /expected "," or "}" at character 17/],
    ['trailing text', npyBytes(`${good} extra`, twoFloats), /after the dict/],
    ['missing comma', npyBytes("{'descr': '<f4' 'fortran_order': False, 'shape': (2,)}", twoFloats), /expected "," or "}"/],
    ['non-string key', npyBytes("{1: '<f4', 'fortran_order': False, 'shape': (2,)}", twoFloats), /dict keys must be strings/],
    ['duplicate key', npyBytes("{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (2,)}", twoFloats), /duplicate key 'descr'/],
    ['missing key', npyBytes("{'descr': '<f4', 'shape': (2,), }", twoFloats), /exactly the keys .* got 'descr', 'shape'/],
    ['extra key', npyBytes("{'descr': '<f4', 'fortran_order': False, 'shape': (2,), 'x': 1}", twoFloats), /exactly the keys/],
    ['fortran_order not bool', npyBytes("{'descr': '<f4', 'fortran_order': 0, 'shape': (2,), }", twoFloats), /'fortran_order' must be True or False/],
    ['shape is a list', npyBytes("{'descr': '<f4', 'fortran_order': False, 'shape': [2], }", twoFloats), /'shape' must be a tuple/],
    ['shape is an int', npyBytes("{'descr': '<f4', 'fortran_order': False, 'shape': (2), }", twoFloats), /'shape' must be a tuple/],
    ['negative dimension', npyBytes("{'descr': '<f4', 'fortran_order': False, 'shape': (-2,), }", twoFloats), /non-negative integers/],
    ['float dimension', npyBytes("{'descr': '<f4', 'fortran_order': False, 'shape': (2.0,), }", twoFloats), /only decimal integers/],
    ['dimension too large', npyBytes("{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999,), }", twoFloats), /larger than 9007199254740991/],
    ['huge shape', npyBytes("{'descr': '<f4', 'fortran_order': False, 'shape': (4294967296, 4294967296), }", twoFloats), /more than 9007199254740991 elements/],
    ['large shape small data', npyBytes("{'descr': '<f4', 'fortran_order': False, 'shape': (100000, 100000), }", twoFloats), /needs 40000000000 bytes of data but the file has 8/],
    ['data too short', npyBytes(good, new Uint8Array(7)), /truncated: shape \(2\) of '<f4' needs 8 bytes of data but the file has 7/],
    ['data too long', npyBytes(good, new Uint8Array(9)), /too long: shape \(2\) of '<f4' needs 8 bytes/],
    ['big-endian int', npyBytes("{'descr': '>i4', 'fortran_order': False, 'shape': (2,), }", twoFloats), /big-endian/],
    ['no byte order', npyBytes("{'descr': 'f4', 'fortran_order': False, 'shape': (2,), }", twoFloats), /no byte order; expected '<f4'/],
    ['float16', npyBytes("{'descr': '<f2', 'fortran_order': False, 'shape': (2,), }", new Uint8Array(4)), /'<f2' is not supported; supported dtypes are <f4 <f8/],
    ['uint16', npyBytes("{'descr': '<u2', 'fortran_order': False, 'shape': (2,), }", new Uint8Array(4)), /'<u2' is not supported/],
    ['complex', npyBytes("{'descr': '<c8', 'fortran_order': False, 'shape': (1,), }", twoFloats), /'<c8' is not supported/],
    ['object', npyBytes("{'descr': '|O', 'fortran_order': False, 'shape': (1,), }", twoFloats), /'\|O' is not supported/],
    ['structured', npyBytes("{'descr': [('x', '<f4')], 'fortran_order': False, 'shape': (2,), }", twoFloats), /structured or subarray dtypes are not supported/],
    ['deep nesting', npyBytes(`{'descr': ${'('.repeat(100)}${')'.repeat(100)}}`, twoFloats), /nesting deeper than 16 levels/],
    ['bad escape', npyBytes("{'descr': '<f\\x34', 'fortran_order': False, 'shape': (2,), }", twoFloats), /unsupported escape/],
    ['v3 invalid UTF-8', (() => { const bytes = npyBytes(good, twoFloats, 3); bytes[14] = 0xff; return bytes; })(), /not valid UTF-8/],
  ];

  for (const [name, bytes, message] of cases) {
    it(name, () => {
      const error = decodeError(bytes);
      expect(error.code).toBe('ERR_NPY');
      expect(error.message).toMatch(/^case\.npy: /);
      expect(error.message).toMatch(message);
    });
  }
});

describe('npy files', () => {
  let folder: string;

  beforeAll(async () => {
    folder = await mkdtemp(join(tmpdir(), 'embed-image-npy-'));
  });

  afterAll(async () => {
    await rm(folder, { recursive: true, force: true });
  });

  it('write then read', async () => {
    const path = join(folder, 'a.npy');
    await writeNpy(path, { dtype: 'int32', shape: [2], data: new Int32Array([5, -6]) });
    const tensor = await readNpy(path);
    expect([...tensor.data]).toEqual([5, -6]);
  });

  it('write replaces and leaves no temp file', async () => {
    const path = join(folder, 'b.npy');
    await writeFile(path, 'old contents');
    await writeNpy(path, { dtype: 'uint8', shape: [1], data: new Uint8Array([1]) });
    const tensor = await readNpy(path);
    expect([...tensor.data]).toEqual([1]);
    expect((await readdir(folder)).filter((name) => name.endsWith('.tmp'))).toEqual([]);
  });

  it('write into missing folder', async () => {
    const path = join(folder, 'missing', 'c.npy');
    const error = await writeNpy(path, { dtype: 'uint8', shape: [1], data: new Uint8Array([1]) }).catch((caught: unknown) => caught);
    expect((error as EmbedImageError).code).toBe('ERR_FILE_WRITE');
    expect((error as EmbedImageError).message).toContain(path);
  });

  it('read missing file', async () => {
    const path = join(folder, 'absent.npy');
    const error = await readNpy(path).catch((caught: unknown) => caught);
    expect((error as EmbedImageError).code).toBe('ERR_FILE_NOT_FOUND');
    expect((error as EmbedImageError).message).toContain(path);
  });

  it('read a folder', async () => {
    const error = await readNpy(folder).catch((caught: unknown) => caught);
    expect((error as EmbedImageError).code).toBe('ERR_FILE_READ');
  });
});
