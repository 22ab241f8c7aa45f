/** Builds and runs one-operator programs for the portable kernel tests. */
import { Program, type Tensor, type Value } from '../../src/program.js';
import { ProgramBuilder, type MethodBuilder } from '../tooling/pte-writer.js';

/** Builds a program whose `forward` is defined by `define`, loads it and runs it once. */
export async function runProgram(define: (method: MethodBuilder) => void, inputs: Tensor[]): Promise<Value[]> {
  const builder = new ProgramBuilder();
  define(builder.method('forward'));
  const program = await Program.load(builder.build());
  return program.execute('forward', inputs);
}

/** Deterministic pseudo-random values in [-scale, scale), from a linear congruential generator. */
export function sampleValues(count: number, seed: number, scale = 1): number[] {
  let state = seed >>> 0;
  const values: number[] = [];
  for (let i = 0; i < count; i++) {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    values.push((state / 2 ** 32 - 0.5) * 2 * scale);
  }
  return values;
}

/** Rounds each value to float32, as the inputs reach the kernels. */
export function toFloat32(values: number[]): number[] {
  return Array.from(Float32Array.from(values));
}
