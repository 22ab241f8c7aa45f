// Concurrent use of one loaded program: calls running at the same time (as batches, or one by
// one with maxBatch 1), dispose() while calls are in flight or waiting, and the thread count,
// on the committed CLIP fixture model. Expected values come from the float64 CLIP forward
// pass in test/tooling/clip-reference.ts.
import { readFileSync } from 'node:fs';
import path from 'node:path';

import { describe, expect, it } from 'vitest';

import { Program, type Tensor } from '../src/program.js';
import { expectErrorCode, maxAbsDifference, repoRoot } from './helpers.js';
import { buildClipProgram } from './tooling/clip-program.js';
import { clipReferenceEmbedding } from './tooling/clip-reference.js';
import { parseClipConfig, seededClipWeights, type ClipVisionConfig } from './tooling/clip-weights.js';

const modelPath = path.join(repoRoot, 'fixtures', 'models', 'clip-tiny.pte');
// y = x + 1 on float32 [3], one portable kernel (fixtures/models/README.md).
const addOnePath = path.join(repoRoot, 'fixtures', 'models', 'add-one.pte');
const config = parseClipConfig(JSON.parse(readFileSync(path.join(repoRoot, 'fixtures', 'models', 'clip-tiny.config.json'), 'utf8')));
// The fixture was written from seed 1 (fixtures/models/README.md).
const weights = seededClipWeights(config, 1);
const size = config.image_size;

function image(seed: number): Float32Array {
  const data = new Float32Array(3 * size * size);
  let state = seed >>> 0;
  for (let i = 0; i < data.length; i++) {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    data[i] = (state >>> 24) / 255;
  }
  return data;
}

function input(data: Float32Array): Tensor {
  return { dtype: 'float32', shape: [1, 3, size, size], data };
}

async function embed(program: Program, data: Float32Array): Promise<Float32Array> {
  const [output] = await program.execute('forward', [input(data)]);
  return (output as Tensor).data as Float32Array;
}

const images = [1, 2, 3, 4, 5, 6].map(image);
const references = images.map((pixels) => clipReferenceEmbedding(config, weights, pixels));

describe('program concurrency', () => {
  it('gives each concurrent call its own result', async () => {
    const program = await Program.load(modelPath, { threads: 2 });
    const results = await Promise.all(images.map((pixels) => embed(program, pixels)));
    program.dispose();
    results.forEach((result, i) => {
      expect(maxAbsDifference(result, references[i]!), `image ${i}`).toBeLessThanOrEqual(1e-5);
    });
  });

  it('matches sequential calls bit for bit', async () => {
    const program = await Program.load(modelPath, { threads: 2 });
    const concurrent = await Promise.all(images.map((pixels) => embed(program, pixels)));
    const sequential: Float32Array[] = [];
    for (const pixels of images) sequential.push(await embed(program, pixels));
    program.dispose();
    concurrent.forEach((result, i) => {
      expect(Array.from(result), `image ${i}`).toEqual(Array.from(sequential[i]!));
    });
  });

  it('finishes calls in flight after dispose', async () => {
    const program = await Program.load(modelPath);
    const pending = images.map((pixels) => embed(program, pixels));
    program.dispose();
    const results = await Promise.all(pending);
    results.forEach((result, i) => {
      expect(maxAbsDifference(result, references[i]!), `image ${i}`).toBeLessThanOrEqual(1e-5);
    });
  });

  it('rejects calls after dispose', async () => {
    const program = await Program.load(modelPath);
    program.dispose();
    await expectErrorCode(embed(program, images[0]!), 'ERR_DISPOSED');
  });

  it('gives batched calls the bits of calls run alone', async () => {
    // Wide enough that products use the packed kernel with several row blocks per call.
    const wide: ClipVisionConfig = { ...config, hidden_size: 256, intermediate_size: 1024, num_attention_heads: 4, projection_dim: 64 };
    const wideWeights = seededClipWeights(wide, 5);
    const bytes = buildClipProgram(wide, wideWeights).bytes;
    const batched = await Program.load(bytes, { threads: 2, maxBatch: 4 });
    const alone = await Program.load(bytes, { threads: 2, maxBatch: 1 });
    // Six calls with maxBatch 4: a first call alone, then batches of four and one.
    const together = await Promise.all(images.map((pixels) => embed(batched, pixels)));
    for (const [i, pixels] of images.entries()) {
      const single = await embed(alone, pixels);
      expect(maxAbsDifference(single, clipReferenceEmbedding(wide, wideWeights, pixels)), `image ${i} vs float64`).toBeLessThanOrEqual(1e-5);
      expect(Array.from(together[i]!), `image ${i}`).toEqual(Array.from(single));
    }
    batched.dispose();
    alone.dispose();
  });

  it('fails only the call with bad inputs in a batch', async () => {
    const program = await Program.load(modelPath, { maxBatch: 8 });
    const bad = { dtype: 'float32' as const, shape: [1, 3, size, size + 1], data: new Float32Array(3 * size * (size + 1)) };
    const calls = [
      embed(program, images[0]!),
      program.execute('forward', [bad]),
      embed(program, images[1]!),
      program.execute('forward', []),
      embed(program, images[2]!),
    ];
    const settled = await Promise.allSettled(calls);
    program.dispose();
    for (const [i, index] of [0, 2, 4].entries()) {
      const result = settled[index]!;
      expect(result.status, `call ${index}`).toBe('fulfilled');
      const embedding = (result as PromiseFulfilledResult<Float32Array>).value;
      expect(maxAbsDifference(embedding, references[i]!), `call ${index}`).toBeLessThanOrEqual(1e-5);
    }
    await expectErrorCode(calls[1]!, 'ERR_INVALID_INPUT');
    await expectErrorCode(calls[3]!, 'ERR_INVALID_INPUT');
  });

  it('finishes calls waiting for a batch after dispose', async () => {
    const program = await Program.load(modelPath, { maxBatch: 2 });
    const pending = [...images, ...images].map((pixels) => embed(program, pixels));
    program.dispose();
    await expectErrorCode(embed(program, images[0]!), 'ERR_DISPOSED');
    const results = await Promise.all(pending);
    results.forEach((result, i) => {
      expect(maxAbsDifference(result, references[i % images.length]!), `call ${i}`).toBeLessThanOrEqual(1e-5);
    });
  });

  it('keeps the inputs a waiting call was given', async () => {
    // A caller that refills one array for each call: the calls waiting for a batch must see
    // the values of their own moment.
    const program = await Program.load(addOnePath, { maxBatch: 8 });
    const buffer = new Float32Array(3);
    const pending: Promise<unknown[]>[] = [];
    for (let i = 1; i <= 5; i++) {
      buffer.fill(i);
      pending.push(program.execute('forward', [{ dtype: 'float32', shape: [3], data: buffer }]));
    }
    const results = await Promise.all(pending);
    program.dispose();
    results.forEach((outputs, i) => {
      expect(Array.from((outputs[0] as Tensor).data as Float32Array), `call ${i}`).toEqual([i + 2, i + 2, i + 2]);
    });
  });

  it('rejects unconvertible inputs alone and keeps serving', async () => {
    const program = await Program.load(addOnePath, { maxBatch: 8 });
    const good = () => program.execute('forward', [{ dtype: 'float32', shape: [3], data: new Float32Array([1, 2, 3]) }]);
    const bad: unknown[] = ['a string', {}, 10n ** 30n];
    const calls = [good(), ...bad.map((input) => program.execute('forward', [input as number])), good()];
    const settled = await Promise.allSettled(calls);
    expect(settled[0]!.status).toBe('fulfilled');
    expect(settled[settled.length - 1]!.status).toBe('fulfilled');
    for (const index of [1, 2, 3]) await expectErrorCode(calls[index]!, 'ERR_INVALID_INPUT');
    const [after] = await good();
    program.dispose();
    expect(Array.from((after as Tensor).data as Float32Array)).toEqual([2, 3, 4]);
  });

  it('rejects a maxBatch that is not an integer from 1 to 256', async () => {
    for (const maxBatch of [0, 1.5, 257, -1, Number.NaN]) {
      await expectErrorCode(Program.load(modelPath, { maxBatch }), 'ERR_INVALID_ARGUMENT');
    }
  });

  it('keeps calls apart when input memory is reused', async () => {
    // The addon reuses input memory from call to call only for inputs of 64 KiB or more. A
    // 160 x 160 image is 300 KiB, the fixture's 64 x 64 one 48 KiB.
    const large: ClipVisionConfig = { ...config, image_size: 160, patch_size: 32, num_hidden_layers: 1 };
    const largeWeights = seededClipWeights(large, 4);
    const pixels = [7, 8, 9, 10, 11].map((seed) => {
      const data = new Float32Array(3 * 160 * 160);
      let state = seed;
      for (let i = 0; i < data.length; i++) {
        state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
        data[i] = (state >>> 24) / 255;
      }
      return data;
    });
    const expected = pixels.map((data) => clipReferenceEmbedding(large, largeWeights, data));
    const program = await Program.load(buildClipProgram(large, largeWeights).bytes, { threads: 2, maxBatch: 3 });
    const run = async (index: number) => {
      const [output] = await program.execute('forward', [{ dtype: 'float32', shape: [1, 3, 160, 160], data: pixels[index]! }]);
      return { index, data: (output as Tensor).data as Float32Array };
    };
    // Waves of concurrent calls (batches of up to 3) in a new order each time, then calls one
    // at a time: each call's memory was another image's in the wave before.
    const results: { index: number; data: Float32Array }[] = [];
    for (let wave = 0; wave < 4; wave++) {
      const order = pixels.map((_, i) => (i * 2 + wave) % pixels.length);
      results.push(...(await Promise.all(order.map(run))));
    }
    for (let i = 0; i < 6; i++) results.push(await run((i * 3) % pixels.length));
    program.dispose();
    expect(results).toHaveLength(26);
    for (const [n, { index, data }] of results.entries()) {
      expect(maxAbsDifference(data, expected[index]!), `call ${n} (image ${index})`).toBeLessThanOrEqual(1e-5);
    }
  });

  it('reuses input memory after calls of another size', async () => {
    // A burst of calls whose inputs have another size (rejected by the method) must not leave
    // the pool full of buffers that no later call uses. Without reuse, each 588 KiB input
    // faults in about 150 fresh pages; with it, almost none.
    const large: ClipVisionConfig = { ...config, image_size: 224, patch_size: 32, num_hidden_layers: 1 };
    const program = await Program.load(buildClipProgram(large, seededClipWeights(large, 5)).bytes, { threads: 2 });
    const good: Tensor = { dtype: 'float32', shape: [1, 3, 224, 224], data: new Float32Array(3 * 224 * 224).fill(0.25) };
    const wrong: Tensor = { dtype: 'float32', shape: [1, 3, 224, 225], data: new Float32Array(3 * 224 * 225).fill(0.25) };
    const round = () => Promise.all(Array.from({ length: 8 }, () => program.execute('forward', [good])));
    await Promise.all(Array.from({ length: 40 }, () => program.execute('forward', [wrong]).catch(() => undefined)));
    await round();
    await round();
    const before = process.resourceUsage().minorPageFault;
    for (let i = 0; i < 10; i++) await round();
    const faultsPerCall = (process.resourceUsage().minorPageFault - before) / 80;
    program.dispose();
    expect(faultsPerCall).toBeLessThan(30);
  });

  it('gives the same bits on 1 and 2 threads', async () => {
    // Wide enough that matrix products are split across threads (the fixture's are too small).
    const wide: ClipVisionConfig = { ...config, hidden_size: 256, intermediate_size: 1024, num_attention_heads: 4, projection_dim: 64 };
    const wideWeights = seededClipWeights(wide, 3);
    const bytes = buildClipProgram(wide, wideWeights).bytes;
    const one = await Program.load(bytes, { threads: 1 });
    const two = await Program.load(bytes, { threads: 2 });
    for (const [i, pixels] of images.slice(0, 3).entries()) {
      const a = await embed(one, pixels);
      const b = await embed(two, pixels);
      expect(maxAbsDifference(b, clipReferenceEmbedding(wide, wideWeights, pixels)), `image ${i} vs float64`).toBeLessThanOrEqual(1e-5);
      expect(Array.from(a), `image ${i}`).toEqual(Array.from(b));
    }
    one.dispose();
    two.dispose();
  });
});
