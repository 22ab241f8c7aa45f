/**
 * Typed access to ExecuTorch programs (.pte files): load, inspect and execute methods.
 *
 * Execution runs on a worker thread, never on the JS thread. One Program may execute
 * concurrently. Calls of the same method that are waiting when the previous ones finish run
 * together as one batch (up to `maxBatch`). They step through the method side by side, each
 * with its own instance of the method's planned memory, so each matrix product with
 * constant weights reads the weights once for the whole batch. A lone call starts at once
 * and splits its loops over the program's threads. Outputs are bit for bit those of a call
 * run alone. dispose() is safe while calls run or wait: they finish, and the memory is
 * released after the last one.
 */
import { EmbedImageError, fromNativeError } from './errors.js';
import {
  native,
  type NativeDType,
  type NativeMethodMeta,
  type NativeProgram,
  type NativeProgramInfo,
  type NativeTensor,
  type NativePreparedInputs,
  type NativeValue,
} from './native.js';

export type DType = NativeDType;
export type TensorData = Float32Array | Float64Array | BigInt64Array | Int32Array | Int16Array | Int8Array | Uint8Array;

/** A tensor in row-major (contiguous) order over `shape`. Bool tensors hold 0/1 in a Uint8Array. */
export interface Tensor {
  dtype: DType;
  shape: number[];
  data: TensorData;
}

/** A method input or output: a tensor, an Int, a Double, a Bool, a String or None (null). */
export type Value = Tensor | number | bigint | boolean | string | null;

export type MethodMeta = NativeMethodMeta;
export type ProgramInfo = NativeProgramInfo;

export interface LoadOptions {
  /** Load even when a method needs operators or backends that this runtime lacks (default false). */
  allowUnsupported?: boolean;
  /** Worker threads for kernels and delegates; 0 (default) means all cores. */
  threads?: number;
  /** Instructions one call may execute before it fails with ERR_EXECUTION_LIMIT (default 10,000,000). */
  maxInstructions?: number;
  /**
   * Bytes of working memory one call may use: the planned memory of a method, and separately
   * the intermediates and scratch space of each delegate call (default 16 GiB). Larger needs
   * fail with ERR_OUT_OF_MEMORY instead of exhausting the machine.
   */
  maxMemory?: number;
  /**
   * Most calls of one method that run together as a batch (default 8). Larger batches raise
   * throughput on models whose weights exceed the CPU caches, at the cost of each call's
   * latency and of one method instance of memory per call. 1 runs each call on its own.
   */
  maxBatch?: number;
}

/** A call waiting for its batch. */
interface PendingCall {
  inputs: NativePreparedInputs;
  resolve: (outputs: Value[]) => void;
  reject: (error: unknown) => void;
}

/** The calls of one method: those waiting, and whether a batch is running. */
interface MethodQueue {
  waiting: PendingCall[];
  running: boolean;
}

const typedArrayForDType: Record<DType, new (length: number) => TensorData> = {
  float32: Float32Array,
  float64: Float64Array,
  int64: BigInt64Array,
  int32: Int32Array,
  int16: Int16Array,
  int8: Int8Array,
  uint8: Uint8Array,
  bool: Uint8Array,
};

/** Returns the TypedArray constructor for elements of `dtype`. */
export function typedArrayConstructor(dtype: DType): new (length: number) => TensorData {
  const constructor = typedArrayForDType[dtype];
  if (!constructor) throw new EmbedImageError('ERR_UNSUPPORTED_DTYPE', `unsupported dtype "${String(dtype)}"`);
  return constructor;
}

/** Checks that a tensor's data matches its dtype and shape; throws ERR_INVALID_INPUT otherwise. */
export function checkTensor(tensor: Tensor, label: string): void {
  const constructor = typedArrayForDType[tensor.dtype];
  if (!constructor) {
    throw new EmbedImageError('ERR_INVALID_INPUT', `${label}: unsupported dtype "${String(tensor.dtype)}"`);
  }
  if (!Array.isArray(tensor.shape) || tensor.shape.some((size) => !Number.isSafeInteger(size) || size < 0)) {
    throw new EmbedImageError('ERR_INVALID_INPUT', `${label}: shape must be an array of non-negative integers, got ${JSON.stringify(tensor.shape)}`);
  }
  if (!(tensor.data instanceof constructor)) {
    throw new EmbedImageError('ERR_INVALID_INPUT', `${label}: dtype ${tensor.dtype} needs a ${constructor.name}, got ${tensor.data?.constructor?.name ?? typeof tensor.data}`);
  }
  const count = tensor.shape.reduce((product, size) => product * size, 1);
  if (tensor.data.length !== count) {
    throw new EmbedImageError('ERR_INVALID_INPUT', `${label}: shape [${tensor.shape.join(', ')}] has ${count} elements but data has ${tensor.data.length}`);
  }
}

export function isTensor(value: unknown): value is Tensor {
  return typeof value === 'object' && value !== null && 'dtype' in value && 'shape' in value && 'data' in value;
}

export class Program {
  /** The file path, or "<buffer>" for a program loaded from memory. */
  readonly source: string;
  #native: NativeProgram | undefined;
  readonly #maxBatch: number;
  readonly #queues = new Map<string, MethodQueue>();
  /** Set by dispose() while batches still run or wait; the handle is released after them. */
  #disposing: NativeProgram | undefined;

  private constructor(source: string, handle: NativeProgram, maxBatch: number) {
    this.source = source;
    this.#native = handle;
    this.#maxBatch = maxBatch;
  }

  /** Loads a program from a .pte path or from bytes. Files are memory-mapped, and weights are used in place. */
  static async load(source: string | Uint8Array, options: LoadOptions = {}): Promise<Program> {
    const threads = options.threads ?? 0;
    if (!Number.isInteger(threads) || threads < 0 || threads > 1024) {
      throw new EmbedImageError('ERR_INVALID_ARGUMENT', `threads must be an integer from 0 (all cores) to 1024, got ${threads}`);
    }
    const maxInstructions = options.maxInstructions ?? 10_000_000;
    if (!Number.isSafeInteger(maxInstructions) || maxInstructions < 1) {
      throw new EmbedImageError('ERR_INVALID_ARGUMENT', `maxInstructions must be a positive integer, got ${maxInstructions}`);
    }
    const maxMemory = options.maxMemory ?? 16 * 2 ** 30;
    if (!Number.isSafeInteger(maxMemory) || maxMemory < 1) {
      throw new EmbedImageError('ERR_INVALID_ARGUMENT', `maxMemory must be a positive number of bytes, got ${maxMemory}`);
    }
    const maxBatch = options.maxBatch ?? 8;
    if (!Number.isInteger(maxBatch) || maxBatch < 1 || maxBatch > 256) {
      throw new EmbedImageError('ERR_INVALID_ARGUMENT', `maxBatch must be an integer from 1 to 256, got ${typeof maxBatch === 'string' ? JSON.stringify(maxBatch) : String(maxBatch)}`);
    }
    if (typeof source !== 'string' && !(source instanceof Uint8Array)) {
      throw new EmbedImageError('ERR_INVALID_ARGUMENT', 'source must be a file path or a Uint8Array/Buffer of .pte bytes');
    }
    try {
      const handle = await native().loadProgram(source, {
        allowUnsupported: options.allowUnsupported ?? false,
        threads,
        maxInstructions,
        maxMemory,
      });
      return new Program(typeof source === 'string' ? source : '<buffer>', handle, maxBatch);
    } catch (error) {
      throw fromNativeError(error);
    }
  }

  #handle(): NativeProgram {
    if (!this.#native) throw new EmbedImageError('ERR_DISPOSED', `program ${this.source} was disposed`);
    return this.#native;
  }

  /** Method names in file order. */
  methodNames(): string[] {
    return this.#handle().methodNames();
  }

  methodMeta(name: string): MethodMeta {
    try {
      return this.#handle().methodMeta(name);
    } catch (error) {
      throw fromNativeError(error);
    }
  }

  info(): ProgramInfo {
    return this.#handle().info();
  }

  /** Executes a method. Tensor outputs are fresh copies that stay valid after dispose(). */
  async execute(method: string, inputs: Value[]): Promise<Value[]> {
    if (typeof method !== 'string') throw new EmbedImageError('ERR_INVALID_ARGUMENT', 'method must be a string');
    if (!Array.isArray(inputs)) throw new EmbedImageError('ERR_INVALID_ARGUMENT', 'inputs must be an array');
    inputs.forEach((input, index) => {
      if (isTensor(input)) checkTensor(input, `method '${method}': input ${index}`);
    });
    const handle = this.#handle();
    // Converted and copied now: a caller may refill its arrays for the next call while this
    // one waits, and a bad input fails this call only.
    let prepared: NativePreparedInputs;
    try {
      prepared = handle.prepareInputs(inputs as NativeValue[]);
    } catch (error) {
      throw fromNativeError(error);
    }
    if (this.#maxBatch === 1) {
      let result: NativeValue[] | Error;
      try {
        [result] = (await handle.executeBatch(method, [prepared])) as [NativeValue[] | Error];
      } catch (error) {
        throw fromNativeError(error);
      }
      if (result instanceof Error) throw fromNativeError(result);
      return result as Value[];
    }
    let queue = this.#queues.get(method);
    if (!queue) {
      queue = { waiting: [], running: false };
      this.#queues.set(method, queue);
    }
    const outputs = new Promise<Value[]>((resolve, reject) => {
      queue.waiting.push({ inputs: prepared, resolve, reject });
    });
    if (!queue.running) void this.#runBatches(handle, method, queue);
    return outputs;
  }

  /** Runs the method's waiting calls in batches of up to maxBatch until none waits. */
  async #runBatches(handle: NativeProgram, method: string, queue: MethodQueue): Promise<void> {
    queue.running = true;
    try {
      while (queue.waiting.length > 0) {
        const batch = queue.waiting.splice(0, this.#maxBatch);
        try {
          const results = await handle.executeBatch(method, batch.map((call) => call.inputs));
          batch.forEach((call, index) => {
            const result = results[index];
            if (result instanceof Error) call.reject(fromNativeError(result));
            else call.resolve(result as Value[]);
          });
        } catch (error) {
          // The batch failed as a whole (out of memory, for example): so does each call in it.
          const failure = fromNativeError(error);
          for (const call of batch) call.reject(failure);
        }
        // Let the callers just resolved run first: a caller that embeds in a loop makes its
        // next call then, and it should join the next batch rather than wait for the one after.
        await new Promise((resolve) => setImmediate(resolve));
      }
    } finally {
      queue.running = false;
      this.#queues.delete(method);
      if (this.#disposing && [...this.#queues.values()].every((other) => !other.running)) {
        this.#disposing.dispose();
        this.#disposing = undefined;
      }
    }
  }

  /**
   * Releases the program. Calls already made finish first, including those waiting for a
   * batch; later calls fail with ERR_DISPOSED.
   */
  dispose(): void {
    const handle = this.#native;
    this.#native = undefined;
    if (!handle) return;
    if ([...this.#queues.values()].some((queue) => queue.running)) {
      this.#disposing = handle;
    } else {
      handle.dispose();
    }
  }
}

/** Full names of the operators this runtime implements, such as "aten::add.out". */
export function supportedOperators(): string[] {
  return native().kernels();
}

/** Ids of the delegate backends this runtime implements. */
export function supportedBackends(): string[] {
  return native().backends();
}

export type { NativeTensor };
