/**
 * `npm run bench`: measures the full CLIP ViT-B/32 image encoder (written from seeded
 * weights by the project's own generator) in embed-image and, on the same weights and in the
 * same run, in onnxruntime-node through an ONNX twin of the model. Every measurement runs in
 * a fresh child process (scripts/bench-worker.mjs) so peak RSS belongs to it alone. Prints a
 * Markdown report; record it in docs/benchmarks.md with the machine and the command.
 *
 *   npm run bench [-- --runs N] [-- --images N] [-- --rounds N] [-- --small] [-- --prepare]
 *
 * USAGE below lists what each option sets.
 *
 * The throughput comparison runs in --rounds rounds of one embed-image process and one
 * onnxruntime process, each timing --images images from first to last (onnxruntime in
 * batches of 8). The rounds alternate the two, so a slow spell of this shared machine hits
 * both sides, and each side's figure is its median round.
 * --small uses a 2-layer model of the same width, for a quick check of the tooling.
 * --prepare writes the two model files and prints their paths, without measuring. They live
 * in node_modules/.cache/embed-image-bench/, which a rebuild of the addon does not clear.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, totalmem } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

import { buildClipOnnx } from '../test/tooling/clip-onnx.js';
import { buildClipProgram } from '../test/tooling/clip-program.js';
import { clipGeometry, parseClipConfig, seededClipWeights, type ClipVisionConfig } from '../test/tooling/clip-weights.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const USAGE = `Usage: npm run bench [-- options]

Measures the CLIP ViT-B/32 image encoder (seeded weights) in embed-image and in
onnxruntime-node, and prints a Markdown report for docs/benchmarks.md.

Options:
  --runs N     calls per latency measurement, after 3 warm-up calls (default 20)
  --images N   images per throughput round, a multiple of 8 (default 96)
  --rounds N   alternated throughput rounds per runtime; each gives its median (default 5)
  --small      a 2-layer model of the same width, to check the tooling quickly
  --prepare    write the two model files and print their paths, without measuring
  --help       print this help
`;

function usageError(message: string): never {
  process.stderr.write(`bench: ${message}\nRun "npm run bench -- --help" for the options.\n`);
  process.exit(2);
}

function parseBenchArgs() {
  try {
    return parseArgs({
      options: {
        runs: { type: 'string', default: '20' },
        images: { type: 'string', default: '96' },
        rounds: { type: 'string', default: '5' },
        small: { type: 'boolean', default: false },
        prepare: { type: 'boolean', default: false },
        help: { type: 'boolean', default: false },
      },
      strict: true,
      allowPositionals: false,
    });
  } catch (error) {
    return usageError((error as Error).message);
  }
}
const { values } = parseBenchArgs();
if (values.help) {
  process.stdout.write(USAGE);
  process.exit(0);
}
const runs = Number(values.runs);
// Concurrent calls in the throughput run: as many as onnxruntime's batch, so that the
// runtime can batch them (maxBatch 8, the default).
const concurrentCalls = 8;
const images = Number(values.images);
const rounds = Number(values.rounds);
for (const [name, value] of [['runs', runs], ['images', images], ['rounds', rounds]] as const) {
  if (!Number.isInteger(value) || value < 1) {
    usageError(`invalid --${name} ${JSON.stringify(values[name])}: pass a whole number of at least 1`);
  }
}
// Both runtimes take the same images, onnxruntime in whole batches of 8.
if (images % concurrentCalls !== 0) usageError(`invalid --images ${images}: pass a multiple of ${concurrentCalls}, the batch size`);

/** Returns the middle value of `values` (the lower of the two middle ones for an even count). */
function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor((sorted.length - 1) / 2)]!;
}

// CLIP ViT-B/32 (the vision part of openai/clip-vit-base-patch32's config), as
// react-native-executorch's CLIP_VIT_BASE_PATCH32_IMAGE; --small keeps 2 of its 12 layers.
const fullConfig = parseClipConfig(JSON.parse(readFileSync(join(root, 'fixtures', 'models', 'clip-vit-b32.config.json'), 'utf8')));
const config: ClipVisionConfig = { ...fullConfig, num_hidden_layers: values.small ? 2 : fullConfig.num_hidden_layers };
const seed = 1;

function prepareModels(): { pte: string; onnx: string } {
  const folder = join(root, 'node_modules', '.cache', 'embed-image-bench');
  mkdirSync(folder, { recursive: true });
  const stem = join(folder, `clip-vit-b32-${config.num_hidden_layers}l-seed${seed}`);
  const pte = `${stem}.pte`;
  const onnx = `${stem}.onnx`;
  const stamp = `${stem}.json`;
  const description = JSON.stringify({ config, seed, generator: statSync(join(root, 'test/tooling/clip-program.ts')).mtimeMs });
  if (existsSync(pte) && existsSync(onnx) && existsSync(stamp) && readFileSync(stamp, 'utf8') === description) return { pte, onnx };

  process.stderr.write(`bench: writing ${pte} and ${onnx} from seeded weights (once)...\n`);
  const weights = seededClipWeights(config, seed);
  writeFileSync(pte, buildClipProgram(config, weights).bytes);
  writeFileSync(onnx, buildClipOnnx(config, weights));
  writeFileSync(stamp, description);
  return { pte, onnx };
}

interface WorkerResult {
  maxRssMiB: number;
  [key: string]: unknown;
}

function worker(...args: (string | number)[]): WorkerResult {
  const result = spawnSync(process.execPath, [join(root, 'scripts', 'bench-worker.mjs'), ...args.map(String)], {
    encoding: 'utf8',
    maxBuffer: 64 * 1024 * 1024,
  });
  if (result.status !== 0) throw new Error(`bench worker ${args.join(' ')} failed:\n${result.stderr}`);
  return JSON.parse(result.stdout.trim().split('\n').pop()!) as WorkerResult;
}

function cosine(a: number[], b: number[]): number {
  let dot = 0;
  let na = 0;
  let nb = 0;
  for (let i = 0; i < a.length; i++) {
    dot += a[i]! * b[i]!;
    na += a[i]! * a[i]!;
    nb += b[i]! * b[i]!;
  }
  return dot / Math.sqrt(na * nb);
}

// The matrix products of one image, as [m, n, k] with their count; `weights` marks the linear
// and convolution products, whose weights the backend packs at load.
function matrixProducts(): { shape: [number, number, number]; count: number; weights: boolean }[] {
  const { patches, sequence, headDim } = clipGeometry(config);
  const d = config.hidden_size;
  const patchK = config.num_channels * config.patch_size * config.patch_size;
  const layers = config.num_hidden_layers;
  const heads = config.num_attention_heads;
  return [
    { shape: [patches, d, patchK], count: 1, weights: true },
    { shape: [sequence, d, d], count: 4 * layers, weights: true },
    { shape: [sequence, config.intermediate_size, d], count: layers, weights: true },
    { shape: [sequence, d, config.intermediate_size], count: layers, weights: true },
    { shape: [sequence, sequence, headDim], count: heads * layers, weights: false },
    { shape: [sequence, headDim, sequence], count: heads * layers, weights: false },
    { shape: [1, config.projection_dim, d], count: 1, weights: true },
  ];
}

function main(): void {
  // One-minute load average before measuring, for the report. It lags, and commands run just
  // before the bench raise it, so the warnings below rest on what the measurements show.
  const startLoad = loadavg()[0] ?? 0;
  const { pte, onnx } = prepareModels();
  if (values.prepare) {
    process.stdout.write(`${pte}\n${onnx}\n`);
    return;
  }
  const modelMiB = statSync(pte).size / 2 ** 20;
  const products = matrixProducts();
  const flops = products.reduce((sum, p) => sum + 2 * p.shape[0] * p.shape[1] * p.shape[2] * p.count, 0);
  // Only the class token leaves the last layer, so its MLP runs for one token of `sequence`.
  const { sequence } = clipGeometry(config);
  const skippedFlops = 2 * 2 * (sequence - 1) * config.hidden_size * config.intermediate_size;

  const load = worker('ei-load', pte);
  const ei1 = worker('ei-latency', pte, 1, runs);
  const ei2 = worker('ei-latency', pte, 2, runs);
  const ort1 = worker('ort-latency', onnx, 1, runs);
  const ort2 = worker('ort-latency', onnx, 2, runs);
  const eiRounds: WorkerResult[] = [];
  const ortRounds: WorkerResult[] = [];
  for (let round = 0; round < rounds; round++) {
    eiRounds.push(worker('ei-throughput', pte, 2, concurrentCalls, images));
    // As many images as embed-image's round, in batches of 8.
    ortRounds.push(worker('ort-batch', onnx, 2, 8, images / 8));
  }
  const eiRates = eiRounds.map((result) => result.imagesPerSecond as number);
  const ortRates = ortRounds.map((result) => 1000 / (result.msPerImage as number));
  const eiThroughput = eiRounds[eiRates.indexOf(median(eiRates))]!;
  const ortBatch = ortRounds[ortRates.indexOf(median(ortRates))]!;
  const blasArgs = products.map((p) => p.shape.join(','));
  const backendArgs = products.map((p) => `${p.shape.join(',')}${p.weights ? ',packed' : ''}`);
  const blas1 = worker('blas', 1, ...blasArgs);
  const blas2 = worker('blas', 2, ...blasArgs);
  const backend1 = worker('blas', 1, ...backendArgs);
  const backend2 = worker('blas', 2, ...backendArgs);
  const peak = worker('blas', 1, '400,3072,768');
  const fma = worker('peak', 2);

  const gemmMs = (result: WorkerResult) =>
    (result.products as { seconds: number }[]).reduce((sum, item, i) => sum + item.seconds * 1000 * products[i]!.count, 0);
  const peakGflops = (2 * 400 * 3072 * 768) / ((peak.products as { seconds: number }[])[0]!.seconds * 1e9);
  const ms = (value: unknown) => (value as number).toFixed(1);
  const ratio = (a: number, b: number) => (a / b).toFixed(2);
  const ortThroughput = median(ortRates);
  // Fraction of the FMA peak that a rate of `imagesPerSecond` means for the matrix products.
  const fmaRates = fma.gflopsPerThread as number[];
  const peakOf = (threads: number) => fmaRates.slice(0, threads).reduce((sum, rate) => sum + rate, 0);
  const ofPeak = (imagesPerSecond: number, threads: number, flopsPerImage: number) =>
    `${((flopsPerImage * imagesPerSecond) / 1e9).toFixed(0)} GFLOP/s, ${((100 * flopsPerImage * imagesPerSecond) / 1e9 / peakOf(threads)).toFixed(0)} %`;
  // embed-image computes the products minus those it skips; onnxruntime computes them all.
  const eiFlops = flops - skippedFlops;
  // GFLOP/s of embed-image's products for one image on 2 threads.
  const eiLatencyRate = eiFlops / ((ei2.medianMs as number) * 1e6);
  const cpu = cpus()[0]?.model ?? 'unknown CPU';
  const commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: root, encoding: 'utf8' }).trim();

  // The targets are set for the 12-layer model. A 2-layer one skips a much larger share of its
  // work (the last layer's MLP for all tokens but one), so its ratios do not compare.
  const targetNote = values.small ? ', for the 12-layer model only' : '';
  const verdict = (met: boolean): string => {
    if (values.small) return '';
    return met ? ', met' : ', missed';
  };
  const lines = [
    `### ${config.num_hidden_layers === 12 ? 'CLIP ViT-B/32' : `CLIP ViT-B/32 geometry, ${config.num_hidden_layers} layers`}, fp32, seeded weights (${new Date().toISOString().slice(0, 10)}, commit ${commit})`,
    '',
    `Machine: ${cpu}, ${cpus().length} cores, ${(totalmem() / 2 ** 30).toFixed(0)} GiB. Command: \`npm run bench${process.argv.length > 2 ? ` -- ${process.argv.slice(2).join(' ')}` : ''}\` (runs ${runs}, images ${images}, rounds ${rounds}). Load average ${startLoad.toFixed(2)} at the start. Model file ${modelMiB.toFixed(0)} MiB, ${(flops / 1e9).toFixed(2)} GFLOP per image in matrix products.`,
    '',
    '| measurement | embed-image | onnxruntime-node | ratio (embed-image / ORT) |',
    '| --- | --- | --- | --- |',
    `| latency, 1 image, 1 thread (median ms) | ${ms(ei1.medianMs)} | ${ms(ort1.medianMs)} | ${ratio(ei1.medianMs as number, ort1.medianMs as number)} |`,
    `| latency, 1 image, 2 threads (median ms) | ${ms(ei2.medianMs)} | ${ms(ort2.medianMs)} | ${ratio(ei2.medianMs as number, ort2.medianMs as number)} (target ≤ 1.00${targetNote}${verdict(ei2.medianMs as number <= (ort2.medianMs as number))}) |`,
    `| throughput, 2 threads (images/s) | ${(eiThroughput.imagesPerSecond as number).toFixed(2)} (${concurrentCalls} concurrent calls, batched) | ${ortThroughput.toFixed(2)} (batch 8) | ${ratio(eiThroughput.imagesPerSecond as number, ortThroughput)} (target ≥ 1.10${targetNote}${verdict((eiThroughput.imagesPerSecond as number) >= 1.1 * ortThroughput)}) |`,
    `| matrix-product rate, 1 image, 2 threads (share of FMA peak) | ${ofPeak(1000 / (ei2.medianMs as number), 2, eiFlops)} | ${ofPeak(1000 / (ort2.medianMs as number), 2, flops)} | |`,
    `| matrix-product rate, throughput (share of FMA peak) | ${ofPeak(eiThroughput.imagesPerSecond as number, 2, eiFlops)} | ${ofPeak(ortThroughput, 2, flops)} | |`,
    `| peak RSS, 2 threads (MiB) | ${ms(ei2.maxRssMiB)} (model + ${ms(ei2.maxRssMiB - modelMiB)}) | ${ms(ort2.maxRssMiB)} (model + ${ms(ort2.maxRssMiB - modelMiB)}) | target: model + 150${verdict(ei2.maxRssMiB - modelMiB <= 150)} |`,
    `| peak RSS, throughput run (MiB) | ${ms(eiThroughput.maxRssMiB)} (model + ${ms((eiThroughput.maxRssMiB as number) - modelMiB)}) | ${ms(ortBatch.maxRssMiB)} (model + ${ms((ortBatch.maxRssMiB as number) - modelMiB)}) | |`,
    `| load time, warm page cache (ms) | ${ms(load.warmMs)} | | target < 1000${verdict((load.warmMs as number) < 1000)} |`,
    '',
    `Throughput rounds, alternated (images/s): embed-image ${eiRates.map((rate) => rate.toFixed(2)).join(', ')}; onnxruntime ${ortRates.map((rate) => rate.toFixed(2)).join(', ')}. The table gives each side's median round.`,
    '',
    `Cosine between the two runtimes' embeddings of the same image: ${cosine(ei2.embedding as number[], ort2.embedding as number[]).toFixed(9)}.`,
    '',
    `FMA peak (one loop of independent fused multiply-adds per thread, both threads at once): ${fmaRates.map((rate) => rate.toFixed(0)).join(' + ')} GFLOP/s. The rate rows count only matrix products, over the whole time of a call: the ${(flops / 1e9).toFixed(2)} GFLOP per image that onnxruntime computes, and for embed-image ${(eiFlops / 1e9).toFixed(2)} GFLOP, because it skips ${(skippedFlops / 1e9).toFixed(2)} GFLOP (the last layer's MLP for the tokens that no output reads).`,
    '',
    `Roofline (each product shape timed alone, repeated after 0.2 s of warm-up, so its weights come from the caches, which is not how the model runs): one image's matrix products alone take ${gemmMs(blas1).toFixed(1)} ms on 1 thread and ${gemmMs(blas2).toFixed(1)} ms on 2 threads in OpenBLAS, and ${gemmMs(backend1).toFixed(1)} ms and ${gemmMs(backend2).toFixed(1)} ms in the backend's path (weights packed at load, attention products in OpenBLAS); that path is ${((100 * gemmMs(backend2)) / (ei2.medianMs as number)).toFixed(0)} % of embed-image's 2-thread latency. OpenBLAS runs a large product (400×3072×768) at ${peakGflops.toFixed(0)} GFLOP/s on one core. The whole embed-image model runs its products at ${eiLatencyRate.toFixed(0)} GFLOP/s on 2 threads, ${(eiLatencyRate / (2 * peakGflops)).toFixed(2)} times two cores at OpenBLAS's rate${eiLatencyRate > 2 * peakGflops ? ': its packed kernel is faster than this OpenBLAS build on this CPU' : ''}.`,
  ];

  // Figures that a busy machine distorts. Each check names what it saw, so that a reader of
  // the report runs it again rather than trusting it.
  const warnings: string[] = [];
  const spread = (rates: number[]) => Math.max(...rates) / Math.min(...rates);
  if (spread(eiRates) > 1.2 || spread(ortRates) > 1.2) {
    warnings.push(`throughput rounds differ by more than 20 % (embed-image ${spread(eiRates).toFixed(2)}x, onnxruntime ${spread(ortRates).toFixed(2)}x between its fastest and slowest)`);
  }
  const shares = [
    (eiFlops * 1000) / (ei2.medianMs as number),
    (flops * 1000) / (ort2.medianMs as number),
    eiFlops * (eiThroughput.imagesPerSecond as number),
    flops * ortThroughput,
  ].map((rate) => rate / 1e9 / peakOf(2));
  if (shares.some((share) => share > 1)) warnings.push('a matrix-product rate is above the FMA peak, so the peak was measured while the CPU was busy');
  if (gemmMs(backend2) > (ei2.medianMs as number)) warnings.push("the roofline's products alone took longer than the whole model");
  if (warnings.length > 0) {
    lines.push('', `**Warning: this run is not reliable.** ${warnings.map((text) => `${text[0]!.toUpperCase()}${text.slice(1)}`).join('. ')}. Run it again when the machine is idle.`);
    process.stderr.write(`bench: warning: ${warnings.join('; ')}\n`);
  }
  process.stdout.write(`${lines.join('\n')}\n`);
}

main();
