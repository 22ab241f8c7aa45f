/** Loads the compiled Node-API addon and describes its raw interface. */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { EmbedImageError } from './errors.js';

export type NativeDType = 'float32' | 'float64' | 'int64' | 'int32' | 'int16' | 'int8' | 'uint8' | 'bool';

export interface NativeTensor {
  dtype: NativeDType;
  shape: number[];
  /** Row-major over `shape`; bool tensors use a Uint8Array of 0/1. */
  data: ArrayBufferView;
}

/** A method input or output: a tensor, an Int (number or bigint), a Double, a Bool, a String or None. */
export type NativeValue = NativeTensor | number | bigint | boolean | string | null;

export interface NativeValueMeta {
  /** 'tensor', 'int', 'double', 'bool', 'string', 'none', 'tensor_list', 'int_list', ... */
  kind: string;
  dtype?: string;
  shape?: number[];
  dimOrder?: number[];
  dynamism?: 'static' | 'dynamic_bound' | 'dynamic_unbound';
}

export interface NativeMethodMeta {
  name: string;
  inputs: NativeValueMeta[];
  outputs: NativeValueMeta[];
  /** Full operator names such as "aten::add.out", in program order, without duplicates. */
  operators: string[];
  /** Backend ids of the method's delegates, such as "XnnpackBackend". */
  backends: string[];
  instructionCount: number;
  valueCount: number;
  /** Planned arena sizes in bytes (memory ids 1..N). */
  plannedBufferSizes: number[];
  /** Reasons the method cannot run here (unknown operators, backends, dtypes); empty when runnable. */
  problems: { code: string; message: string }[];
}

export interface NativeLoadOptions {
  /** Load even when a method uses operators or backends the runtime lacks (for inspection). */
  allowUnsupported?: boolean;
  /** Worker threads for kernels and delegates; 0 means all cores. */
  threads?: number;
  /** Maximum instructions one call may execute before it fails with ERR_EXECUTION_LIMIT. */
  maxInstructions?: number;
  /** Maximum bytes of planned memory per method instance, and of workspace per delegate call. */
  maxMemory?: number;
}

/** One call's inputs, converted by prepareInputs() for executeBatch(); used once. */
export type NativePreparedInputs = { readonly __brand: 'NativePreparedInputs' };

export interface NativeProgram {
  methodNames(): string[];
  methodMeta(name: string): NativeMethodMeta;
  /** Converts and copies one call's inputs now; throws ERR_INVALID_INPUT for a value it cannot take. */
  prepareInputs(inputs: NativeValue[]): NativePreparedInputs;
  /** Runs several prepared calls together; each entry is that call's outputs or the Error it failed with. */
  executeBatch(method: string, calls: NativePreparedInputs[]): Promise<(NativeValue[] | Error)[]>;
  /** File format details: header, segments, sizes. */
  info(): NativeProgramInfo;
  dispose(): void;
}

export interface NativeProgramInfo {
  fileSize: number;
  schemaVersion: number;
  hasExtendedHeader: boolean;
  programSize: number;
  segmentBaseOffset: number;
  segmentDataSize: number;
  segments: { offset: number; size: number }[];
  constantStorage: 'segment' | 'inline' | 'none';
  namedDataKeys: string[];
  mapped: boolean;
}

export interface NativeAddon {
  loadProgram(source: string | Uint8Array, options: NativeLoadOptions): Promise<NativeProgram>;
  /** Full names of the operators the runtime implements. */
  kernels(): string[];
  /** Ids of the backends the runtime implements. */
  backends(): string[];
  /** Benchmark helper: median seconds of the backend's matrix product [m, k] x [n, k]^T on `threads`, through the BLAS or packed weights, timed after 0.2 s of warm-up. */
  benchmarkLinear(m: number, n: number, k: number, threads: number, repetitions: number, packed?: boolean): number;
  /** GFLOP/s of fused multiply-adds one thread reaches with this build's vectors (benchmark only). */
  fmaPeak(seconds?: number): number;
}

let cached: NativeAddon | undefined;

/** Returns the addon, loading build/Release/embed_image.node on first use. */
export function native(): NativeAddon {
  if (cached) return cached;
  const root = join(dirname(fileURLToPath(import.meta.url)), '..');
  const candidates = [join(root, 'build', 'Release', 'embed_image.node'), join(root, 'build', 'Debug', 'embed_image.node')];
  const path = candidates.find((candidate) => existsSync(candidate));
  if (!path) {
    throw new EmbedImageError(
      'ERR_ADDON_LOAD',
      `the native addon is not built (looked for ${candidates.join(' and ')}); run "npm run build:addon" in ${root}`,
    );
  }
  const require = createRequire(import.meta.url);
  try {
    cached = require(path) as NativeAddon;
  } catch (error) {
    throw new EmbedImageError('ERR_ADDON_LOAD', `cannot load the native addon ${path}: ${(error as Error).message}`, {
      cause: error,
    });
  }
  return cached;
}
