/**
 * `embed-image models list|pull|path`: the known models and the download cache on the command
 * line. Errors propagate to `main` in cli.ts, which prints them and picks the exit status.
 */
import { Command, InvalidArgumentError, Option } from 'commander';

import type { CliOutput } from './cli.js';
import { commandOutput } from './cli-usage.js';
import {
  DEFAULT_CONNECT_TIMEOUT_MS,
  DEFAULT_IDLE_TIMEOUT_MS,
  DEFAULT_MAX_BYTES,
  DEFAULT_MODEL,
  KNOWN_MODELS,
  defaultCacheDir,
  formatBytes,
  knownModelUrl,
  listCache,
  readCacheEntry,
  resolveModel,
  type CacheEntry,
  type ResolveModelOptions,
} from './models.js';

interface CommonOptions {
  cacheDir?: string;
}

interface DownloadCliOptions extends CommonOptions {
  sha256?: string;
  progress?: boolean;
  connectTimeout: number;
  idleTimeout: number;
  maxSize: number;
}

const MODEL_ARGUMENT = 'a known model name (see "embed-image models list"), an http(s) URL or a .pte file';

const MODELS_HELP = `
Model names: ${Object.keys(KNOWN_MODELS).join(', ')} (default ${DEFAULT_MODEL}).
Cache folder: --cache-dir, else $EMBED_IMAGE_CACHE, else $XDG_CACHE_HOME/embed-image, else
  ~/.cache/embed-image. Each URL is stored once, with FILE.json beside it holding the URL,
  size, sha256 and download time.
Environment:
  EMBED_IMAGE_MODEL_BASE_URL  download the known models from this mirror in place of
                              https://huggingface.co/ (same paths below it)
  EMBED_IMAGE_OFFLINE=1       never download, as with --offline
Exit status: 0 success, 1 the command failed (not found, download or checksum error,
  offline without a cached copy), 2 usage error.
`;

function parsePositive(name: string, unit: string) {
  return (text: string): number => {
    const value = Number(text);
    if (!/^\d+(\.\d+)?$/.test(text) || !Number.isFinite(value) || value <= 0) {
      throw new InvalidArgumentError(`${name} must be a positive number of ${unit}.`);
    }
    return value;
  };
}

function addDownloadOptions(command: Command): Command {
  return command
    .option('--sha256 <hex>', 'sha256 the model file must have (64 hex digits); a mismatch rejects the file (default: none)')
    .option('--progress', 'draw a progress bar on stderr even when it is not a terminal (default: only on a terminal)')
    .option('--no-progress', 'never draw a progress bar')
    .addOption(
      new Option('--connect-timeout <seconds>', 'seconds to connect and receive the response headers')
        .default(DEFAULT_CONNECT_TIMEOUT_MS / 1000)
        .argParser(parsePositive('--connect-timeout', 'seconds')),
    )
    .addOption(
      new Option('--idle-timeout <seconds>', 'seconds the download may receive no data before it fails')
        .default(DEFAULT_IDLE_TIMEOUT_MS / 1000)
        .argParser(parsePositive('--idle-timeout', 'seconds')),
    )
    .addOption(
      new Option('--max-size <MiB>', 'largest download accepted, in MiB (1 MiB = 1,048,576 bytes)')
        .default(DEFAULT_MAX_BYTES / 1024 ** 2)
        .argParser(parsePositive('--max-size', 'MiB')),
    );
}

function addCacheOption(command: Command): Command {
  return command.option('--cache-dir <dir>', 'model cache folder (default: $EMBED_IMAGE_CACHE, else $XDG_CACHE_HOME/embed-image, else ~/.cache/embed-image)');
}

function resolveOptions(options: DownloadCliOptions, output: CliOutput): ResolveModelOptions {
  const resolved: ResolveModelOptions = {
    connectTimeoutMs: Math.round(options.connectTimeout * 1000),
    idleTimeoutMs: Math.round(options.idleTimeout * 1000),
    maxBytes: Math.floor(options.maxSize * 1024 ** 2),
    log: (line) => output.stderr(`embed-image: ${line}\n`),
  };
  if (options.cacheDir !== undefined) resolved.cacheDir = options.cacheDir;
  if (options.sha256 !== undefined) resolved.sha256 = options.sha256;
  if (options.progress !== undefined) resolved.progress = options.progress;
  return resolved;
}

function describeEntry(entry: CacheEntry | undefined): string {
  if (!entry) return 'no';
  return `yes, ${formatBytes(entry.size)} (${entry.size} bytes), sha256 ${entry.sha256}, downloaded ${entry.downloadedAt}\n    file: ${entry.path}`;
}

async function listModels(options: CommonOptions & { json: boolean }, output: CliOutput): Promise<void> {
  const cacheDir = options.cacheDir ?? defaultCacheDir();
  const baseUrl = process.env.EMBED_IMAGE_MODEL_BASE_URL || undefined;
  const models = [];
  for (const model of Object.values(KNOWN_MODELS)) {
    const downloadUrl = knownModelUrl(model, baseUrl);
    models.push({
      ...model,
      default: model.name === DEFAULT_MODEL,
      url: model.modelSource,
      ...(downloadUrl !== model.modelSource ? { downloadUrl } : {}),
      cached: (await readCacheEntry(model.modelSource, cacheDir)) ?? null,
    });
  }
  const knownUrls = new Set<string>(models.map((model) => model.url));
  const others = (await listCache(cacheDir)).filter((entry) => !knownUrls.has(entry.url));

  if (options.json) {
    output.stdout(`${JSON.stringify({ cacheDir, models, otherCached: others }, null, 2)}\n`);
    return;
  }

  const lines = [`cache: ${cacheDir}`, ''];
  for (const model of models) {
    lines.push(`${model.name}${model.default ? ' (default)' : ''}`);
    lines.push(`  url: ${model.url}`);
    if (model.downloadUrl) lines.push(`  download from: ${model.downloadUrl} (EMBED_IMAGE_MODEL_BASE_URL)`);
    lines.push(`  ${model.precision}, input ${model.inputSize.width}x${model.inputSize.height} pixels, embedding of ${model.embeddingDimension} values`);
    lines.push(`  cached: ${describeEntry(model.cached ?? undefined)}`);
  }
  if (others.length > 0) {
    lines.push('', 'other cached URLs:');
    for (const entry of others) {
      lines.push(`${entry.url}`);
      lines.push(`  cached: ${describeEntry(entry)}`);
    }
  }
  output.stdout(`${lines.join('\n')}\n`);
}

/** Adds `models` and its subcommands to `program`, which must be the root `embed-image` command. */
export function registerModelsCommand(program: Command, output: CliOutput, setStatus: (status: number) => void): void {
  const configure = (command: Command, usage: string): Command =>
    command
      .exitOverride()
      .helpOption('-h, --help', 'print this help and exit')
      .configureOutput(commandOutput(output, `${usage} --help`));

  const models = configure(program.command('models'), 'embed-image models')
    .description('list the known models, download them into the cache and print their local paths')
    .addHelpText('after', MODELS_HELP);

  addCacheOption(configure(models.command('list'), 'embed-image models list'))
    .description('show the known models, their URLs and whether each is cached (size, sha256), then other cached URLs')
    .option('--json', 'print one JSON object instead of text (default: text)', false)
    .action(async (options: CommonOptions & { json: boolean }) => {
      await listModels(options, output);
      setStatus(0);
    });

  addDownloadOptions(addCacheOption(configure(models.command('pull'), 'embed-image models pull')))
    .description('download a model into the cache (again with --force), showing progress on a terminal, and print its path')
    .argument('[model]', MODEL_ARGUMENT, DEFAULT_MODEL)
    .option('--force', 'download again even when the model is cached (default: reuse the cached copy after hashing it again)')
    .action(async (model: string, options: DownloadCliOptions & { force?: boolean }) => {
      // A cached copy is hashed again, so pull also checks that it is intact.
      const resolved = await resolveModel(model, { ...resolveOptions(options, output), force: options.force ?? false, verify: true });
      if (resolved.source === 'cache') output.stderr(`embed-image: ${resolved.name} is already cached (sha256 ${resolved.sha256})\n`);
      output.stdout(`${resolved.path}\n`);
      setStatus(0);
    });

  addDownloadOptions(addCacheOption(configure(models.command('path'), 'embed-image models path')))
    .description('print the local path of a model, downloading it into the cache first unless --offline')
    .argument('[model]', MODEL_ARGUMENT, DEFAULT_MODEL)
    .option('--offline', 'never download: fail when the model is not cached (default: download when needed, or $EMBED_IMAGE_OFFLINE=1)')
    .action(async (model: string, options: DownloadCliOptions & { offline?: boolean }) => {
      const resolveOpts = resolveOptions(options, output);
      if (options.offline) resolveOpts.offline = true;
      const resolved = await resolveModel(model, resolveOpts);
      output.stdout(`${resolved.path}\n`);
      setStatus(0);
    });
}
