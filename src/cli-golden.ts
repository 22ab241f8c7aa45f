/**
 * The `golden create` and `golden check` commands. `create` embeds images into a golden file;
 * `check` embeds them again and compares, with the exit status of `compare`: 0 within
 * tolerance, 1 out of tolerance, 2 when the check could not run.
 */
import { Command, InvalidArgumentError, Option } from 'commander';

import { addToleranceOptions, configureCommand, emitReport, parseFraction, parsePositiveInteger, runComparison, toleranceFrom, type CommandOutput, type ToleranceOptions } from './cli-compare.js';
import { expandInputs } from './cli-embed-inputs.js';
import { ImageEmbeddings } from './embeddings.js';
import { EmbedImageError } from './errors.js';
import {
  checkGolden,
  checkImages,
  createGolden,
  GOLDEN_DEFAULTS,
  goldenModelSpec,
  imageProblemsError,
  modelChangedError,
  readGolden,
  serializeGolden,
  updateGolden,
  type Embedder,
} from './golden.js';
import { writeFileAtomic } from './atomic-file.js';
import { PREPROCESS_PROFILES, type PreprocessProfile } from './preprocess.js';

const PROFILES = PREPROCESS_PROFILES;

function parseProfile(text: string): PreprocessProfile {
  if (!(PROFILES as readonly string[]).includes(text)) throw new InvalidArgumentError(`--profile must be one of ${PROFILES.join(', ')}, got "${text}".`);
  return text as PreprocessProfile;
}

/** Loads a model as an Embedder for golden files. */
export async function openEmbedder(modelSpec: string, profile: PreprocessProfile, threads: number): Promise<Embedder> {
  const embeddings = new ImageEmbeddings();
  await embeddings.load({ modelSource: modelSpec, profile, threads });
  const { width, height } = embeddings.inputSize;
  return {
    model: embeddings.model,
    profile,
    threads,
    method: 'forward',
    inputShape: [1, 3, height, width],
    outputShape: [1, embeddings.dimensions],
    embed: async (imagePath) => {
      const preprocessed = await embeddings.preprocess(imagePath);
      const embedding = await embeddings.forwardTensor(preprocessed.tensor);
      return { embedding, input: preprocessed.tensor };
    },
    close: () => embeddings.delete(),
  };
}

const CREATE_HELP = `
The golden file holds, for each image, its path (relative to the golden file), its sha256, the
sha256 of its model input tensor and its embedding as exact float32 values; and the model name
and sha256, the method and its input and output shapes, the preprocessing profile, the
embed-image version, the CPU architecture and thread count, and the date. It is written to a
temporary file and renamed, so it is never seen half written.

Example:
  embed-image golden create test/images --model model.pte --out test/golden.json
`;

const CHECK_HELP = `
Embeds every image of the golden file again (paths are relative to the golden file) with the
model and preprocessing profile recorded in it, and compares each embedding with the stored
one. The table lists the worst images first.

Tolerance: --min-cosine and --max-abs, else the values stored in the golden file, else
${GOLDEN_DEFAULTS.minCosine} and ${GOLDEN_DEFAULTS.maxAbs}. embed-image gives bit-identical
embeddings on one machine whatever the thread count; the defaults leave room for the small
differences of other CPUs' matrix-product kernels.

Exit status: 0 every image within tolerance, 1 some image out of tolerance, 2 the check could
not run: a missing golden file or image, an image whose sha256 changed, or a model whose sha256
differs from the golden file's (each is named). With --update, changed images and models are
accepted: the golden file is rewritten with the new embeddings and the changes are printed.

Example:
  embed-image golden check test/golden.json --junit reports/golden.xml
`;

interface CreateOptions {
  model: string;
  out: string;
  profile: PreprocessProfile;
  threads: number;
  minCosine?: number;
  maxAbs?: number;
  saveInputs?: string;
}

interface CheckOptions extends ToleranceOptions {
  model?: string;
  profile?: PreprocessProfile;
  threads: number;
  update: boolean;
}

async function createAction(inputs: string[], options: CreateOptions, output: CommandOutput): Promise<void> {
  const expanded = await expandInputs(inputs, process.cwd());
  for (const warning of expanded.warnings) output.stderr(`embed-image: warning: ${warning}\n`);
  const url = expanded.items.find((item) => item.kind !== 'file');
  if (url) throw new EmbedImageError('ERR_INVALID_ARGUMENT', `${url.name}: golden files need local image files, so a check can find them again; download the image first`);

  const embedder = await openEmbedder(options.model, options.profile, options.threads);
  try {
    const golden = await createGolden(
      expanded.items.map((item) => item.location),
      options.out,
      embedder,
      {
        modelSpec: options.model,
        tolerance: { minCosine: options.minCosine ?? GOLDEN_DEFAULTS.minCosine, maxAbs: options.maxAbs ?? GOLDEN_DEFAULTS.maxAbs },
        ...(options.saveInputs !== undefined ? { saveInputs: options.saveInputs } : {}),
      },
    );
    await writeFileAtomic(options.out, serializeGolden(golden));
    output.stdout(`wrote ${options.out}: ${golden.images.length} images, ${golden.model.name} (sha256 ${golden.model.sha256.slice(0, 12)}), profile ${golden.preprocessing.profile}, ${golden.images[0]!.dimensions} dimensions\n`);
  } finally {
    embedder.close();
  }
}

async function checkAction(goldenPath: string, options: CheckOptions, output: CommandOutput): Promise<number> {
  const started = Date.now();
  const golden = await readGolden(goldenPath);
  const problems = await checkImages(golden, goldenPath);
  const blocking = options.update ? problems.filter((item) => item.problem === 'missing') : problems;
  if (blocking.length > 0) throw imageProblemsError(blocking, goldenPath, options.update);

  const modelSpec = options.model ?? goldenModelSpec(golden, goldenPath);
  const embedder = await openEmbedder(modelSpec, options.profile ?? (golden.preprocessing.profile as PreprocessProfile), options.threads);
  try {
    if (embedder.model.sha256 !== golden.model.sha256 && !options.update) throw modelChangedError(golden, goldenPath, embedder.model);
    const tolerance = toleranceFrom(options, golden.tolerance);
    const check = await checkGolden(golden, goldenPath, embedder, tolerance, options.topK);
    if (!options.update) return emitReport(check.report, options, `embed-image golden check ${goldenPath}`, started, options.rows, output);

    const { golden: updated, changes } = await updateGolden(golden, goldenPath, embedder, check, modelSpec);
    await writeFileAtomic(goldenPath, serializeGolden(updated));
    output.stdout(`updated ${goldenPath}\n${changes.map((line) => `  ${line}`).join('\n')}\n`);
    return 0;
  } finally {
    embedder.close();
  }
}

/** Registers `golden create` and `golden check` on the root command. */
export function registerGoldenCommand(program: Command, output: CommandOutput, setStatus: (status: number) => void): void {
  const golden = configureCommand(program.command('golden'), 'embed-image golden', output).description('create golden embedding files and check a build against them');

  configureCommand(golden.command('create'), 'embed-image golden create', output)
    .description('embed images and write them, with the model and preprocessing they came from, to a golden file')
    .argument('<inputs...>', 'image files or folders (searched recursively for image files)')
    .requiredOption('-m, --model <model>', 'the model: a .pte path, a known model name or a URL')
    .requiredOption('-o, --out <file>', 'the golden file to write (JSON)')
    .addOption(new Option('-p, --profile <profile>', `preprocessing profile: ${PROFILES.join(', ')}`).default('rne-legacy').argParser(parseProfile))
    .addOption(new Option('-t, --threads <count>', 'worker threads; 0 means one per CPU core').default(0).argParser(parsePositiveInteger('--threads', 0)))
    .addOption(new Option('--min-cosine <c>', `tolerance stored for later checks: smallest cosine similarity (default: ${GOLDEN_DEFAULTS.minCosine})`).argParser(parseFraction('--min-cosine', -1, 1)))
    .addOption(new Option('--max-abs <a>', `tolerance stored for later checks: largest absolute element difference (default: ${GOLDEN_DEFAULTS.maxAbs})`).argParser(parseFraction('--max-abs', 0, Number.MAX_VALUE)))
    .option('--save-inputs <dir>', 'also save each model input tensor as DIR/IMAGE_PATH.npy, so a failing check can say how the preprocessing changed')
    .addHelpText('after', CREATE_HELP)
    .action(async (inputs: string[], options: CreateOptions) => {
      await createAction(inputs, options, output);
      setStatus(0);
    });

  const check = configureCommand(golden.command('check'), 'embed-image golden check', output)
    .description('embed the images of a golden file again and compare with the stored embeddings')
    .argument('<golden>', 'the golden file');
  addToleranceOptions(check, { text: `(default: the golden file's, else ${GOLDEN_DEFAULTS.minCosine} for --min-cosine and ${GOLDEN_DEFAULTS.maxAbs} for --max-abs)` })
    .option('-m, --model <model>', 'the model to check, when it is not where the golden file says')
    .addOption(new Option('-p, --profile <profile>', `preprocessing profile (default: the golden file's): ${PROFILES.join(', ')}`).argParser(parseProfile))
    .addOption(new Option('-t, --threads <count>', 'worker threads; 0 means one per CPU core').default(0).argParser(parsePositiveInteger('--threads', 0)))
    .option('--update', 'rewrite the golden file with the new embeddings after an intended change, and print what moved', false)
    .addHelpText('after', CHECK_HELP)
    .action(async (goldenPath: string, options: CheckOptions) => {
      setStatus(await runComparison(() => checkAction(goldenPath, options, output), options, `embed-image golden check ${goldenPath}`, output));
    });
}
