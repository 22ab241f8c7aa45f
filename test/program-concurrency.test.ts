// Concurrent use of one loaded program: calls running at the same time, dispose() while calls
// are in flight, and the thread count, on the committed CLIP fixture model. Expected values
// come from the float64 CLIP forward pass in test/tooling/clip-reference.ts.
import { readFileSync } from 'node:fs';
import path from 'node:path';

import { describe, expect, it } from 'vitest';

import { Program, type Tensor } from '../src/program.js';
import { expectErrorCode, maxAbsDifference, repoRoot } from './helpers.js';
import { buildClipProgram } from './tooling/clip-program.js';
import { clipReferenceEmbedding } from './tooling/clip-reference.js';
import { parseClipConfig, seededClipWeights, type ClipVisionConfig } from './tooling/clip-weights.js';

const modelPath = path.join(repoRoot, 'fixtures', 'models', 'clip-tiny.pte');
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
