/**
 * Golden files: the embeddings of a set of images with everything needed to check them later
 * (the model's sha256, the preprocessing profile, the image sha256s), so CI can tell when a
 * change to the runtime, the model or the preprocessing moves an embedding.
 *
 * A golden file is JSON:
 *   {
 *     "format": "embed-image-golden", "version": 1,
 *     "created": ISO 8601 time,
 *     "embedImage": { "version" },
 *     "model": { "name", "sha256", "source" (path relative to the golden file, or a model name or URL),
 *                "method", "inputShape", "outputShape" },
 *     "preprocessing": { "profile" },
 *     "machine": { "arch", "platform", "cpu", "threads" },
 *     "tolerance": { "minCosine", "maxAbs" },
 *     "images": [ { "path" (relative to the golden file, "/" separators), "sha256", "dimensions",
 *                   "norm", "embedding": [float32 values] } ]
 *   }
 * Embedding values are written as the shortest decimal that reads back to the same float32,
 * so `Math.fround(value)` of each number gives the exact bits the model produced.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdir, readFile, stat } from 'node:fs/promises';
import { arch, cpus, platform } from 'node:os';
import { dirname, isAbsolute, join, relative, resolve, sep } from 'node:path';

import { buildReport, formatNumber, pairMetrics, type ComparisonReport, type RecordPair, type Tolerance } from './compare.js';
import { diagnoseInputs } from './diagnose.js';
import { EmbedImageError } from './errors.js';
import { readNpy, writeNpy } from './npy.js';
import type { Tensor } from './program.js';

export const GOLDEN_FORMAT = 'embed-image-golden';
export const GOLDEN_VERSION = 1;

/**
 * Defaults for checking a golden file with embed-image itself. On one machine the embeddings
 * are bitwise identical run to run and for any thread count; other OpenBLAS kernels (as on
 * other x86 CPUs) move a seeded ViT-B/32's embeddings by at most 2.2e-7 (max abs), measured as
 * described in docs/golden-and-compare.md. 1e-5 leaves a 45x margin for that, and still fails
 * a change in the 4th decimal (1e-4) of a single element.
 */
export const GOLDEN_DEFAULTS = { minCosine: 0.999999, maxAbs: 1e-5 };

export interface GoldenImage {
  path: string;
  sha256: string;
  dimensions: number;
  norm: number;
  /** sha256 of the model input tensor's float32 bytes, to tell preprocessing changes from model changes. */
  inputSha256?: string;
  embedding: number[];
}

export interface GoldenFile {
  format: typeof GOLDEN_FORMAT;
  version: number;
  created: string;
  embedImage: { version: string };
  model: { name: string; sha256: string; source: string; method: string; inputShape: number[]; outputShape: number[] };
  preprocessing: { profile: string };
  machine: { arch: string; platform: string; cpu: string; threads: number };
  tolerance: { minCosine: number; maxAbs: number };
  /** Folder (relative to the golden file) of the input tensors saved with --save-inputs, as IMAGE_PATH.npy. */
  inputs?: string;
  images: GoldenImage[];
}

/** One image's embedding and the exact model input tensor it came from. */
export interface EmbedResult {
  embedding: Float32Array;
  /** Float32 [1, 3, H, W] input tensor data. */
  input: Float32Array;
}

/** The embedding model a golden file is made and checked with: its identity and one embedding per image file. */
export interface Embedder {
  model: { name: string; sha256: string; path: string };
  profile: string;
  /** Worker threads requested (0: one per core). */
  threads: number;
  method: string;
  inputShape: number[];
  outputShape: number[];
  embed(imagePath: string): Promise<EmbedResult>;
  close(): void;
}

// ---------------------------------------------------------------------------------------------
// Files


/** Returns the lowercase hex sha256 of a file, or throws ERR_FILE_NOT_FOUND / ERR_FILE_READ naming it. */
export async function sha256OfFile(path: string, label = path): Promise<string> {
  let bytes: Buffer;
  try {
    bytes = await readFile(path);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new EmbedImageError('ERR_FILE_NOT_FOUND', `${label}: file not found`, { cause: error });
    throw new EmbedImageError('ERR_FILE_READ', `${label}: cannot read the file: ${(error as Error).message}`, { cause: error });
  }
  return createHash('sha256').update(bytes).digest('hex');
}

/** Returns the shortest decimal number that reads back (through Math.fround) to the float32 `value`. */
export function shortestFloat32(value: number): number {
  if (!Number.isFinite(value) || value === 0) return value === 0 ? 0 : value;
  for (let precision = 1; precision <= 9; precision += 1) {
    const candidate = Number(value.toPrecision(precision));
    if (Math.fround(candidate) === value) return candidate;
  }
  return value;
}

/** Path of `file` relative to the golden file's folder, with "/" separators. */
function relativeToGolden(goldenPath: string, file: string): string {
  return relative(dirname(resolve(goldenPath)), resolve(file)).split(sep).join('/');
}

function packageVersion(): string {
  const text = readFileSync(new URL('../package.json', import.meta.url), 'utf8');
  return (JSON.parse(text) as { version: string }).version;
}

/** Serializes a golden file as JSON with one line per embedding. */
export function serializeGolden(golden: GoldenFile): string {
  const { images, ...header } = golden;
  // Arrays of numbers (the shapes) stay on one line.
  const head = JSON.stringify(header, null, 2)
    .replace(/\[\s*([-\d.e+,\s]+?)\s*\]/g, (_, inner: string) => `[${inner.split(/,\s*/).join(', ')}]`)
    .replace(/\n}$/, '');
  const lines = images.map((image) => {
    const { embedding, ...fields } = image;
    const prefix = JSON.stringify(fields).replace(/}$/, '');
    return `    ${prefix},"embedding":[${embedding.map((value) => JSON.stringify(shortestFloat32(value))).join(',')}]}`;
  });
  return `${head},\n  "images": [\n${lines.join(',\n')}\n  ]\n}\n`;
}

function goldenError(source: string, problem: string): EmbedImageError {
  return new EmbedImageError('ERR_GOLDEN_FORMAT', `${source}: ${problem}; recreate it with "embed-image golden create"`);
}

/** Validates parsed JSON as a golden file, naming the first field that is wrong. */
export function parseGolden(value: unknown, source: string): GoldenFile {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw goldenError(source, 'not a golden file (expected a JSON object)');
  const golden = value as Partial<GoldenFile> & Record<string, unknown>;
  if (golden.format !== GOLDEN_FORMAT) throw goldenError(source, `"format" is ${JSON.stringify(golden.format)}, expected "${GOLDEN_FORMAT}"`);
  if (golden.version !== GOLDEN_VERSION) throw goldenError(source, `"version" ${JSON.stringify(golden.version)} is not supported; this embed-image reads version ${GOLDEN_VERSION}`);
  const model = golden.model;
  if (typeof model !== 'object' || model === null || typeof model.sha256 !== 'string' || !/^[0-9a-f]{64}$/.test(model.sha256) || typeof model.source !== 'string' || typeof model.name !== 'string') {
    throw goldenError(source, '"model" must have "name", "source" and a 64-digit lowercase hex "sha256"');
  }
  if (typeof golden.preprocessing?.profile !== 'string') throw goldenError(source, '"preprocessing.profile" is missing');
  const tolerance = golden.tolerance;
  if (typeof tolerance?.minCosine !== 'number' || typeof tolerance.maxAbs !== 'number') throw goldenError(source, '"tolerance" must have numbers "minCosine" and "maxAbs"');
  if (!Array.isArray(golden.images) || golden.images.length === 0) throw goldenError(source, '"images" must be a non-empty array');
  const seen = new Set<string>();
  for (const [index, image] of golden.images.entries()) {
    const label = `image ${index}${typeof image?.path === 'string' ? ` (${image.path})` : ''}`;
    if (typeof image?.path !== 'string' || image.path === '') throw goldenError(source, `${label}: "path" must be a non-empty string`);
    if (seen.has(image.path)) throw goldenError(source, `${label}: the path appears twice`);
    seen.add(image.path);
    if (typeof image.sha256 !== 'string' || !/^[0-9a-f]{64}$/.test(image.sha256)) throw goldenError(source, `${label}: "sha256" must be 64 lowercase hex digits`);
    if (!Array.isArray(image.embedding) || image.embedding.length === 0 || !image.embedding.every((item) => typeof item === 'number')) {
      throw goldenError(source, `${label}: "embedding" must be a non-empty array of numbers`);
    }
    if (image.embedding.length !== golden.images[0]!.embedding.length) {
      throw goldenError(source, `${label}: "embedding" has ${image.embedding.length} values but image 0 has ${golden.images[0]!.embedding.length}`);
    }
  }
  return golden as GoldenFile;
}

/** Reads and validates a golden file. */
export async function readGolden(path: string): Promise<GoldenFile> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new EmbedImageError('ERR_FILE_NOT_FOUND', `${path}: golden file not found; create it with "embed-image golden create IMAGES... --model MODEL --out ${path}"`, { cause: error });
    throw new EmbedImageError('ERR_FILE_READ', `${path}: cannot read the file: ${(error as Error).message}`, { cause: error });
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw goldenError(path, `invalid JSON: ${(error as Error).message}`);
  }
  return parseGolden(value, path);
}

// ---------------------------------------------------------------------------------------------
// Create

export interface CreateGoldenOptions {
  /** The model as named on the command line: a path, a known model name or a URL. */
  modelSpec: string;
  /** Folder where each image's input tensor is saved as IMAGE_PATH.npy, for diagnosis by a later check. */
  saveInputs?: string;
  tolerance?: { minCosine: number; maxAbs: number };
  now?: Date;
  onProgress?: (done: number, total: number, path: string) => void;
}

/** Describes the model source as stored: a file path relative to the golden file, else the spec as given. */
function modelSource(goldenPath: string, spec: string): Promise<string> {
  return stat(spec).then(
    (info) => (info.isFile() ? relativeToGolden(goldenPath, spec) : spec),
    () => spec,
  );
}

function cpuName(): string {
  return cpus()[0]?.model.trim() ?? 'unknown';
}

/** Embeds every image and returns the golden file's content (not yet written). */
export async function createGolden(images: string[], goldenPath: string, embedder: Embedder, options: CreateGoldenOptions): Promise<GoldenFile> {
  if (images.length === 0) throw new EmbedImageError('ERR_INVALID_ARGUMENT', 'no images given; pass image files or folders');
  const entries: GoldenImage[] = [];
  const seen = new Map<string, string>();
  // Every image must embed, or the file would silently check less than was asked. Images that
  // fail are collected, so one error lists them all.
  const failures: EmbedImageError[] = [];
  for (const [index, image] of images.entries()) {
    const path = relativeToGolden(goldenPath, image);
    const previous = seen.get(path);
    if (previous !== undefined) throw new EmbedImageError('ERR_INVALID_ARGUMENT', `${image} is given twice (also as ${previous}); pass each image once`);
    seen.set(path, image);
    const sha256 = await sha256OfFile(image);
    let result: EmbedResult;
    try {
      result = await embedder.embed(image);
    } catch (error) {
      if (!(error instanceof EmbedImageError) || !error.code.startsWith('ERR_IMAGE')) throw error;
      failures.push(error);
      continue;
    }
    const { embedding, input } = result;
    entries.push({ path, sha256, dimensions: embedding.length, norm: Math.hypot(...embedding), inputSha256: tensorSha256(input), embedding: Array.from(embedding) });
    if (options.saveInputs !== undefined) await saveInput(join(options.saveInputs, `${path.replace(/\.\.\//g, '')}.npy`), input, embedder.inputShape);
    options.onProgress?.(index + 1, images.length, image);
  }
  if (failures.length > 0) {
    const list = failures.map((failure) => failure.message).join('; ');
    throw new EmbedImageError(
      failures[0]!.code,
      `${failures.length} of ${images.length} images could not be embedded, so ${goldenPath} was not written (a golden file needs every image; remove or fix these): ${list}`,
    );
  }
  const golden: GoldenFile = {
    format: GOLDEN_FORMAT,
    version: GOLDEN_VERSION,
    created: (options.now ?? new Date()).toISOString(),
    embedImage: { version: packageVersion() },
    model: {
      name: embedder.model.name,
      sha256: embedder.model.sha256,
      source: await modelSource(goldenPath, options.modelSpec),
      method: embedder.method,
      inputShape: embedder.inputShape,
      outputShape: embedder.outputShape,
    },
    preprocessing: { profile: embedder.profile },
    machine: { arch: arch(), platform: platform(), cpu: cpuName(), threads: embedder.threads },
    tolerance: options.tolerance ?? GOLDEN_DEFAULTS,
    images: entries,
  };
  if (options.saveInputs !== undefined) golden.inputs = relativeToGolden(goldenPath, options.saveInputs);
  return golden;
}

/** sha256 of a float32 tensor's little-endian bytes. */
export function tensorSha256(data: Float32Array): string {
  return createHash('sha256').update(new Uint8Array(data.buffer, data.byteOffset, data.byteLength)).digest('hex');
}

async function saveInput(file: string, data: Float32Array, shape: number[]): Promise<void> {
  await mkdir(dirname(file), { recursive: true }).catch((error: unknown) => {
    throw new EmbedImageError('ERR_FILE_WRITE', `${dirname(file)}: cannot create the folder: ${(error as Error).message}`, { cause: error });
  });
  await writeNpy(file, { dtype: 'float32', shape, data });
}

/** Reads the saved input tensor of an image; returns undefined when the golden file has none for it. */
async function savedInput(golden: GoldenFile, goldenPath: string, image: GoldenImage): Promise<Tensor | undefined> {
  if (golden.inputs === undefined) return undefined;
  const file = resolve(dirname(resolve(goldenPath)), golden.inputs, `${image.path.replace(/\.\.\//g, '')}.npy`);
  return readNpy(file).catch(() => undefined);
}

/** Says whether a failing image's input tensor changed since the golden file was made, and how. */
async function diagnoseGoldenPair(golden: GoldenFile, goldenPath: string, image: GoldenImage, input: Float32Array, inputShape: number[]): Promise<string | undefined> {
  if (image.inputSha256 === undefined) return undefined;
  if (tensorSha256(input) === image.inputSha256) return 'inputs equal: the input tensor is bit-identical to the one at creation, so the model outputs differ (model, runtime or delegate numerics)';
  const saved = await savedInput(golden, goldenPath, image);
  if (saved === undefined) return 'inputs differ: the input tensor changed since the golden file was made (preprocessing or image decoding); save tensors with "golden create --save-inputs DIR" to see how';
  return diagnoseInputs(saved, { dtype: 'float32', shape: inputShape, data: input }, { a: 'golden input', b: 'input now' }).message;
}

// ---------------------------------------------------------------------------------------------
// Check

/** Resolves the model a golden file names: a relative path against the golden file's folder, else the spec as stored. */
export function goldenModelSpec(golden: GoldenFile, goldenPath: string): string {
  const source = golden.model.source;
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(source) || /^[A-Z0-9_]+$/.test(source)) return source;
  return isAbsolute(source) ? source : resolve(dirname(resolve(goldenPath)), source);
}

export interface ImageProblem {
  path: string;
  problem: 'missing' | 'changed';
  expected?: string;
  actual?: string;
}

/** Checks that every image exists and still has its recorded sha256; returns the problems, all of them. */
export async function checkImages(golden: GoldenFile, goldenPath: string): Promise<ImageProblem[]> {
  const problems: ImageProblem[] = [];
  const folder = dirname(resolve(goldenPath));
  for (const image of golden.images) {
    try {
      const actual = await sha256OfFile(resolve(folder, image.path));
      if (actual !== image.sha256) problems.push({ path: image.path, problem: 'changed', expected: image.sha256, actual });
    } catch (error) {
      if (error instanceof EmbedImageError && error.code === 'ERR_FILE_NOT_FOUND') problems.push({ path: image.path, problem: 'missing' });
      else throw error;
    }
  }
  return problems;
}

/** Builds the error for missing or changed images, naming each one. */
export function imageProblemsError(problems: ImageProblem[], goldenPath: string, allowUpdate: boolean): EmbedImageError {
  const missing = problems.filter((item) => item.problem === 'missing');
  const changed = problems.filter((item) => item.problem === 'changed');
  const parts: string[] = [];
  if (missing.length > 0) parts.push(`${missing.length} image${missing.length === 1 ? ' is' : 's are'} missing: ${missing.map((item) => item.path).join(', ')}`);
  if (changed.length > 0) {
    parts.push(`${changed.length} image${changed.length === 1 ? ' has' : 's have'} changed (sha256 differs from the golden file): ${changed.map((item) => `${item.path} (was ${item.expected!.slice(0, 12)}, now ${item.actual!.slice(0, 12)})`).join(', ')}`);
  }
  const hint =
    missing.length > 0
      ? `paths are relative to ${dirname(goldenPath) || '.'}; restore the images, or recreate the golden file with "embed-image golden create"`
      : allowUpdate
        ? 'restore the images'
        : `restore the images, or accept the change with "embed-image golden check ${goldenPath} --update"`;
  return new EmbedImageError(missing.length > 0 ? 'ERR_FILE_NOT_FOUND' : 'ERR_GOLDEN_INPUT_CHANGED', `${goldenPath}: ${parts.join('; ')}; ${hint}`);
}

/** Builds the error for a model file whose sha256 differs from the golden file's. */
export function modelChangedError(golden: GoldenFile, goldenPath: string, model: { path: string; sha256: string }): EmbedImageError {
  return new EmbedImageError(
    'ERR_GOLDEN_MODEL_CHANGED',
    `${goldenPath}: the model ${model.path} has sha256 ${model.sha256}, but the golden file was made with ${golden.model.name} (sha256 ${golden.model.sha256}); pass the original model with --model, or accept the new model with --update`,
  );
}

export interface CheckResult {
  report: ComparisonReport;
  /** Fresh embeddings, in the golden file's image order. */
  fresh: Float32Array[];
  /** Fresh input tensors, in the golden file's image order. */
  inputs: Float32Array[];
}

/** Re-embeds every image of a golden file and compares the result with the stored embeddings. */
export async function checkGolden(
  golden: GoldenFile,
  goldenPath: string,
  embedder: Embedder,
  tolerance: Tolerance,
  topK: number,
  onProgress?: (done: number, total: number, path: string) => void,
): Promise<CheckResult> {
  const folder = dirname(resolve(goldenPath));
  const fresh: Float32Array[] = [];
  const inputs: Float32Array[] = [];
  const pairs: RecordPair[] = [];
  for (const [index, image] of golden.images.entries()) {
    const { embedding, input } = await embedder.embed(resolve(folder, image.path));
    inputs.push(input);
    if (embedding.length !== image.embedding.length) {
      throw new EmbedImageError('ERR_GOLDEN_MODEL_CHANGED', `${goldenPath}: ${image.path} now has an embedding of ${embedding.length} values, but the golden file contains ${image.embedding.length}; check that it is the same model`);
    }
    fresh.push(embedding);
    pairs.push({
      key: image.path,
      a: { index, path: image.path, sha256: image.sha256, embedding: Float32Array.from(image.embedding) },
      b: { index, path: image.path, sha256: image.sha256, embedding },
    });
    onProgress?.(index + 1, golden.images.length, image.path);
  }
  const report = buildReport({
    kind: 'golden-check',
    a: { label: 'golden', source: goldenPath },
    b: { label: 'now', source: `${embedder.model.name} (${embedder.profile}, threads ${embedder.threads})` },
    pairs,
    tolerance,
    topK,
  });
  for (const result of report.pairs) {
    if (result.failures.length === 0) continue;
    const diagnosis = await diagnoseGoldenPair(golden, goldenPath, golden.images[result.a.index]!, inputs[result.a.index]!, embedder.inputShape);
    if (diagnosis !== undefined) result.diagnosis = diagnosis;
  }
  return { report, fresh, inputs };
}

// ---------------------------------------------------------------------------------------------
// Update

/** Returns the golden file with fresh embeddings and the current model, profile, image hashes and machine, and lines saying what moved. */
export async function updateGolden(golden: GoldenFile, goldenPath: string, embedder: Embedder, check: CheckResult, modelSpec: string, now = new Date()): Promise<{ golden: GoldenFile; changes: string[] }> {
  const changes: string[] = [];
  if (golden.model.sha256 !== embedder.model.sha256) changes.push(`model: ${golden.model.name} ${golden.model.sha256.slice(0, 12)} -> ${embedder.model.name} ${embedder.model.sha256.slice(0, 12)}`);
  if (golden.preprocessing.profile !== embedder.profile) changes.push(`preprocessing profile: ${golden.preprocessing.profile} -> ${embedder.profile}`);
  const folder = dirname(resolve(goldenPath));
  const images: GoldenImage[] = [];
  let moved = 0;
  for (const [index, image] of golden.images.entries()) {
    const embedding = check.fresh[index]!;
    const input = check.inputs[index]!;
    const sha256 = await sha256OfFile(resolve(folder, image.path));
    if (sha256 !== image.sha256) changes.push(`${image.path}: image sha256 ${image.sha256.slice(0, 12)} -> ${sha256.slice(0, 12)}`);
    const identical = embedding.length === image.embedding.length && embedding.every((value, i) => value === Math.fround(image.embedding[i]!));
    if (!identical) {
      moved += 1;
      const metrics = pairMetrics(image.embedding, embedding);
      changes.push(`${image.path}: moved: cosine ${formatNumber(metrics.cosine, 8)}, max abs ${formatNumber(metrics.maxAbs)}, l2 ${formatNumber(metrics.l2)}`);
    }
    const inputSha256 = tensorSha256(input);
    if (image.inputSha256 !== undefined && inputSha256 !== image.inputSha256) changes.push(`${image.path}: input tensor changed (preprocessing)`);
    if (golden.inputs !== undefined) await saveInput(resolve(dirname(resolve(goldenPath)), golden.inputs, `${image.path.replace(/\.\.\//g, '')}.npy`), input, embedder.inputShape);
    images.push({ path: image.path, sha256, dimensions: embedding.length, norm: Math.hypot(...embedding), inputSha256, embedding: Array.from(embedding) });
  }
  changes.push(`${moved} of ${golden.images.length} embeddings moved`);
  const updated: GoldenFile = {
    ...golden,
    created: now.toISOString(),
    embedImage: { version: packageVersion() },
    model: {
      name: embedder.model.name,
      sha256: embedder.model.sha256,
      source: await modelSource(goldenPath, modelSpec),
      method: embedder.method,
      inputShape: embedder.inputShape,
      outputShape: embedder.outputShape,
    },
    preprocessing: { profile: embedder.profile },
    machine: { arch: arch(), platform: platform(), cpu: cpuName(), threads: embedder.threads },
    images,
  };
  return { golden: updated, changes };
}
