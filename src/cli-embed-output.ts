/**
 * Output of the embed command: embedding records and their JSON form, whose float32 values
 * read back to the identical bits. Also the journal that makes `--resume` work after a crash,
 * and the final JSON, JSONL or .npy files, each written to a temporary file and renamed into
 * place.
 *
 * Journal: with `--out FILE`, each finished record is appended as one JSON line, in one
 * write() call, to FILE.partial, which is flushed to disk (fsync) every few records. FILE
 * itself is written only when the run ends: to a temporary file in the same folder, which is
 * then renamed over FILE, and FILE.partial is removed. A run killed at any point (even with
 * SIGKILL) leaves FILE as it was before the run and FILE.partial holding whole lines plus at
 * most one torn last line, which `--resume` drops.
 */
import { open, readFile, unlink, type FileHandle } from 'node:fs/promises';
import path from 'node:path';

import { EmbedImageError } from './errors.js';
import { decodeNpy, encodeNpy } from './npy.js';
import { writeFileAtomic } from './atomic-file.js';

export type OutputFormat = 'json' | 'jsonl' | 'npy';
export const OUTPUT_FORMATS: OutputFormat[] = ['json', 'jsonl', 'npy'];

/** One embedded image, as the embed command writes it. */
export interface EmbeddingRecord {
  /** The image's path relative to the working directory ("/" separators), or its URL. */
  path: string;
  /** Lowercase hex sha256 of the image file's bytes. */
  sha256: string;
  model: { name: string; sha256: string };
  /** The preprocessing profile. */
  profile: string;
  /** Length of the embedding. */
  dimensions: number;
  /** Euclidean norm of the embedding, computed in float64 from the float32 values. */
  norm: number;
  embedding: Float32Array;
}

/** Records since the last fsync after which the journal is flushed to disk again. */
const JOURNAL_SYNC_RECORDS = 32;
/** Milliseconds since the last fsync after which the journal is flushed to disk again. */
const JOURNAL_SYNC_MS = 2000;

/**
 * Formats a float32 value as the shortest decimal (1 to 9 significant digits) that parses
 * back to the same float32, so `Math.fround(JSON.parse(text))` restores its exact bits. NaN and
 * infinities, which JSON numbers cannot express, become the strings "NaN", "Infinity" and
 * "-Infinity", as in the run command's output.
 */
export function formatFloat32(value: number): string {
  const single = Math.fround(value);
  if (Number.isNaN(single)) return '"NaN"';
  if (single === Infinity) return '"Infinity"';
  if (single === -Infinity) return '"-Infinity"';
  if (single === 0) return Object.is(single, -0) ? '-0' : '0';
  for (let digits = 1; digits < 9; digits++) {
    const candidate = Number(single.toPrecision(digits));
    if (Math.fround(candidate) === single) return String(candidate);
  }
  // Nine significant digits always identify a float32 (IEEE 754-2008, clause 5.12.2).
  return String(Number(single.toPrecision(9)));
}

/** Returns the Euclidean norm of a vector, accumulated in float64. */
export function vectorNorm(values: Float32Array): number {
  let sum = 0;
  for (const value of values) sum += value * value;
  return Math.sqrt(sum);
}

/** Serializes a record as one line of JSON, without the newline. */
export function serializeRecord(record: EmbeddingRecord): string {
  const head = JSON.stringify({
    path: record.path,
    sha256: record.sha256,
    model: { name: record.model.name, sha256: record.model.sha256 },
    profile: record.profile,
    dimensions: record.dimensions,
    norm: record.norm,
  });
  const values = Array.from(record.embedding, formatFloat32).join(',');
  return `${head.slice(0, -1)},"embedding":[${values}]}`;
}

function recordFromValue(value: unknown, label: string): EmbeddingRecord {
  const object = value as Partial<Record<keyof EmbeddingRecord, unknown>> | null;
  const model = object?.model as { name?: unknown; sha256?: unknown } | undefined;
  const valid =
    typeof object === 'object' &&
    object !== null &&
    typeof object.path === 'string' &&
    typeof object.sha256 === 'string' &&
    typeof model?.name === 'string' &&
    typeof model.sha256 === 'string' &&
    typeof object.profile === 'string' &&
    typeof object.dimensions === 'number' &&
    typeof object.norm === 'number' &&
    Array.isArray(object.embedding) &&
    object.embedding.length === object.dimensions;
  if (!valid) throw new EmbedImageError('ERR_VECTORS_FORMAT', `${label}: not an embed-image record (path, sha256, model, profile, dimensions, norm, embedding)`);

  const embedding = new Float32Array(object.embedding as unknown[] as number[]);
  (object.embedding as unknown[]).forEach((item, index) => {
    if (typeof item === 'string' && ['NaN', 'Infinity', '-Infinity'].includes(item)) embedding[index] = Number(item);
    else if (typeof item !== 'number') throw new EmbedImageError('ERR_VECTORS_FORMAT', `${label}: embedding value ${index} is ${JSON.stringify(item)}, not a number`);
  });
  return {
    path: object.path as string,
    sha256: object.sha256 as string,
    model: { name: model.name as string, sha256: model.sha256 as string },
    profile: object.profile as string,
    dimensions: object.dimensions as number,
    norm: object.norm as number,
    embedding,
  };
}

/** Parses one line written by serializeRecord. Throws ERR_VECTORS_FORMAT for anything else. */
export function parseRecordLine(line: string, label: string): EmbeddingRecord {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch (error) {
    throw new EmbedImageError('ERR_VECTORS_FORMAT', `${label}: invalid JSON: ${(error as Error).message}`, { cause: error });
  }
  return recordFromValue(value, label);
}

/** Returns the format for --out FILE from its extension, or undefined for other extensions. */
export function formatFromExtension(file: string): OutputFormat | undefined {
  const extension = path.extname(file).toLowerCase();
  if (extension === '.jsonl' || extension === '.ndjson') return 'jsonl';
  if (extension === '.json') return 'json';
  if (extension === '.npy') return 'npy';
  return undefined;
}

/** Returns the index file beside FILE.npy, FILE.json, which contains the records without embeddings. */
export function npyIndexPath(file: string): string {
  return `${file.replace(/\.npy$/i, '')}.json`;
}

export function partialPath(file: string): string {
  return `${file}.partial`;
}

// ---------------------------------------------------------------------------------------------
// Files

function writeError(file: string, error: unknown): EmbedImageError {
  return new EmbedImageError('ERR_FILE_WRITE', `${file}: cannot write the file: ${(error as Error).message}`, { cause: error });
}


/** Renders the final output file(s) of a run: the main file, and for npy the index beside it. */
export function renderOutput(format: OutputFormat, records: EmbeddingRecord[]): { main: string | Uint8Array; index?: string } {
  if (format === 'jsonl') return { main: records.map((record) => `${serializeRecord(record)}\n`).join('') };
  if (format === 'json') return { main: records.length === 0 ? '[]\n' : `[\n${records.map(serializeRecord).join(',\n')}\n]\n` };

  const dimensions = records[0]?.dimensions ?? 0;
  const data = new Float32Array(records.length * dimensions);
  records.forEach((record, row) => data.set(record.embedding, row * dimensions));
  const index = records.map((record, row) => {
    const { embedding: _embedding, ...rest } = record;
    return JSON.stringify({ row, ...rest });
  });
  return {
    main: encodeNpy({ dtype: 'float32', shape: [records.length, dimensions], data }),
    index: index.length === 0 ? '[]\n' : `[\n${index.join(',\n')}\n]\n`,
  };
}

/**
 * Writes the final output atomically. For npy the index is written first, then the matrix.
 * NOTE: each of the two files is replaced atomically, but not the pair. A run killed between
 * the two renames leaves a new index beside the old matrix, which readOutput rejects when the
 * row counts differ. The journal, deleted only after both renames, still has every record.
 */
export async function writeOutput(file: string, format: OutputFormat, records: EmbeddingRecord[]): Promise<void> {
  const rendered = renderOutput(format, records);
  if (rendered.index !== undefined) await writeFileAtomic(npyIndexPath(file), rendered.index);
  await writeFileAtomic(file, rendered.main);
}

async function readTextIfPresent(file: string): Promise<string | undefined> {
  try {
    return await readFile(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new EmbedImageError('ERR_FILE_READ', `${file}: cannot read the file: ${(error as Error).message}`, { cause: error });
  }
}

/**
 * Reads the records of an earlier complete output in `format`, or returns [] when the file
 * does not exist. For npy, the embeddings come from FILE.npy and the rest from FILE.json.
 */
export async function readOutput(file: string, format: OutputFormat): Promise<EmbeddingRecord[]> {
  if (format === 'jsonl') {
    const text = await readTextIfPresent(file);
    if (text === undefined) return [];
    return text
      .split('\n')
      .map((line, number) => ({ line, number }))
      .filter(({ line }) => line.trim() !== '')
      .map(({ line, number }) => parseRecordLine(line, `${file} line ${number + 1}`));
  }
  if (format === 'json') {
    const text = await readTextIfPresent(file);
    if (text === undefined) return [];
    const value = (() => {
      try {
        return JSON.parse(text) as unknown;
      } catch (error) {
        throw new EmbedImageError('ERR_VECTORS_FORMAT', `${file}: invalid JSON: ${(error as Error).message}`, { cause: error });
      }
    })();
    if (!Array.isArray(value)) throw new EmbedImageError('ERR_VECTORS_FORMAT', `${file}: expected a JSON array of embed-image records`);
    return value.map((item, index) => recordFromValue(item, `${file} record ${index}`));
  }

  const indexText = await readTextIfPresent(npyIndexPath(file));
  let bytes: Uint8Array;
  try {
    bytes = await readFile(file);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT' && indexText === undefined) return [];
    throw new EmbedImageError('ERR_FILE_READ', `${file}: cannot read the file: ${(error as Error).message}`, { cause: error });
  }
  if (indexText === undefined) throw new EmbedImageError('ERR_FILE_NOT_FOUND', `${npyIndexPath(file)}: file not found; --resume needs the index written beside ${file}`);
  const matrix = decodeNpy(bytes, file);
  const index = JSON.parse(indexText) as unknown[];
  const [rows, dimensions] = matrix.shape;
  if (matrix.dtype !== 'float32' || matrix.shape.length !== 2 || rows !== index.length) {
    throw new EmbedImageError('ERR_VECTORS_FORMAT', `${file}: expected float32 [${index.length}, D] to match ${npyIndexPath(file)}, got ${matrix.dtype} [${matrix.shape.join(', ')}]`);
  }
  const data = matrix.data as Float32Array;
  return index.map((item, row) => {
    const embedding = Array.from(data.subarray(row * dimensions!, (row + 1) * dimensions!));
    return recordFromValue({ ...(item as object), embedding }, `${npyIndexPath(file)} row ${row}`);
  });
}

/**
 * The append-only journal FILE.partial. Each record is one JSON line written with a single
 * write() call. The file is flushed to disk after JOURNAL_SYNC_RECORDS records, after a record
 * that comes JOURNAL_SYNC_MS milliseconds or more after the last flush, and when it is closed.
 */
export class RecordJournal {
  readonly file: string;
  #handle: FileHandle;
  #unsynced = 0;
  #lastSync = Date.now();

  private constructor(file: string, handle: FileHandle) {
    this.file = file;
    this.#handle = handle;
  }

  /**
   * Opens the journal. With `resume`, it returns the records already in it and cuts off a torn
   * last line (one without its newline, from a killed run). Lines that do not parse are counted
   * in `dropped`. Without `resume`, the journal starts empty.
   */
  static async open(file: string, resume: boolean): Promise<{ journal: RecordJournal; records: EmbeddingRecord[]; dropped: number }> {
    const records: EmbeddingRecord[] = [];
    let dropped = 0;
    let keepBytes = 0;
    if (resume) {
      const text = await readTextIfPresent(file);
      if (text !== undefined) {
        const end = text.lastIndexOf('\n') + 1;
        if (end < text.length) dropped += 1;
        keepBytes = Buffer.byteLength(text.slice(0, end));
        for (const line of text.slice(0, end).split('\n')) {
          if (line.trim() === '') continue;
          try {
            records.push(parseRecordLine(line, file));
          } catch {
            dropped += 1;
          }
        }
      }
    }
    let handle: FileHandle;
    try {
      handle = await open(file, resume ? 'a+' : 'w');
      if (resume) await handle.truncate(keepBytes);
    } catch (error) {
      throw writeError(file, error);
    }
    return { journal: new RecordJournal(file, handle), records, dropped };
  }

  async append(record: EmbeddingRecord): Promise<void> {
    try {
      await this.#handle.write(`${serializeRecord(record)}\n`);
      this.#unsynced += 1;
      if (this.#unsynced >= JOURNAL_SYNC_RECORDS || Date.now() - this.#lastSync >= JOURNAL_SYNC_MS) await this.#sync();
    } catch (error) {
      throw writeError(this.file, error);
    }
  }

  async #sync(): Promise<void> {
    await this.#handle.sync();
    this.#unsynced = 0;
    this.#lastSync = Date.now();
  }

  async close(): Promise<void> {
    try {
      await this.#sync();
    } finally {
      await this.#handle.close();
    }
  }

  /** Closes and deletes the journal, once the final output contains its records. */
  async remove(): Promise<void> {
    await this.#handle.close().catch(() => undefined);
    await unlink(this.file).catch((error: NodeJS.ErrnoException) => {
      if (error.code !== 'ENOENT') throw writeError(this.file, error);
    });
  }
}
