/**
 * Writes a CLIP vision encoder program (.pte) for tests, from a Hugging Face checkpoint or
 * from seeded random weights:
 *
 *   npm run --silent make-clip-pte -- --config CONFIG.json (--weights MODEL.safetensors | --seed N) --out MODEL.pte
 *
 * The program's structure is described in test/tooling/clip-program.ts.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';

import { buildClipProgram } from '../test/tooling/clip-program.js';
import { loadClipWeights, parseClipConfig, seededClipWeights } from '../test/tooling/clip-weights.js';

const usage = `Usage: npm run --silent make-clip-pte -- --config CONFIG.json (--weights MODEL.safetensors | --seed N) --out MODEL.pte

  --config PATH    CLIPVisionConfig JSON (hidden_size, intermediate_size, num_hidden_layers,
                   num_attention_heads, image_size, patch_size, num_channels, layer_norm_eps,
                   hidden_act) plus projection_dim
  --weights PATH   model.safetensors of CLIPVisionModelWithProjection (F32, F16 or BF16)
  --seed N         generate deterministic random weights from this integer seed instead
  --out PATH       the .pte file to write`;

function fail(message: string): never {
  process.stderr.write(`make-clip-pte: ${message}\n${usage}\n`);
  process.exit(2);
}

function main(): void {
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({
      options: {
        config: { type: 'string' },
        weights: { type: 'string' },
        seed: { type: 'string' },
        out: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
    }));
  } catch (error) {
    // parseArgs reads "--seed -1" as a value that looks like an option and suggests
    // "--seed=-1", which the range check rejects anyway, so the message gives the valid range.
    const message = (error as Error).message;
    fail(/--seed/.test(message) ? `${message.split('.')[0]}: --seed takes an integer from 0 to 4294967295` : message);
  }
  if (values.help) {
    process.stdout.write(`${usage}\n`);
    return;
  }
  const configPath = values.config as string | undefined;
  const weightsPath = values.weights as string | undefined;
  const seedText = values.seed as string | undefined;
  const outPath = values.out as string | undefined;
  if (!configPath) fail('missing --config');
  if (!outPath) fail('missing --out');
  if ((weightsPath === undefined) === (seedText === undefined)) fail('give exactly one of --weights and --seed');

  const started = performance.now();
  let configJson: unknown;
  try {
    configJson = JSON.parse(readFileSync(configPath, 'utf8'));
  } catch (error) {
    fail(`cannot read config ${configPath}: ${(error as Error).message}`);
  }
  const config = parseClipConfig(configJson, configPath);

  let weights;
  if (seedText !== undefined) {
    const seed = Number(seedText);
    if (!Number.isSafeInteger(seed) || seed < 0 || seed > 0xffffffff) fail(`--seed must be an integer from 0 to 4294967295, got "${seedText}"`);
    weights = seededClipWeights(config, seed);
  } else {
    let weightBytes: Uint8Array;
    try {
      weightBytes = new Uint8Array(readFileSync(weightsPath!));
    } catch (error) {
      throw new Error(`cannot read --weights ${weightsPath}: ${(error as Error).message}`);
    }
    weights = loadClipWeights(weightBytes, config, weightsPath);
  }

  const { bytes, summary } = buildClipProgram(config, weights);
  try {
    writeFileSync(outPath, bytes);
  } catch (error) {
    throw new Error(`cannot write --out ${outPath}: ${(error as Error).message}; check that its folder exists and is writable`);
  }
  const seconds = ((performance.now() - started) / 1000).toFixed(1);
  process.stderr.write(
    `make-clip-pte: wrote ${outPath} (${bytes.length} bytes, ${summary.delegateCount} XnnpackBackend delegates, ` +
      `${summary.instructions.length} instructions, ${summary.plannedBytes} planned bytes) in ${seconds} s\n`,
  );
}

try {
  main();
} catch (error) {
  process.stderr.write(`make-clip-pte: ${(error as Error).message}\n`);
  process.exit(1);
}
