// The addon in worker threads: each thread's environment has its own NativeProgram class, and a
// worker that ends, or is terminated while its calls run, leaves the process running. Each case
// runs in a child process, so that a crash fails the test instead of ending the test runner.
// Embeddings are compared with the float64 CLIP forward pass in test/tooling/clip-reference.ts.
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

import { describe, expect, it } from 'vitest';

import { maxAbsDifference, repoRoot } from './helpers.js';
import { clipReferenceEmbedding } from './tooling/clip-reference.js';
import { parseClipConfig, seededClipWeights } from './tooling/clip-weights.js';

const modelPath = path.join(repoRoot, 'fixtures', 'models', 'clip-tiny.pte');
const config = parseClipConfig(JSON.parse(readFileSync(path.join(repoRoot, 'fixtures', 'models', 'clip-tiny.config.json'), 'utf8')));
const size = config.image_size;
const expected = clipReferenceEmbedding(config, seededClipWeights(config, 1), new Float32Array(3 * size * size).fill(0.5));
const distUrl = pathToFileURL(path.join(repoRoot, 'dist', 'index.js')).href;

// Module code shared by the main script and the worker: embed() runs the fixture on a gray image.
const embedSource = `
import { Program } from ${JSON.stringify(distUrl)};
async function embed(threads) {
  const program = await Program.load(${JSON.stringify(modelPath)}, { threads });
  const [output] = await program.execute('forward', [{ dtype: 'float32', shape: [1, 3, ${size}, ${size}], data: new Float32Array(${3 * size * size}).fill(0.5) }]);
  program.dispose();
  return Array.from(output.data);
}
`;

/** Runs `main` (an ES module body after embedSource) in a child process; returns its status and the JSON lines it printed. */
function runChild(main: string): { status: number | null; signal: NodeJS.Signals | null; lines: unknown[]; stderr: string } {
  const result = spawnSync(process.execPath, ['--input-type=module', '-e', `${embedSource}\n${main}`], { encoding: 'utf8', timeout: 120_000 });
  const lines = result.stdout
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as unknown);
  return { status: result.status, signal: result.signal, lines, stderr: result.stderr };
}

function expectCleanExit(child: { status: number | null; stderr: string }): void {
  expect(child.stderr).toBe('');
  expect(child.status).toBe(0);
}

/** Checks that the child printed `count` embeddings, each the reference one. */
function expectReferenceLines(lines: unknown[], count: number): void {
  expect(lines).toHaveLength(count);
  for (const line of lines as { where: string; embedding: number[] }[]) {
    expect(maxAbsDifference(Float32Array.from(line.embedding), expected), line.where).toBeLessThanOrEqual(1e-5);
  }
}

const workerOf = (body: string) => `new Worker(${JSON.stringify(`${embedSource}\nimport { parentPort } from 'node:worker_threads';\n${body}`)}, { eval: true })`;

describe('addon in worker threads', () => {
  it('loads again after a worker ends', () => {
    const child = runChild(`
import { Worker } from 'node:worker_threads';
console.log(JSON.stringify({ where: 'main before', embedding: await embed(1) }));
const worker = ${workerOf("parentPort.postMessage(await embed(1));")};
const fromWorker = await new Promise((resolve, reject) => { worker.once('message', resolve); worker.once('error', reject); });
await new Promise((resolve) => worker.once('exit', resolve));
console.log(JSON.stringify({ where: 'worker', embedding: fromWorker }));
console.log(JSON.stringify({ where: 'main after', embedding: await embed(2) }));
`);
    expectCleanExit(child);
    expectReferenceLines(child.lines, 3);
  });

  it('loads in main while a worker holds the addon', () => {
    // The worker loads the addon after the main thread did, and stays alive.
    const child = runChild(`
import { Worker } from 'node:worker_threads';
console.log(JSON.stringify({ where: 'main before', embedding: await embed(1) }));
const worker = ${workerOf("await embed(1); parentPort.postMessage('ready'); await new Promise(() => {});")};
await new Promise((resolve) => worker.once('message', resolve));
console.log(JSON.stringify({ where: 'main during', embedding: await embed(2) }));
await worker.terminate();
`);
    expectCleanExit(child);
    expectReferenceLines(child.lines, 2);
  });

  it('survives terminating a worker with calls in flight', () => {
    const child = runChild(`
import { Worker } from 'node:worker_threads';
for (let i = 0; i < 6; i++) {
  const worker = ${workerOf(`
const program = await Program.load(${JSON.stringify(modelPath)}, { threads: 2 });
const input = { dtype: 'float32', shape: [1, 3, ${size}, ${size}], data: new Float32Array(${3 * size * size}).fill(0.5) };
const calls = Array.from({ length: 200 }, () => program.execute('forward', [input]));
parentPort.postMessage('started');
await Promise.all(calls);`)};
  await new Promise((resolve) => worker.once('message', resolve));
  await new Promise((resolve) => setTimeout(resolve, 2 + i));
  await worker.terminate();
}
console.log(JSON.stringify({ where: 'main', embedding: await embed(2) }));
`);
    expect(child.signal).toBeNull();
    expect(child.status).toBe(0);
    expectReferenceLines(child.lines, 1);
  });

  it('survives workers terminated at random moments', () => {
    // Workers end while they load the addon, load a program, or run and dispose it, so that
    // Node-API calls fail inside module setup and inside NativeProgram methods too.
    const child = runChild(`
import { Worker } from 'node:worker_threads';
for (let round = 0; round < 30; round++) {
  const workers = Array.from({ length: 4 }, (_, i) => ${workerOf(`
for (;;) {
  const program = await Program.load(${JSON.stringify(modelPath)}, { threads: 1 });
  const input = { dtype: 'float32', shape: [1, 3, ${size}, ${size}], data: new Float32Array(${3 * size * size}).fill(0.5) };
  await Promise.all(Array.from({ length: 8 }, () => program.execute('forward', [input])));
  program.dispose();
}`)});
  await new Promise((resolve) => setTimeout(resolve, 5 + Math.random() * 150));
  await Promise.all(workers.map((worker) => worker.terminate()));
}
console.log(JSON.stringify({ where: 'main', embedding: await embed(2) }));
`);
    expect(child.signal).toBeNull();
    expect(child.stderr).toBe('');
    expect(child.status).toBe(0);
    expectReferenceLines(child.lines, 1);
  }, 120_000);
});
