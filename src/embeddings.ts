/**
 * Image embeddings with the shape of react-native-executorch's `ImageEmbeddingsModule`, so
 * phone code ports: `load({ modelSource })`, `forward(imageSource)` resolving to a
 * Float32Array, and `delete()`. The model is any program whose `forward` method takes a
 * float32 tensor [1, 3, H, W] and returns a float32 tensor [1, D] (CLIP's image encoders
 * return unit-length vectors). The input size comes from the program itself.
 */
import { availableParallelism } from 'node:os';

import pLimit, { type LimitFunction } from 'p-limit';

import { EmbedImageError } from './errors.js';
import { resolveModel, type ModelSpec, type ResolveModelOptions, type ResolvedModel } from './models.js';
import { decodeImage, preprocess as preprocessPixels, type PreprocessProfile } from './preprocess.js';
import { Program, isTensor } from './program.js';
import { resolveImageSource, type DecodePath, type ImageSource, type RawPixels, type SourceKind, type SourceOptions } from './sources.js';

export type { ImageSource, RawPixels } from './sources.js';

/** The profile used when none is given: react-native-executorch up to 0.9. */
export const DEFAULT_PROFILE: PreprocessProfile = 'rne-legacy';

export interface ImageEmbeddingsLoadOptions {
  /** A .pte path, an http(s) or file URL, a known model name or a `{ modelSource }` constant. */
  modelSource: ModelSpec;
  /** Preprocessing profile (default 'rne-legacy'). */
  profile?: PreprocessProfile;
  /** Worker threads for kernels and delegates, where 0 (the default) means one per CPU core. */
  threads?: number;
  /** Most concurrent forward() calls that run as one batch (1 to 256, default 8; see Program.load). */
  maxBatch?: number;
  /** Options for finding or downloading the model (cache folder, offline mode and the like). */
  resolve?: ResolveModelOptions;
  /** Time and size limits for http(s) image sources. */
  sources?: SourceOptions;
}

/** The exact model input for one image, with what was done to produce it. */
export interface PreprocessedImage {
  /** Float32 [1, 3, H, W] input tensor data, channel planes R, G, B. */
  tensor: Float32Array;
  /** The image after resizing: uint8 RGB, H * W * 3 bytes in row-major HWC order. */
  resized: Uint8Array;
  width: number;
  height: number;
  /** Size of the decoded image before resizing. */
  original: { width: number; height: number };
  source: { kind: SourceKind; decodePath: DecodePath };
}

/** Options of forward() and preprocess() beyond react-native-executorch's signature. */
export interface ForwardOptions {
  /** Name of the image (a path or URL) for error messages, in place of the source's own label. */
  name?: string;
}

export interface PreprocessImageOptions extends ForwardOptions {
  width: number;
  height: number;
  /** Preprocessing profile (default 'rne-legacy'). */
  profile?: PreprocessProfile;
  /** Time and size limits for http(s) image sources. */
  sources?: SourceOptions;
}

export interface EmbedManyProgress {
  /** Sources finished so far, failed ones included. */
  done: number;
  failed: number;
  total: number;
}

export interface EmbedManyOptions {
  /**
   * Sources in flight at once (default: twice the model's maxBatch, 16 unless load() set it).
   * At most one per CPU core (2 to 8) is decoded at a time, whatever this is. The rest wait for
   * the model, which runs up to maxBatch of them as one batch. Twice maxBatch keeps the
   * batches full while others decode; with 2, the model mostly runs one image at a time.
   */
  concurrency?: number;
  /** Called after each source finishes, in completion order. */
  onProgress?: (progress: EmbedManyProgress) => void;
  /** Called with each result in input order, as soon as it and all results before it are done. */
  onResult?: (result: EmbedManyResult) => void | Promise<void>;
  /** Stops starting new sources when signalled. Sources not started are reported as failed. */
  signal?: AbortSignal;
}

export type EmbedManyResult =
  | { index: number; ok: true; embedding: Float32Array }
  | { index: number; ok: false; error: EmbedImageError };

/** Converts any thrown value to an EmbedImageError, keeping the original as the cause. */
export function asEmbedImageError(error: unknown): EmbedImageError {
  if (error instanceof EmbedImageError) return error;
  return new EmbedImageError('ERR_INTERNAL', error instanceof Error ? error.message : String(error), { cause: error });
}

/**
 * Resolves, decodes and preprocesses one image into the exact float32 input tensor for a
 * model of the given input size.
 */
export async function preprocessImage(imageSource: ImageSource, options: PreprocessImageOptions): Promise<PreprocessedImage> {
  return preprocessLimited(imageSource, options, (work) => work());
}

/**
 * preprocessImage() with the decoding and resizing run through `limit`, so that a caller can
 * bound how many full-size images are decoded at once. Reading or downloading the source is
 * not limited.
 */
async function preprocessLimited(
  imageSource: ImageSource,
  options: PreprocessImageOptions,
  limit: <T>(work: () => Promise<T>) => Promise<T>,
): Promise<PreprocessedImage> {
  const resolved = await resolveImageSource(imageSource, options.sources);
  const name = options.name ?? resolved.label;
  const { image, result } = await limit(async () => {
    const image = resolved.kind === 'pixels' ? resolved.pixels : { ...(await decodeImage(resolved.bytes, { name })), format: 'rgb' as const };
    const result = await preprocessPixels(image, { width: options.width, height: options.height, profile: options.profile ?? DEFAULT_PROFILE });
    return { image, result };
  });
  return {
    tensor: result.tensor,
    resized: result.resized,
    width: options.width,
    height: options.height,
    original: { width: image.width, height: image.height },
    source: { kind: resolved.kind, decodePath: resolved.decodePath },
  };
}

/**
 * Runs `task` on each item with at most `concurrency` at once, and calls `emit` with the
 * results in input order: each as soon as it and every result before it are done. When a
 * task or `emit` throws, no further item starts, and the returned promise rejects with that
 * error once the tasks already running have finished.
 */
export async function mapOrdered<T, R>(
  items: readonly T[],
  concurrency: number,
  task: (item: T, index: number) => Promise<R>,
  emit: (result: R, index: number) => void | Promise<void>,
): Promise<R[]> {
  if (!Number.isSafeInteger(concurrency) || concurrency < 1) {
    throw new EmbedImageError('ERR_INVALID_ARGUMENT', `concurrency must be a positive integer, got ${concurrency}`);
  }
  const results = new Array<R>(items.length);
  const done = new Array<boolean>(items.length).fill(false);
  let next = 0;
  let emitted = 0;
  // Emitting is chained so that an async `emit` never runs twice at once and keeps the order.
  let emitting = Promise.resolve();

  const flush = async (): Promise<void> => {
    while (emitted < items.length && done[emitted]) {
      const index = emitted;
      emitted += 1;
      await emit(results[index]!, index);
    }
  };

  let failed = false;
  const worker = async (): Promise<void> => {
    try {
      while (next < items.length && !failed) {
        const index = next;
        next += 1;
        results[index] = await task(items[index]!, index);
        done[index] = true;
        emitting = emitting.then(flush);
        await emitting;
      }
    } catch (error) {
      failed = true;
      throw error;
    }
  };

  // Every worker settles before this returns, so a caller that holds a resource for the whole
  // run (embedMany holds its model) can release it when this settles.
  const outcomes = await Promise.allSettled(Array.from({ length: Math.min(concurrency, items.length) }, worker));
  const failure = outcomes.find((outcome): outcome is PromiseRejectedResult => outcome.status === 'rejected');
  if (failure) throw failure.reason;
  await emitting;
  return results;
}

/**
 * Images decoded at once by one ImageEmbeddings: one per CPU core, at least 2 and at most 8.
 * Decoding and resizing run on libuv's and libvips's threads beside the model's. The bound
 * keeps the memory of full-size decoded images small while more images are in flight.
 */
const DECODE_CONCURRENCY = Math.max(2, Math.min(8, availableParallelism()));

/**
 * A loaded model with what its calls need. Each call takes the one loaded when it starts and
 * keeps it to the end, so delete() or another load() never changes a call midway. The program
 * is disposed once it is retired (replaced or deleted) and no call uses it.
 */
interface LoadedModel {
  program: Program;
  model: ResolvedModel;
  profile: PreprocessProfile;
  width: number;
  height: number;
  dimensions: number;
  sources: SourceOptions | undefined;
  maxBatch: number;
  /** Calls using the model now. */
  users: number;
  retired: boolean;
}

export class ImageEmbeddings {
  #loadedModel: LoadedModel | undefined;
  /** Counts load() and delete() calls; a load installs its model only if none came after it. */
  #generation = 0;
  #profile: PreprocessProfile = DEFAULT_PROFILE;
  #decodes: LimitFunction = pLimit(DECODE_CONCURRENCY);

  /**
   * Finds (or downloads) the model, loads it and checks that `forward` takes a float32
   * [1, 3, H, W] tensor and returns a float32 [1, D] tensor. `onDownloadProgress` receives the
   * downloaded fraction from 0 to 1, as in react-native-executorch. Loading again replaces the
   * model that was loaded before; calls already made finish with the model they started with.
   * A load() that is still running when load() or delete() is called again is superseded: it
   * resolves, but its model is released at once and never used.
   */
  async load(options: ImageEmbeddingsLoadOptions, onDownloadProgress?: (progress: number) => void): Promise<void> {
    if (typeof options !== 'object' || options === null || options.modelSource === undefined) {
      throw new EmbedImageError('ERR_INVALID_ARGUMENT', 'load() needs an object with a modelSource, such as { modelSource: CLIP_VIT_BASE_PATCH32_IMAGE }');
    }
    const resolveOptions: ResolveModelOptions = { ...options.resolve };
    if (onDownloadProgress) {
      const previous = resolveOptions.onProgress;
      resolveOptions.onProgress = (progress) => {
        previous?.(progress);
        if (progress.totalBytes) onDownloadProgress(progress.receivedBytes / progress.totalBytes);
      };
    }
    this.#generation += 1;
    const generation = this.#generation;
    const model = await resolveModel(options.modelSource, resolveOptions);
    const program = await Program.load(model.path, { threads: options.threads ?? 0, maxBatch: options.maxBatch });
    let shape: { width: number; height: number; dimensions: number };
    try {
      shape = checkEmbeddingProgram(program, model.name);
    } catch (error) {
      program.dispose();
      throw error;
    }
    if (generation !== this.#generation) {
      program.dispose();
      return;
    }
    const previous = this.#loadedModel;
    this.#loadedModel = {
      program,
      model,
      profile: options.profile ?? DEFAULT_PROFILE,
      ...shape,
      sources: options.sources,
      maxBatch: options.maxBatch ?? 8,
      users: 0,
      retired: false,
    };
    this.#profile = this.#loadedModel.profile;
    if (previous) retire(previous);
    onDownloadProgress?.(1);
  }

  #current(): LoadedModel {
    if (!this.#loadedModel) throw new EmbedImageError('ERR_DISPOSED', 'the image embeddings model is not loaded; call load() first');
    return this.#loadedModel;
  }

  /** Runs `work` with the model loaded now, which stays loaded until `work` settles. */
  async #withModel<T>(work: (loaded: LoadedModel) => Promise<T>): Promise<T> {
    const loaded = this.#current();
    loaded.users += 1;
    try {
      return await work(loaded);
    } finally {
      loaded.users -= 1;
      if (loaded.retired && loaded.users === 0) loaded.program.dispose();
    }
  }

  /** The loaded model: name, sha256 and local path. */
  get model(): { name: string; sha256: string; path: string } {
    const { model } = this.#current();
    return { name: model.name, sha256: model.sha256, path: model.path };
  }

  get profile(): PreprocessProfile {
    return this.#profile;
  }

  /** The model's input size in pixels. */
  get inputSize(): { width: number; height: number } {
    const { width, height } = this.#current();
    return { width, height };
  }

  /** Length of the embedding vectors. */
  get dimensions(): number {
    return this.#current().dimensions;
  }

  /** Returns the exact input tensor that forward() would pass to the model for this image. */
  async preprocess(imageSource: ImageSource, options: ForwardOptions = {}): Promise<PreprocessedImage> {
    return this.#withModel((loaded) => this.#preprocessWith(loaded, imageSource, options));
  }

  /** Embeds one image and resolves to its embedding (D float32 values). */
  async forward(imageSource: ImageSource, options: ForwardOptions = {}): Promise<Float32Array> {
    return this.#withModel((loaded) => this.#forwardWith(loaded, imageSource, options));
  }

  /** Runs the model on a float32 [1, 3, H, W] tensor from preprocess() and returns the embedding. */
  async forwardTensor(tensor: Float32Array): Promise<Float32Array> {
    return this.#withModel((loaded) => this.#runTensor(loaded, tensor));
  }

  #preprocessWith(loaded: LoadedModel, imageSource: ImageSource, options: ForwardOptions): Promise<PreprocessedImage> {
    const settings = { ...options, width: loaded.width, height: loaded.height, profile: loaded.profile, sources: loaded.sources };
    return preprocessLimited(imageSource, settings, this.#decodes);
  }

  async #forwardWith(loaded: LoadedModel, imageSource: ImageSource, options: ForwardOptions): Promise<Float32Array> {
    const input = await this.#preprocessWith(loaded, imageSource, options);
    return this.#runTensor(loaded, input.tensor);
  }

  async #runTensor(loaded: LoadedModel, tensor: Float32Array): Promise<Float32Array> {
    const expected = 3 * loaded.width * loaded.height;
    if (!(tensor instanceof Float32Array) || tensor.length !== expected) {
      throw new EmbedImageError('ERR_INVALID_INPUT', `the input tensor must be a Float32Array of 1 x 3 x ${loaded.height} x ${loaded.width} = ${expected} values`);
    }
    const [output] = await loaded.program.execute('forward', [{ dtype: 'float32', shape: [1, 3, loaded.height, loaded.width], data: tensor }]);
    if (!isTensor(output) || !(output.data instanceof Float32Array) || output.data.length !== loaded.dimensions) {
      throw new EmbedImageError('ERR_INTERNAL', `forward returned ${isTensor(output) ? `a ${output.dtype} tensor of shape [${output.shape.join(', ')}]` : typeof output}, not float32 [1, ${loaded.dimensions}]`);
    }
    return output.data;
  }

  /**
   * Embeds many images with up to `concurrency` at once. Resolves to one result per source,
   * in input order. A source that fails becomes a failed result and does not stop the others.
   * All sources use the model loaded when embedMany() is called, even if delete() or load()
   * comes in between.
   */
  async embedMany(sources: readonly ImageSource[], options: EmbedManyOptions = {}): Promise<EmbedManyResult[]> {
    return this.#withModel((loaded) => {
      const progress: EmbedManyProgress = { done: 0, failed: 0, total: sources.length };
      const task = async (source: ImageSource, index: number): Promise<EmbedManyResult> => {
        let result: EmbedManyResult;
        try {
          if (options.signal?.aborted) throw new EmbedImageError('ERR_INVALID_ARGUMENT', 'the signal aborted the batch before this image was started');
          result = { index, ok: true, embedding: await this.#forwardWith(loaded, source, {}) };
        } catch (error) {
          result = { index, ok: false, error: asEmbedImageError(error) };
          progress.failed += 1;
        }
        progress.done += 1;
        options.onProgress?.({ ...progress });
        return result;
      };
      return mapOrdered(sources, options.concurrency ?? 2 * loaded.maxBatch, task, (result) => options.onResult?.(result));
    });
  }

  /** Releases the model. Calls in flight finish first, and later calls fail with ERR_DISPOSED. */
  delete(): void {
    this.#generation += 1;
    if (this.#loadedModel) retire(this.#loadedModel);
    this.#loadedModel = undefined;
  }
}

/** Marks a replaced or deleted model, and disposes its program now if no call uses it. */
function retire(loaded: LoadedModel): void {
  loaded.retired = true;
  if (loaded.users === 0) loaded.program.dispose();
}

/** Checks the forward method's signature and returns the input size and embedding length. */
function checkEmbeddingProgram(program: Program, name: string): { width: number; height: number; dimensions: number } {
  if (!program.methodNames().includes('forward')) {
    throw new EmbedImageError('ERR_METHOD_NOT_FOUND', `${name} has no "forward" method, so it is not an image embedding model`);
  }
  const meta = program.methodMeta('forward');
  const input = meta.inputs[0];
  const output = meta.outputs[0];
  const inputShape = input?.shape ?? [];
  const outputShape = output?.shape ?? [];
  const describe = (value: typeof input): string => (value?.kind === 'tensor' ? `${value.dtype} [${(value.shape ?? []).join(', ')}]` : (value?.kind ?? 'absent'));

  const imageInput = input?.kind === 'tensor' && input.dtype === 'float32' && inputShape.length === 4 && inputShape[0] === 1 && inputShape[1] === 3;
  if (meta.inputs.length !== 1 || !imageInput) {
    throw new EmbedImageError('ERR_INVALID_INPUT', `${name} is not an image embedding model: forward must take one float32 tensor [1, 3, H, W], but its input 0 is ${describe(input)} (${meta.inputs.length} inputs)`);
  }
  const vectorOutput = output?.kind === 'tensor' && output.dtype === 'float32' && outputShape.length === 2 && outputShape[0] === 1;
  if (!vectorOutput) {
    throw new EmbedImageError('ERR_INVALID_INPUT', `${name} is not an image embedding model: forward must return a float32 tensor [1, D], but its output 0 is ${describe(output)}`);
  }
  return { height: inputShape[2]!, width: inputShape[3]!, dimensions: outputShape[1]! };
}
