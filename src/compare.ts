/**
 * Comparison of two sets of embedding vectors, such as a dump from a phone and a desktop run,
 * or a golden file and a fresh run: reading the vector files, matching their records, and the
 * metrics and verdict for each pair and for the whole set.
 *
 * Every metric is computed in float64 from the float32 (or float64) values as stored.
 */
import { readFile } from 'node:fs/promises';
import { basename, extname } from 'node:path';

import { EmbedImageError } from './errors.js';
import { decodeNpy } from './npy.js';

/** One vector of a set, with what identifies it. */
export interface VectorRecord {
  /** Position in the file, from 0. */
  index: number;
  path?: string;
  sha256?: string;
  embedding: Float32Array | Float64Array;
}

export interface VectorSet {
  /** The file the set was read from, as the user named it. */
  source: string;
  /** The format the file was read as: "embed-image-json", "json-array", "jsonl", "golden", "npy" or "raw-float32". */
  format: string;
  records: VectorRecord[];
  /** Length of every vector, or 0 for an empty set. */
  dimensions: number;
}

export interface ReadVectorOptions {
  /** Vector length for raw little-endian float32 files, which carry no shape. */
  dim?: number;
}

function formatError(source: string, problem: string): EmbedImageError {
  return new EmbedImageError('ERR_VECTORS_FORMAT', `${source}: ${problem}`);
}

const ACCEPTED_FORMATS =
  'embed-image JSON or JSONL records, a JSON array of numbers or of arrays, JSON objects with an "embedding" field, a golden file, .npy float32 [N, D], or raw little-endian float32 with --dim D';

// ---------------------------------------------------------------------------------------------
// Reading

/** Reads a vector file in any accepted format, chosen from its extension and first byte. */
export async function readVectorSet(file: string, options: ReadVectorOptions = {}): Promise<VectorSet> {
  let bytes: Uint8Array;
  try {
    bytes = await readFile(file);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new EmbedImageError('ERR_FILE_NOT_FOUND', `${file}: file not found; pass a file of embeddings (${ACCEPTED_FORMATS})`, { cause: error });
    throw new EmbedImageError('ERR_FILE_READ', `${file}: cannot read the file: ${(error as Error).message}`, { cause: error });
  }
  return parseVectorSet(bytes, file, options);
}

/** Parses the bytes of a vector file; `source` names it in messages. */
export function parseVectorSet(bytes: Uint8Array, source: string, options: ReadVectorOptions = {}): VectorSet {
  const extension = extname(source).toLowerCase();
  if (bytes.length >= 6 && bytes[0] === 0x93 && Buffer.from(bytes.subarray(1, 6)).toString('latin1') === 'NUMPY') {
    return parseNpySet(bytes, source);
  }
  if (options.dim !== undefined) return parseRawSet(bytes, source, options.dim);
  if (extension === '.npy') return parseNpySet(bytes, source);

  const text = Buffer.from(bytes).toString('utf8').replace(/^\uFEFF/, '');
  const first = text.trimStart()[0];
  if (first !== '[' && first !== '{') {
    throw formatError(source, `not a recognised vector file; accepted: ${ACCEPTED_FORMATS}`);
  }
  if (extension === '.jsonl' || extension === '.ndjson') return parseJsonLines(text, source);
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    // A file of several JSON objects, one per line, is JSONL whatever its extension.
    if (first === '{' && text.trim().includes('\n')) return parseJsonLines(text, source);
    throw formatError(source, `invalid JSON: ${(error as Error).message}`);
  }
  return parseJsonValue(value, source);
}

function parseNpySet(bytes: Uint8Array, source: string): VectorSet {
  let tensor;
  try {
    tensor = decodeNpy(bytes, source);
  } catch (error) {
    throw formatError(source, `${(error as Error).message.replace(`${source}: `, '')}`);
  }
  if (tensor.dtype !== 'float32' && tensor.dtype !== 'float64') {
    throw formatError(source, `.npy dtype is ${tensor.dtype}; embeddings must be float32 (or float64), shape [N, D] or [D]`);
  }
  let rows: number;
  let dimensions: number;
  if (tensor.shape.length === 1) {
    rows = 1;
    dimensions = tensor.shape[0]!;
  } else if (tensor.shape.length === 2) {
    rows = tensor.shape[0]!;
    dimensions = tensor.shape[1]!;
  } else if (tensor.shape.length === 3 && tensor.shape[1] === 1) {
    // [N, 1, D]: a stack of model outputs of shape [1, D].
    rows = tensor.shape[0]!;
    dimensions = tensor.shape[2]!;
  } else {
    throw formatError(source, `.npy shape is [${tensor.shape.join(', ')}]; embeddings must have shape [N, D] or [D]`);
  }
  if (dimensions === 0) throw formatError(source, '.npy vectors have length 0');
  const data = tensor.data as Float32Array | Float64Array;
  const records: VectorRecord[] = [];
  for (let row = 0; row < rows; row += 1) {
    records.push({ index: row, embedding: data.slice(row * dimensions, (row + 1) * dimensions) });
  }
  return { source, format: 'npy', records, dimensions: rows === 0 ? 0 : dimensions };
}

function parseRawSet(bytes: Uint8Array, source: string, dim: number): VectorSet {
  if (!Number.isSafeInteger(dim) || dim < 1) throw new EmbedImageError('ERR_INVALID_ARGUMENT', `--dim must be a positive integer, got ${dim}`);
  const rowBytes = dim * 4;
  if (bytes.length % rowBytes !== 0) {
    throw formatError(source, `raw float32 file of ${bytes.length} bytes is not a whole number of vectors of ${dim} float32 values (${rowBytes} bytes each); check --dim`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const records: VectorRecord[] = [];
  for (let row = 0; row < bytes.length / rowBytes; row += 1) {
    const embedding = new Float32Array(dim);
    for (let column = 0; column < dim; column += 1) embedding[column] = view.getFloat32(row * rowBytes + column * 4, true);
    records.push({ index: row, embedding });
  }
  return { source, format: 'raw-float32', records, dimensions: records.length === 0 ? 0 : dim };
}

function parseJsonLines(text: string, source: string): VectorSet {
  const records: VectorRecord[] = [];
  const lines = text.split('\n');
  for (const [lineIndex, line] of lines.entries()) {
    if (line.trim() === '') continue;
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch (error) {
      throw formatError(source, `line ${lineIndex + 1}: invalid JSON: ${(error as Error).message}`);
    }
    const label = `line ${lineIndex + 1}`;
    records.push(Array.isArray(value) ? { index: records.length, embedding: vectorFromJson(value, source, label) } : recordFromJson(value, records.length, source, label));
  }
  return finishSet(source, 'jsonl', records);
}

function isRecordArray(value: unknown[]): boolean {
  return value.length > 0 && value.every((item) => typeof item === 'object' && item !== null && !Array.isArray(item));
}

function parseJsonValue(value: unknown, source: string): VectorSet {
  if (Array.isArray(value)) {
    if (value.length === 0) return finishSet(source, 'json-array', []);
    if (value.every((item) => typeof item === 'number')) {
      return finishSet(source, 'json-array', [{ index: 0, embedding: vectorFromJson(value, source, 'the array') }]);
    }
    if (value.every((item) => Array.isArray(item))) {
      return finishSet(
        source,
        'json-array',
        value.map((item, index) => ({ index, embedding: vectorFromJson(item as unknown[], source, `vector ${index}`) })),
      );
    }
    if (isRecordArray(value)) {
      return finishSet(
        source,
        'embed-image-json',
        value.map((item, index) => recordFromJson(item, index, source, `record ${index}`)),
      );
    }
    throw formatError(source, `a top-level array must hold only numbers (one vector), only arrays (one vector each) or only objects with an "embedding" field; accepted: ${ACCEPTED_FORMATS}`);
  }
  if (typeof value !== 'object' || value === null) throw formatError(source, `expected a JSON array or object; accepted: ${ACCEPTED_FORMATS}`);

  const object = value as Record<string, unknown>;
  if (object.format === 'embed-image-golden' && Array.isArray(object.images)) {
    return finishSet(
      source,
      'golden',
      object.images.map((item, index) => recordFromJson(item, index, source, `image ${index}`)),
    );
  }
  if ('embedding' in object) return finishSet(source, 'embed-image-json', [recordFromJson(object, 0, source, 'the object')]);
  for (const key of ['records', 'results', 'embeddings', 'images']) {
    const list = object[key];
    if (Array.isArray(list)) {
      if (list.length > 0 && list.every((item) => Array.isArray(item))) {
        return finishSet(source, 'json-array', list.map((item, index) => ({ index, embedding: vectorFromJson(item as unknown[], source, `${key}[${index}]`) })));
      }
      return finishSet(source, 'embed-image-json', list.map((item, index) => recordFromJson(item, index, source, `${key}[${index}]`)));
    }
  }
  throw formatError(source, `a JSON object must have an "embedding" field or a "records" array; accepted: ${ACCEPTED_FORMATS}`);
}

function vectorFromJson(value: unknown[], source: string, label: string): Float64Array {
  const vector = new Float64Array(value.length);
  for (const [index, item] of value.entries()) {
    // NaN and infinities cannot be JSON numbers; phone code that stringifies them writes null or a string.
    if (typeof item !== 'number') {
      throw formatError(source, `${label}: element ${index} is ${JSON.stringify(item)}, not a number (NaN or an infinity in the source vector?)`);
    }
    vector[index] = item;
  }
  if (vector.length === 0) throw formatError(source, `${label}: the vector is empty`);
  return vector;
}

function recordFromJson(value: unknown, index: number, source: string, label: string): VectorRecord {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw formatError(source, `${label}: expected an object with an "embedding" field, got ${JSON.stringify(value)?.slice(0, 40)}`);
  }
  const object = value as Record<string, unknown>;
  const embedding = object.embedding;
  if (!Array.isArray(embedding)) {
    throw formatError(source, `${label}: the "embedding" field is ${embedding === undefined ? 'missing' : 'not an array of numbers'}`);
  }
  const record: VectorRecord = { index, embedding: vectorFromJson(embedding, source, `${label}${typeof object.path === 'string' ? ` (${object.path})` : ''}`) };
  const path = object.path ?? object.uri ?? object.file;
  if (typeof path === 'string') record.path = path;
  if (typeof object.sha256 === 'string') record.sha256 = object.sha256.toLowerCase();
  return record;
}

function finishSet(source: string, format: string, records: VectorRecord[]): VectorSet {
  const dimensions = records[0]?.embedding.length ?? 0;
  for (const record of records) {
    if (record.embedding.length !== dimensions) {
      throw formatError(source, `${describeRecord(record)} has ${record.embedding.length} values but ${describeRecord(records[0]!)} has ${dimensions}; every vector of a set must have the same length`);
    }
  }
  return { source, format, records, dimensions };
}

/** Names a record for messages: its path, else its sha256 prefix, else its position. */
export function describeRecord(record: VectorRecord): string {
  if (record.path !== undefined) return record.path;
  if (record.sha256 !== undefined) return `sha256 ${record.sha256.slice(0, 12)}`;
  return `#${record.index}`;
}

// ---------------------------------------------------------------------------------------------
// Matching

export type MatchMode = 'auto' | 'path' | 'name' | 'sha256' | 'position';
export const MATCH_MODES: MatchMode[] = ['auto', 'path', 'name', 'sha256', 'position'];

export interface RecordPair {
  /** The key the records were matched on: a path, a file name, a sha256 or "#index". */
  key: string;
  a: VectorRecord;
  b: VectorRecord;
}

/** Normalizes a path for matching: drops a file:// scheme and a leading "./", uses "/" separators. */
function normalizePath(path: string): string {
  let result = path.replace(/^file:\/\//, '').replace(/\\/g, '/');
  while (result.startsWith('./')) result = result.slice(2);
  return result;
}

function keyOf(record: VectorRecord, mode: Exclude<MatchMode, 'auto'>): string | undefined {
  if (mode === 'position') return `#${record.index}`;
  if (mode === 'sha256') return record.sha256;
  if (record.path === undefined) return undefined;
  return mode === 'path' ? normalizePath(record.path) : basename(normalizePath(record.path));
}

/** Chooses the match mode for "auto": path, then sha256, then position, the first that both sets fully support. */
function resolveMode(a: VectorSet, b: VectorSet): Exclude<MatchMode, 'auto'> {
  const all = (set: VectorSet, field: 'path' | 'sha256'): boolean => set.records.length > 0 && set.records.every((record) => record[field] !== undefined);
  if (all(a, 'path') && all(b, 'path')) {
    const aPaths = new Set(a.records.map((record) => normalizePath(record.path!)));
    if (b.records.some((record) => aPaths.has(normalizePath(record.path!)))) return 'path';
    // Paths from a phone and a desktop rarely share folders; file names often match.
    const aNames = new Set(a.records.map((record) => basename(normalizePath(record.path!))));
    if (b.records.some((record) => aNames.has(basename(normalizePath(record.path!))))) return 'name';
  }
  if (all(a, 'sha256') && all(b, 'sha256')) return 'sha256';
  if (all(a, 'path') && all(b, 'path')) return 'path';
  return 'position';
}

function indexRecords(set: VectorSet, mode: Exclude<MatchMode, 'auto'>): Map<string, VectorRecord> {
  const map = new Map<string, VectorRecord>();
  for (const record of set.records) {
    const key = keyOf(record, mode);
    if (key === undefined) {
      throw new EmbedImageError('ERR_UNMATCHED_RECORDS', `${set.source}: record ${describeRecord(record)} has no ${mode === 'sha256' ? 'sha256' : 'path'} to match by ${mode}; choose another --match (path, name, sha256 or position)`);
    }
    const previous = map.get(key);
    if (previous) {
      throw new EmbedImageError('ERR_UNMATCHED_RECORDS', `${set.source}: records #${previous.index} and #${record.index} have the same ${mode} key "${key}", so they cannot be matched; choose another --match (path, name, sha256 or position)`);
    }
    map.set(key, record);
  }
  return map;
}

function listKeys(keys: string[]): string {
  const shown = keys.slice(0, 5).map((key) => `"${key}"`).join(', ');
  return keys.length > 5 ? `${shown} and ${keys.length - 5} more` : shown;
}

/**
 * Pairs the records of two sets by path, file name, sha256 or position. Every record must have
 * exactly one partner; otherwise ERR_UNMATCHED_RECORDS names the records left over on each side.
 */
export function matchRecords(a: VectorSet, b: VectorSet, mode: MatchMode = 'auto'): { mode: Exclude<MatchMode, 'auto'>; pairs: RecordPair[] } {
  if (a.dimensions !== 0 && b.dimensions !== 0 && a.dimensions !== b.dimensions) {
    throw new EmbedImageError('ERR_VECTORS_FORMAT', `${a.source} has vectors of ${a.dimensions} values but ${b.source} has ${b.dimensions}; compare embeddings of the same model`);
  }
  const resolved = mode === 'auto' ? resolveMode(a, b) : mode;
  const aMap = indexRecords(a, resolved);
  const bMap = indexRecords(b, resolved);
  const onlyA = [...aMap.keys()].filter((key) => !bMap.has(key));
  const onlyB = [...bMap.keys()].filter((key) => !aMap.has(key));
  if (onlyA.length > 0 || onlyB.length > 0) {
    const parts: string[] = [];
    if (onlyA.length > 0) parts.push(`${onlyA.length} record${onlyA.length === 1 ? '' : 's'} of ${a.source} ha${onlyA.length === 1 ? 's' : 've'} no partner in ${b.source} (${listKeys(onlyA)})`);
    if (onlyB.length > 0) parts.push(`${onlyB.length} record${onlyB.length === 1 ? '' : 's'} of ${b.source} ha${onlyB.length === 1 ? 's' : 've'} no partner in ${a.source} (${listKeys(onlyB)})`);
    const hint =
      resolved === 'position'
        ? 'both files must hold the same number of vectors in the same order'
        : `dump the same images on both sides, or match with another --match (path, name, sha256 or position)`;
    throw new EmbedImageError('ERR_UNMATCHED_RECORDS', `matching by ${resolved}: ${parts.join('; ')}; ${hint}`);
  }
  const pairs = [...aMap.entries()].map(([key, record]) => ({ key, a: record, b: bMap.get(key)! }));
  return { mode: resolved, pairs };
}

// ---------------------------------------------------------------------------------------------
// Metrics

export interface PairMetrics {
  /** Cosine similarity, or NaN when a vector has zero norm or contains a NaN. */
  cosine: number;
  /** Largest |a[i] - b[i]|. */
  maxAbs: number;
  /** The index i of the largest difference. */
  maxAbsIndex: number;
  /** Euclidean distance |a - b|. */
  l2: number;
  normA: number;
  normB: number;
  /** Whether either vector contains a NaN or an infinity. */
  nonFinite: boolean;
}

/** Computes the pair metrics in float64. */
export function pairMetrics(a: ArrayLike<number>, b: ArrayLike<number>): PairMetrics {
  let dot = 0;
  let sumA = 0;
  let sumB = 0;
  let sumDiff = 0;
  let maxAbs = 0;
  let maxAbsIndex = 0;
  let nonFinite = false;
  for (let index = 0; index < a.length; index += 1) {
    const x = a[index]!;
    const y = b[index]!;
    if (!Number.isFinite(x) || !Number.isFinite(y)) nonFinite = true;
    dot += x * y;
    sumA += x * x;
    sumB += y * y;
    const difference = Math.abs(x - y);
    sumDiff += difference * difference;
    if (difference > maxAbs || Number.isNaN(difference)) {
      maxAbs = difference;
      maxAbsIndex = index;
    }
  }
  const normA = Math.sqrt(sumA);
  const normB = Math.sqrt(sumB);
  let cosine = normA === 0 || normB === 0 || nonFinite ? Number.NaN : dot / (normA * normB);
  // Rounding in the float64 sums can put the cosine of identical vectors at 1 +- 2e-16.
  if (maxAbs === 0 && !Number.isNaN(cosine)) cosine = 1;
  return { cosine, maxAbs: nonFinite ? Number.NaN : maxAbs, maxAbsIndex, l2: Math.sqrt(sumDiff), normA, normB, nonFinite };
}

/** Returns the percentile `p` (0 to 100) of `values`, interpolated linearly between order statistics (NumPy's default method). */
export function percentile(values: number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((x, y) => x - y);
  const position = ((sorted.length - 1) * p) / 100;
  const lower = Math.floor(position);
  const upper = Math.ceil(position);
  const fraction = position - lower;
  return sorted[lower]! + (sorted[upper]! - sorted[lower]!) * fraction;
}

export const REPORTED_PERCENTILES = [0, 1, 5, 50, 95, 99, 100];

// ---------------------------------------------------------------------------------------------
// Tolerance and verdict

export interface Tolerance {
  /** Smallest cosine similarity a pair may have. */
  minCosine: number;
  /** Largest |a[i] - b[i]| a pair may have. */
  maxAbs: number;
  /**
   * Whether every vector must have unit length: true, false, or "auto" (expected when the median
   * norm of both sets is within 1e-3 of 1, as for CLIP models that normalize their output).
   */
  unitNorm: boolean | 'auto';
  /** Largest |norm - 1| of a vector that should have unit length. */
  normTolerance: number;
  /** Smallest mean top-k neighbour overlap (0 to 1) the sets may have; 0 reports it without a verdict. */
  minTopKOverlap: number;
}

/**
 * Defaults for comparing two runtimes or two devices (such as a phone and a desktop). Measured
 * on a seeded ViT-B/32 and 8 photos (docs/golden-and-compare.md): other OpenBLAS kernels move
 * an embedding by at most 2.2e-7 (max abs), while a different resize filter moves it by 1.0e-3
 * to 3.5e-3 (cosine 0.99960 to 0.99998). 1e-4 sits between the two with a wide margin on both.
 */
export const COMPARE_DEFAULTS: Tolerance = {
  minCosine: 0.99999,
  maxAbs: 1e-4,
  unitNorm: 'auto',
  normTolerance: 1e-4,
  minTopKOverlap: 0,
};

export type FailureKind = 'cosine' | 'max-abs' | 'norm' | 'non-finite';

export interface PairFailure {
  kind: FailureKind;
  message: string;
}

export interface PairResult extends PairMetrics {
  key: string;
  a: VectorRecord;
  b: VectorRecord;
  failures: PairFailure[];
  /** Set by diagnosis for a failing pair when input tensors were available. */
  diagnosis?: string;
}

function formatNumber(value: number, digits = 6): string {
  if (Number.isNaN(value)) return 'NaN';
  if (value !== 0 && (Math.abs(value) < 1e-3 || Math.abs(value) >= 1e6)) return value.toExponential(2);
  return value.toFixed(digits).replace(/0+$/, '').replace(/\.$/, '.0');
}

export { formatNumber };

/** Median norm of a set's vectors. */
function medianNorm(records: VectorRecord[]): number {
  return percentile(
    records.map((record) => Math.hypot(...record.embedding)),
    50,
  );
}

/** Tells whether unit length is expected, resolving "auto" from the median norms of both sides. */
export function expectsUnitNorm(tolerance: Tolerance, pairs: RecordPair[]): boolean {
  if (tolerance.unitNorm !== 'auto') return tolerance.unitNorm;
  if (pairs.length === 0) return false;
  const aMedian = medianNorm(pairs.map((pair) => pair.a));
  const bMedian = medianNorm(pairs.map((pair) => pair.b));
  return Math.abs(aMedian - 1) <= 1e-3 && Math.abs(bMedian - 1) <= 1e-3;
}

/** Computes the metrics of every pair and the reasons it is out of tolerance, worst pair first. */
export function evaluatePairs(pairs: RecordPair[], tolerance: Tolerance, labels: { a: string; b: string } = { a: 'A', b: 'B' }): PairResult[] {
  const unit = expectsUnitNorm(tolerance, pairs);
  const results = pairs.map((pair): PairResult => {
    const metrics = pairMetrics(pair.a.embedding, pair.b.embedding);
    const failures: PairFailure[] = [];
    if (metrics.nonFinite) {
      failures.push({ kind: 'non-finite', message: 'a vector contains NaN or an infinity' });
    } else {
      if (!(metrics.cosine >= tolerance.minCosine)) {
        failures.push({ kind: 'cosine', message: `cosine ${formatNumber(metrics.cosine, 8)} is below ${tolerance.minCosine}` });
      }
      if (metrics.maxAbs > tolerance.maxAbs) {
        failures.push({ kind: 'max-abs', message: `max abs difference ${formatNumber(metrics.maxAbs)} at index ${metrics.maxAbsIndex} is above ${tolerance.maxAbs}` });
      }
      if (unit) {
        for (const [side, norm] of [
          [labels.a, metrics.normA],
          [labels.b, metrics.normB],
        ] as const) {
          if (Math.abs(norm - 1) > tolerance.normTolerance) {
            failures.push({ kind: 'norm', message: `${side} vector has norm ${formatNumber(norm, 7)}, not unit length (tolerance ${tolerance.normTolerance})` });
          }
        }
      }
    }
    return { key: pair.key, a: pair.a, b: pair.b, ...metrics, failures };
  });
  return sortWorstFirst(results);
}

/** Orders results: failing pairs first, then by cosine ascending, then by max abs difference descending. */
export function sortWorstFirst(results: PairResult[]): PairResult[] {
  const badness = (result: PairResult): number => (Number.isNaN(result.cosine) ? -Infinity : result.cosine);
  return [...results].sort((x, y) => {
    if ((x.failures.length > 0) !== (y.failures.length > 0)) return x.failures.length > 0 ? -1 : 1;
    const byCosine = badness(x) - badness(y);
    if (byCosine !== 0) return byCosine;
    const byMaxAbs = (Number.isNaN(y.maxAbs) ? Infinity : y.maxAbs) - (Number.isNaN(x.maxAbs) ? Infinity : x.maxAbs);
    if (byMaxAbs !== 0) return byMaxAbs;
    return x.a.index - y.a.index;
  });
}

// ---------------------------------------------------------------------------------------------
// Nearest neighbours

export interface NeighbourAgreement {
  /** Neighbours compared per item: min(--top-k, N - 1). */
  k: number;
  /** Mean over items of |top-k in A ∩ top-k in B| / k. */
  meanOverlap: number;
  minOverlap: number;
  /** Fraction of items whose nearest neighbour is the same in both sets. */
  top1Agreement: number;
  /** Items whose neighbour lists differ, lowest overlap first (at most 20). */
  differing: { key: string; overlap: number; neighboursA: string[]; neighboursB: string[] }[];
}

/** Largest set for which neighbours are computed; the work grows with N² × D. */
export const MAX_NEIGHBOUR_ITEMS = 4000;

function unitRows(vectors: ArrayLike<number>[]): Float64Array[] {
  return vectors.map((vector) => {
    let sum = 0;
    for (let index = 0; index < vector.length; index += 1) sum += vector[index]! * vector[index]!;
    const norm = Math.sqrt(sum) || 1;
    const row = new Float64Array(vector.length);
    for (let index = 0; index < vector.length; index += 1) row[index] = vector[index]! / norm;
    return row;
  });
}

/** Ranks the other items by cosine similarity to item `i`, most similar first; ties keep index order. */
function topK(rows: Float64Array[], i: number, k: number): number[] {
  const scores: { index: number; score: number }[] = [];
  const row = rows[i]!;
  for (let j = 0; j < rows.length; j += 1) {
    if (j === i) continue;
    const other = rows[j]!;
    let dot = 0;
    for (let d = 0; d < row.length; d += 1) dot += row[d]! * other[d]!;
    scores.push({ index: j, score: dot });
  }
  scores.sort((x, y) => y.score - x.score || x.index - y.index);
  return scores.slice(0, k).map((entry) => entry.index);
}

/**
 * Measures whether both sets rank the same items as closest to each item (cosine similarity
 * within each set). Returns undefined for fewer than 2 pairs or more than MAX_NEIGHBOUR_ITEMS.
 */
export function neighbourAgreement(pairs: { key: string; a: VectorRecord; b: VectorRecord }[], requestedK: number): NeighbourAgreement | undefined {
  if (pairs.length < 2 || pairs.length > MAX_NEIGHBOUR_ITEMS) return undefined;
  const k = Math.min(requestedK, pairs.length - 1);
  const rowsA = unitRows(pairs.map((pair) => pair.a.embedding));
  const rowsB = unitRows(pairs.map((pair) => pair.b.embedding));
  let sumOverlap = 0;
  let minOverlap = 1;
  let top1 = 0;
  const differing: NeighbourAgreement['differing'] = [];
  for (let i = 0; i < pairs.length; i += 1) {
    const nearA = topK(rowsA, i, k);
    const nearB = topK(rowsB, i, k);
    const inB = new Set(nearB);
    const overlap = nearA.filter((index) => inB.has(index)).length / k;
    sumOverlap += overlap;
    minOverlap = Math.min(minOverlap, overlap);
    if (nearA[0] === nearB[0]) top1 += 1;
    if (overlap < 1 || nearA[0] !== nearB[0]) {
      differing.push({
        key: pairs[i]!.key,
        overlap,
        neighboursA: nearA.map((index) => pairs[index]!.key),
        neighboursB: nearB.map((index) => pairs[index]!.key),
      });
    }
  }
  differing.sort((x, y) => x.overlap - y.overlap);
  return { k, meanOverlap: sumOverlap / pairs.length, minOverlap, top1Agreement: top1 / pairs.length, differing: differing.slice(0, 20) };
}

// ---------------------------------------------------------------------------------------------
// Report

export interface SideInfo {
  /** Short name used in the table and messages, such as "A", "golden" or "now". */
  label: string;
  source: string;
  format?: string;
}

export interface ComparisonReport {
  /** "compare" or "golden-check". */
  kind: string;
  a: SideInfo;
  b: SideInfo;
  /** The match mode the records were paired by (compare only). */
  match?: string;
  dimensions: number;
  tolerance: Tolerance;
  /** Whether unit length was required, after resolving "auto". */
  unitNormExpected: boolean;
  /** Every pair, worst first. */
  pairs: PairResult[];
  failed: number;
  /** Percentiles (keys "p0" ... "p100") of each metric over the pairs. */
  percentiles: { cosine: Record<string, number>; maxAbs: Record<string, number>; l2: Record<string, number> };
  neighbours?: NeighbourAgreement;
  /** Set when the neighbour overlap is below tolerance.minTopKOverlap. */
  neighbourFailure?: string;
  verdict: 'pass' | 'fail';
  notes: string[];
}

function percentileTable(values: number[]): Record<string, number> {
  const table: Record<string, number> = {};
  for (const p of REPORTED_PERCENTILES) table[`p${p}`] = percentile(values, p);
  return table;
}

/** Evaluates matched pairs against a tolerance and gathers the set statistics and verdict. */
export function buildReport(options: {
  kind: string;
  a: SideInfo;
  b: SideInfo;
  match?: string;
  pairs: RecordPair[];
  tolerance: Tolerance;
  topK: number;
}): ComparisonReport {
  const results = evaluatePairs(options.pairs, options.tolerance, { a: options.a.label, b: options.b.label });
  const finite = results.filter((result) => !result.nonFinite);
  const notes: string[] = [];
  let neighbours: NeighbourAgreement | undefined;
  if (options.topK > 0) {
    neighbours = neighbourAgreement(options.pairs, options.topK);
    if (!neighbours && options.pairs.length > MAX_NEIGHBOUR_ITEMS) notes.push(`nearest-neighbour agreement skipped: more than ${MAX_NEIGHBOUR_ITEMS} pairs`);
  }
  let neighbourFailure: string | undefined;
  if (neighbours && neighbours.meanOverlap < options.tolerance.minTopKOverlap) {
    neighbourFailure = `mean top-${neighbours.k} neighbour overlap ${formatNumber(neighbours.meanOverlap, 4)} is below ${options.tolerance.minTopKOverlap}`;
  }
  const failed = results.filter((result) => result.failures.length > 0).length;
  const report: ComparisonReport = {
    kind: options.kind,
    a: options.a,
    b: options.b,
    dimensions: options.pairs[0]?.a.embedding.length ?? 0,
    tolerance: options.tolerance,
    unitNormExpected: expectsUnitNorm(options.tolerance, options.pairs),
    pairs: results,
    failed,
    percentiles: {
      cosine: percentileTable(finite.map((result) => result.cosine)),
      maxAbs: percentileTable(finite.map((result) => result.maxAbs)),
      l2: percentileTable(finite.map((result) => result.l2)),
    },
    verdict: failed === 0 && neighbourFailure === undefined ? 'pass' : 'fail',
    notes,
  };
  if (options.match !== undefined) report.match = options.match;
  if (neighbours) report.neighbours = neighbours;
  if (neighbourFailure !== undefined) report.neighbourFailure = neighbourFailure;
  return report;
}
