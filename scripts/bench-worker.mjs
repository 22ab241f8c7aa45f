#!/usr/bin/env node
// One benchmark measurement in a fresh process, so that peak RSS and load time belong to it
// alone. Prints one JSON object on stdout. Used by scripts/bench.ts; not a public tool.
//
//   node scripts/bench-worker.mjs ei-latency MODEL.pte THREADS RUNS
//   node scripts/bench-worker.mjs ei-throughput MODEL.pte THREADS CONCURRENCY IMAGES
//   node scripts/bench-worker.mjs ei-load MODEL.pte
//   node scripts/bench-worker.mjs ort-latency MODEL.onnx THREADS RUNS
//   node scripts/bench-worker.mjs ort-batch MODEL.onnx THREADS BATCH RUNS
//   node scripts/bench-worker.mjs blas THREADS M,N,K[,packed] [M,N,K[,packed] ...]
//   node scripts/bench-worker.mjs peak THREADS
import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';

const [mode, ...args] = process.argv.slice(2);
const size = Number(process.env.EMBED_IMAGE_BENCH_SIZE ?? 224);

function image(seed) {
  // Deterministic pixels in [0, 1], like an RGB image divided by 255.
  const data = new Float32Array(3 * size * size);
  let state = seed >>> 0;
  for (let i = 0; i < data.length; i++) {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    data[i] = (state >>> 24) / 255;
  }
  return data;
}

// The middle value, or the lower of the two middle ones for an even count (as scripts/bench.ts).
function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor((sorted.length - 1) / 2)];
}

// Peak resident memory of this process. getrusage's maxRSS is no good here: Linux carries it
// over from the parent at exec, and the parent held the generated weights.
function peakRssMiB() {
  const status = readFileSync('/proc/self/status', 'utf8');
  const match = /VmHWM:\s+(\d+) kB/.exec(status);
  return match ? Number(match[1]) / 1024 : process.resourceUsage().maxRSS / 1024;
}

function report(result) {
  process.stdout.write(`${JSON.stringify({ ...result, maxRssMiB: peakRssMiB() })}\n`);
}

async function loadProgram(path, threads) {
  const { Program } = await import('../dist/index.js');
  const start = performance.now();
  const program = await Program.load(path, { threads });
  return { program, loadMs: performance.now() - start };
}

const tensor = (data) => ({ dtype: 'float32', shape: [1, 3, size, size], data });

if (mode === 'ei-load') {
  const first = await loadProgram(args[0], 0);
  first.program.dispose();
  const second = await loadProgram(args[0], 0);
  report({ coldOrFirstMs: first.loadMs, warmMs: second.loadMs });
} else if (mode === 'ei-latency') {
  const [path, threads, runs] = [args[0], Number(args[1]), Number(args[2])];
  const { program } = await loadProgram(path, threads);
  const input = tensor(image(1));
  let output;
  for (let i = 0; i < 3; i++) [output] = await program.execute('forward', [input]);
  const times = [];
  for (let i = 0; i < runs; i++) {
    const start = performance.now();
    [output] = await program.execute('forward', [input]);
    times.push(performance.now() - start);
  }
  report({ medianMs: median(times), minMs: Math.min(...times), embedding: Array.from(output.data) });
} else if (mode === 'ei-throughput') {
  const [path, threads, concurrency, images] = [args[0], Number(args[1]), Number(args[2]), Number(args[3])];
  const { program } = await loadProgram(path, threads);
  const inputs = Array.from({ length: concurrency }, (_, i) => tensor(image(i + 1)));
  await Promise.all(inputs.map((input) => program.execute('forward', [input])));
  let next = 0;
  const start = performance.now();
  await Promise.all(
    inputs.map(async (input) => {
      while (next < images) {
        next++;
        await program.execute('forward', [input]);
      }
    }),
  );
  const seconds = (performance.now() - start) / 1000;
  report({ imagesPerSecond: images / seconds, msPerImage: (seconds * 1000) / images });
} else if (mode === 'ort-latency' || mode === 'ort-batch') {
  const ort = await import('onnxruntime-node');
  const path = args[0];
  const threads = Number(args[1]);
  const batch = mode === 'ort-batch' ? Number(args[2]) : 1;
  const runs = Number(mode === 'ort-batch' ? args[3] : args[2]);
  const session = await ort.InferenceSession.create(path, {
    intraOpNumThreads: threads,
    interOpNumThreads: 1,
    executionMode: 'sequential',
    graphOptimizationLevel: 'all',
  });
  const data = new Float32Array(batch * 3 * size * size);
  for (let b = 0; b < batch; b++) data.set(image(b + 1), b * 3 * size * size);
  const feeds = { pixel_values: new ort.Tensor('float32', data, [batch, 3, size, size]) };
  let output;
  for (let i = 0; i < 3; i++) output = await session.run(feeds);
  const times = [];
  for (let i = 0; i < runs; i++) {
    const start = performance.now();
    output = await session.run(feeds);
    times.push(performance.now() - start);
  }
  const embeds = output.image_embeds.data;
  const dim = embeds.length / batch;
  // ort-batch's msPerImage is the whole time over every image, like ei-throughput's, so that a
  // slow batch counts on both sides. medianMs is the median batch (or call, for ort-latency).
  const totalMs = times.reduce((sum, time) => sum + time, 0);
  report({
    medianMs: median(times),
    msPerImage: mode === 'ort-batch' ? totalMs / (runs * batch) : median(times),
    embedding: Array.from(embeds.slice(0, dim)),
  });
} else if (mode === 'blas') {
  // Each product is M,N,K or M,N,K,packed: through OpenBLAS, or through weights packed at load.
  const { native } = await import('../dist/native.js');
  const threads = Number(args[0]);
  const products = args.slice(1).map((text) => text.split(','));
  const results = products.map(([m, n, k, packed]) => ({
    m: Number(m),
    n: Number(n),
    k: Number(k),
    seconds: native().benchmarkLinear(Number(m), Number(n), Number(k), threads, 10, packed === 'packed'),
  }));
  report({ products: results });
} else if (mode === 'peak') {
  // One FMA loop per thread at once, so the figure includes what running both cores costs.
  const threads = Number(args[0]);
  const { Worker } = await import('node:worker_threads');
  const nativeUrl = new URL('../dist/native.js', import.meta.url).href;
  const source = `const { native } = await import(${JSON.stringify(nativeUrl)});
    const { parentPort } = await import('node:worker_threads');
    parentPort.postMessage(native().fmaPeak(1));`;
  const rates = await Promise.all(
    Array.from({ length: threads }, () => new Promise((resolve, reject) => {
      const thread = new Worker(new URL(`data:text/javascript,${encodeURIComponent(source)}`));
      thread.once('message', resolve);
      thread.once('error', reject);
    })),
  );
  report({ gflopsPerThread: rates });
} else {
  process.stderr.write(`bench-worker: unknown mode ${mode}\n`);
  process.exit(2);
}
