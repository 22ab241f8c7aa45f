/**
 * The main job, `embed-image [options] <inputs...>`: embeds image files, folders, glob matches
 * and URLs, and writes one record per image as JSON, JSONL or .npy. Errors that stop the whole
 * run propagate to `main` in cli.ts. An image that fails is reported on stderr and counted, and
 * it makes the exit status 1 without stopping the run.
 */
import { createHash } from 'node:crypto';
import { access, readFile, stat } from 'node:fs/promises';
import path from 'node:path';

import cliProgress from 'cli-progress';
import { Command, InvalidArgumentError, Option } from 'commander';

import { expandInputs, parseShard, selectShard, type InputItem } from './cli-embed-inputs.js';
import {
  OUTPUT_FORMATS,
  RecordJournal,
  formatFromExtension,
  partialPath,
  readOutput,
  serializeRecord,
  vectorNorm,
  writeOutput,
  type EmbeddingRecord,
  type OutputFormat,
} from './cli-embed-output.js';
import type { CliOutput } from './cli.js';
import { ImageEmbeddings, asEmbedImageError, mapOrdered } from './embeddings.js';
import { EmbedImageError } from './errors.js';
import { DEFAULT_MODEL } from './models.js';
import { PREPROCESS_PROFILES, type PreprocessProfile } from './preprocess.js';
import { resolveImageSource, type SourceOptions } from './sources.js';
import { commandOutput } from './cli-usage.js';

export interface EmbedCliOptions {
  model: string;
  profile: PreprocessProfile;
  out?: string;
  format?: OutputFormat;
  resume?: boolean;
  threads: number;
  concurrency: number;
  shard?: string;
  timeout: number;
  quiet?: boolean;
}

const EMBED_HELP = `
Inputs: image files (any extension), folders (walked recursively for files named *.jpg,
  *.jpeg, *.jpe, *.png, *.webp, *.gif, *.bmp, *.tif, *.tiff, *.avif, *.heic, *.heif, *.pbm,
  *.pgm, *.ppm, *.pnm in any case, following symbolic links and walking each real folder
  once), glob patterns in quotes such as "photos/**/*.jpg" (image files only), and http(s)
  URLs. They are sorted by path relative to the working directory; each file is embedded
  once.

Output: one record per image, in sorted order whatever --concurrency is:
  {"path":"photos/a.jpg","sha256":"<sha256 of the file>","model":{"name":"...","sha256":"..."},
   "profile":"rne-legacy","dimensions":512,"norm":1,"embedding":[...]}
  Embedding values are float32 written as the shortest decimal that reads back to the same
  float32 bits (Math.fround(JSON.parse(...)) restores them).
  One image and no --out or --format: one JSON object on stdout. Otherwise --format (default:
  from the --out extension .json, .jsonl or .npy, else jsonl):
    jsonl  one record per line; to stdout it streams as images finish
    json   a JSON array of records
    npy    --out FILE.npy gets float32 [N, D] and FILE.json the records without embeddings
  With --out FILE, records are appended to FILE.partial as they finish, and FILE is written
  to a temporary file and renamed into place at the end, so FILE is never half-written.
  --resume reads FILE and FILE.partial (left by an interrupted run, even one killed with
  SIGKILL) and reuses the record of every image whose sha256 is already there.

Errors: an image that cannot be read or decoded is reported on stderr with its path and the
  reason; the run goes on, the final line counts the failures, and the exit status is 1.

Exit status: 0 every image embedded, 1 some image failed or the run failed, 2 usage error.

Examples:
  embed-image photo.jpg
  embed-image --model fixtures/models/clip-tiny.pte photos/ --out vectors.jsonl
  embed-image photos/ --out vectors.jsonl --resume
  embed-image "photos/**/*.png" --shard 2/4 --out part-2.jsonl
`;

function parseCount(name: string, minimum: number) {
  return (text: string): number => {
    const value = Number(text);
    if (!/^\d+$/.test(text) || !Number.isSafeInteger(value) || value < minimum) {
      throw new InvalidArgumentError(`${name} must be an integer of at least ${minimum}.`);
    }
    return value;
  };
}

function parseSeconds(text: string): number {
  const value = Number(text);
  if (!/^\d+(\.\d+)?$/.test(text) || !Number.isFinite(value) || value <= 0) throw new InvalidArgumentError('--timeout must be a positive number of seconds.');
  return value;
}

function parseShardOption(text: string): string {
  try {
    parseShard(text);
  } catch (error) {
    throw new InvalidArgumentError((error as Error).message.replace(/^--shard /, '') + '.');
  }
  return text;
}

/** Adds the options that the embed and preprocess commands share. */
export function addModelOptions(command: Command): Command {
  return command
    .option('-m, --model <model>', 'the model: a known model name, a .pte path or an http(s) URL (see "embed-image models list")', DEFAULT_MODEL)
    .addOption(new Option('-p, --profile <profile>', 'preprocessing: rne-legacy (react-native-executorch up to 0.9), rne (0.10 and later) or sharp').choices(PREPROCESS_PROFILES).default('rne-legacy'));
}

/** The progress bar (on a terminal, for several images) and the lines printed around it. */
class Reporter {
  #bars: cliProgress.MultiBar | undefined;
  #bar: cliProgress.SingleBar | undefined;

  constructor(
    private readonly output: CliOutput,
    total: number,
    showBar: boolean,
  ) {
    if (!showBar) return;
    this.#bars = new cliProgress.MultiBar(
      {
        stream: process.stderr,
        format: 'embedding [{bar}] {value}/{total} images | {failed} failed | {duration_formatted} elapsed, {eta_formatted} left',
        // A hidden cursor would stay hidden if the process is killed while the bar is drawn.
        hideCursor: null,
        clearOnComplete: true,
      },
      cliProgress.Presets.shades_classic,
    );
    this.#bar = this.#bars.create(total, 0, { failed: 0 });
  }

  line(text: string): void {
    if (this.#bars) this.#bars.log(`${text}\n`);
    else this.output.stderr(`${text}\n`);
  }

  tick(failed: number): void {
    this.#bar?.increment(1, { failed });
  }

  stop(): void {
    this.#bars?.stop();
  }
}

function sha256Hex(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** Fails before any work when the folder of --out is missing, naming the --out value. */
async function checkOutputFolder(out: string): Promise<void> {
  const folder = path.dirname(path.resolve(out));
  const info = await stat(folder).catch(() => undefined);
  if (!info?.isDirectory()) {
    throw new EmbedImageError('ERR_FILE_WRITE', `cannot write --out ${out}: the folder ${folder} does not exist; create it first`);
  }
}

async function exists(file: string): Promise<boolean> {
  return access(file).then(
    () => true,
    () => false,
  );
}

/** Picks the output format from --format, else the --out extension, else JSONL. */
function chooseFormat(options: EmbedCliOptions): OutputFormat {
  if (options.format) return options.format;
  if (options.out) return formatFromExtension(options.out) ?? 'jsonl';
  return 'jsonl';
}

function checkOptions(options: EmbedCliOptions, format: OutputFormat): void {
  if (format === 'npy' && !options.out) throw new EmbedImageError('ERR_INVALID_ARGUMENT', '--format npy writes binary files; pass --out FILE.npy');
  if (options.resume && !options.out) throw new EmbedImageError('ERR_INVALID_ARGUMENT', '--resume continues an output file; pass the same --out FILE as the interrupted run');
}

/** Records of earlier runs by image sha256, after checking they come from this model and profile. */
async function loadResumeRecords(
  out: string,
  format: OutputFormat,
  journalRecords: EmbeddingRecord[],
  model: { name: string; sha256: string },
  profile: string,
  warn: (line: string) => void,
): Promise<Map<string, EmbeddingRecord>> {
  let finished: EmbeddingRecord[] = [];
  try {
    finished = await readOutput(out, format);
  } catch (error) {
    // A run killed between writing FILE.json and FILE.npy leaves a pair that does not match,
    // but then its journal still contains every record of that run.
    if (!(error instanceof EmbedImageError && error.code === 'ERR_VECTORS_FORMAT') || journalRecords.length === 0) throw error;
    warn(`ignoring ${out} (${error.message}) and using the records in ${partialPath(out)}`);
  }
  // Journal records come last, so they replace older records of the same image.
  const records = [...finished, ...journalRecords];
  const bySha = new Map<string, EmbeddingRecord>();
  for (const record of records) {
    if (record.model.sha256 !== model.sha256 || record.profile !== profile) {
      throw new EmbedImageError(
        'ERR_INVALID_ARGUMENT',
        `${out}: its records were made with model ${record.model.name} (sha256 ${record.model.sha256.slice(0, 12)}) and profile ${record.profile}, ` +
          `but this run uses ${model.name} (sha256 ${model.sha256.slice(0, 12)}) and profile ${profile}; resume with the same --model and --profile, or write to another --out`,
      );
    }
    bySha.set(record.sha256, record);
  }
  return bySha;
}

type ItemOutcome = { ok: true; record: EmbeddingRecord; reused: boolean } | { ok: false; error: EmbedImageError };

/** Runs the embed command and returns the exit status: 0, or 1 when an image failed. */
export async function runEmbed(inputs: string[], options: EmbedCliOptions, output: CliOutput): Promise<number> {
  const started = Date.now();
  const format = chooseFormat(options);
  checkOptions(options, format);
  const shard = options.shard === undefined ? undefined : parseShard(options.shard);
  if (options.out) await checkOutputFolder(options.out);

  const expanded = await expandInputs(inputs, process.cwd());
  for (const warning of expanded.warnings) if (!options.quiet) output.stderr(`embed-image: warning: ${warning}\n`);
  if (expanded.items.length === 0) throw new EmbedImageError('ERR_FILE_NOT_FOUND', `no image files found in ${inputs.join(', ')}`);
  const items: InputItem[] = shard ? selectShard(expanded.items, shard) : expanded.items;
  const singleObject = items.length === 1 && !shard && !options.out && !options.format;

  const embeddings = new ImageEmbeddings();
  const sourceOptions: SourceOptions = { timeoutMs: Math.round(options.timeout * 1000) };
  await embeddings.load({
    modelSource: options.model,
    profile: options.profile,
    threads: options.threads,
    sources: sourceOptions,
    resolve: options.quiet ? { progress: false } : { log: (line) => output.stderr(`embed-image: ${line}\n`) },
  });

  try {
    const model = { name: embeddings.model.name, sha256: embeddings.model.sha256 };
    let journal: RecordJournal | undefined;
    let reusable = new Map<string, EmbeddingRecord>();
    if (options.out) {
      const partial = partialPath(options.out);
      if (!options.resume && !options.quiet && (await exists(partial))) {
        output.stderr(`embed-image: discarding ${partial}, left by an interrupted run (pass --resume to continue it)\n`);
      }
      const opened = await RecordJournal.open(partial, options.resume === true);
      journal = opened.journal;
      if (options.resume) {
        if (opened.dropped > 0 && !options.quiet) output.stderr(`embed-image: dropped ${opened.dropped} incomplete line(s) at the end of ${partial}\n`);
        reusable = await loadResumeRecords(options.out, format, opened.records, model, options.profile, (line) => output.stderr(`embed-image: warning: ${line}\n`));
      }
    }

    if (!options.quiet && items.length > 1) {
      output.stderr(`embed-image: embedding ${items.length} images${shard ? ` (shard ${shard.index}/${shard.count} of ${expanded.items.length})` : ''} with ${model.name}, profile ${options.profile}, ${embeddings.dimensions} dimensions\n`);
    }
    const reporter = new Reporter(output, items.length, !options.quiet && items.length > 1 && process.stderr.isTTY === true);
    let failed = 0;
    let reused = 0;
    const records: EmbeddingRecord[] = [];

    const embedItem = async (item: InputItem): Promise<ItemOutcome> => {
      try {
        const bytes = item.kind === 'file' ? await readImageFile(item) : await downloadItem(item, sourceOptions);
        const sha256 = sha256Hex(bytes);
        const previous = reusable.get(sha256);
        if (previous) return { ok: true, record: { ...previous, path: item.name }, reused: true };
        const embedding = await embeddings.forward(bytes, { name: item.name });
        const record: EmbeddingRecord = { path: item.name, sha256, model, profile: options.profile, dimensions: embedding.length, norm: vectorNorm(embedding), embedding };
        return { ok: true, record, reused: false };
      } catch (error) {
        return { ok: false, error: asEmbedImageError(error) };
      }
    };

    const task = async (item: InputItem): Promise<ItemOutcome> => {
      const outcome = await embedItem(item);
      if (!outcome.ok) failed += 1;
      reporter.tick(failed);
      return outcome;
    };

    const emit = async (outcome: ItemOutcome, index: number): Promise<void> => {
      const item = items[index]!;
      if (!outcome.ok) {
        // Decoder reasons can span lines, but one line per failure keeps the report greppable.
        const reason = outcome.error.message.replace(/\s*\n\s*/g, '; ');
        const message = reason.includes(item.name) ? reason : `${item.name}: ${reason}`;
        reporter.line(`embed-image: ${message} (error code ${outcome.error.code})`);
        return;
      }
      records.push(outcome.record);
      if (outcome.reused) reused += 1;
      else await journal?.append(outcome.record);
      if (!options.out && format === 'jsonl' && !singleObject) output.stdout(`${serializeRecord(outcome.record)}\n`);
    };

    // Ctrl-C stops the run at once, and the journal keeps every record written so far. The
    // signal is raised again with the default action, because process.exit() would wait for a
    // worker thread blocked in a read (of a FIFO or a stalled network file system).
    const onInterrupt = (): void => {
      reporter.stop();
      const hint = options.out ? `; ${partialPath(options.out)} keeps the finished records, so run the same command with --resume to continue` : '';
      output.stderr(`embed-image: interrupted after ${records.length} of ${items.length} images${hint}\n`);
      process.off('SIGINT', onInterrupt);
      process.kill(process.pid, 'SIGINT');
    };
    process.once('SIGINT', onInterrupt);
    try {
      await mapOrdered(items, options.concurrency, task, emit);
    } finally {
      process.off('SIGINT', onInterrupt);
      reporter.stop();
    }

    if (options.out) {
      await journal!.close();
      await writeOutput(options.out, format, records);
      await journal!.remove();
    } else if (singleObject) {
      if (records[0]) output.stdout(`${serializeRecord(records[0])}\n`);
    } else if (format === 'json') {
      output.stdout(records.length === 0 ? '[]\n' : `[\n${records.map(serializeRecord).join(',\n')}\n]\n`);
    }

    if (!options.quiet && (items.length > 1 || failed > 0)) {
      const seconds = ((Date.now() - started) / 1000).toFixed(1);
      const details = [failed > 0 ? `${failed} failed` : '', reused > 0 ? `${reused} reused by --resume` : ''].filter(Boolean).join(', ');
      output.stderr(`embed-image: embedded ${records.length} of ${items.length} images${details ? ` (${details})` : ''} in ${seconds} s${options.out ? `; wrote ${options.out}` : ''}\n`);
    }
    return failed > 0 ? 1 : 0;
  } finally {
    embeddings.delete();
  }
}

async function readImageFile(item: InputItem): Promise<Uint8Array> {
  try {
    return await readFile(item.location);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new EmbedImageError(code === 'ENOENT' ? 'ERR_FILE_NOT_FOUND' : 'ERR_FILE_READ', `${item.name}: cannot read the file: ${(error as Error).message}`, { cause: error });
  }
}

async function downloadItem(item: InputItem, options: SourceOptions): Promise<Uint8Array> {
  const resolved = await resolveImageSource(item.location, options);
  if (resolved.kind === 'pixels') throw new EmbedImageError('ERR_INTERNAL', `${item.name}: a URL resolved to raw pixels`);
  return resolved.bytes;
}

/** Adds the embed command to `program` as its default command. */
export function registerEmbedCommand(program: Command, output: CliOutput, setStatus: (status: number) => void): Command {
  const command = program.command('embed', { isDefault: true });
  command
    .exitOverride()
    .helpOption('-h, --help', 'print this help and exit')
    .configureOutput(commandOutput(output, 'embed-image embed --help'))
    .description('embed images (the default command): files, folders, glob patterns or URLs to JSON, JSONL or .npy vectors')
    .usage('[options] <inputs...>')
    .argument('<inputs...>', 'image files, folders, quoted glob patterns or http(s) URLs');
  addModelOptions(command)
    .option('-o, --out <file>', 'write the records to this file (default: stdout)')
    .addOption(new Option('-f, --format <format>', 'json, jsonl or npy (default: from the --out extension, else jsonl; one image to stdout gives one JSON object)').choices(OUTPUT_FORMATS))
    .option('--resume', 'reuse the records in --out and --out.partial of an earlier or interrupted run, by image sha256 (default: start over)')
    .addOption(new Option('-t, --threads <count>', 'worker threads for kernels and delegates; 0 means one per CPU core').default(0).argParser(parseCount('--threads', 0)))
    .addOption(new Option('-c, --concurrency <count>', 'images in flight at once; one per CPU core (2 to 8) decodes at a time, and the model runs up to 8 of the others as one batch, so 16 keeps the batches full; lower it to save memory').default(16).argParser(parseCount('--concurrency', 1)))
    .addOption(new Option('--shard <I/N>', 'embed only part I of N (1 <= I <= N) of the sorted inputs, a contiguous block, for parallel jobs (default: all)').argParser(parseShardOption))
    .addOption(new Option('--timeout <seconds>', 'time limit for downloading each http(s) input, in seconds').default(30).argParser(parseSeconds))
    .option('-q, --quiet', 'print no progress bar, notes or summary; failures are still reported (default: off)')
    .addHelpText('after', EMBED_HELP)
    .action(async (inputs: string[], options: EmbedCliOptions) => {
      // When the reader of stdout goes away (as with "| head"), stop with one line, not a stack trace.
      const onStdoutError = (error: NodeJS.ErrnoException): void => {
        if (error.code !== 'EPIPE') throw error;
        output.stderr('embed-image: stdout was closed before every record was written\n');
        process.exit(1);
      };
      process.stdout.on('error', onStdoutError);
      try {
        setStatus(await runEmbed(inputs, options, output));
      } finally {
        process.stdout.off('error', onStdoutError);
      }
    });
  return command;
}
