/**
 * The embed-image command line. `main` parses the arguments, runs one command and returns the
 * exit status:
 *   0  success (also for --help and --version)
 *   1  the job failed: a missing or malformed file, a program this build cannot run, inputs
 *      that do not match the method, or an error during execution
 *   2  usage error (unknown option, missing argument, invalid option value) or internal error
 * Every error is printed as one line "embed-image: <message>" on stderr, ending with
 * "(error code ERR_...)" for library errors. Only unexpected errors (bugs) add a stack trace.
 */
import { readFileSync } from 'node:fs';
import { stat } from 'node:fs/promises';

import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';

import { registerCompareCommand } from './cli-compare.js';
import { registerGoldenCommand } from './cli-golden.js';
import { registerEmbedCommand } from './cli-embed.js';
import { buildInspectReport, formatInspectReport } from './cli-inspect.js';
import { registerModelsCommand } from './cli-models.js';
import { registerPreprocessCommand } from './cli-preprocess.js';
import { runCommand } from './cli-run.js';
import { EmbedImageError, type ErrorCode } from './errors.js';
import { commandOutput } from './cli-usage.js';

export interface CliOutput {
  stdout: (text: string) => void;
  stderr: (text: string) => void;
}

const processOutput: CliOutput = {
  stdout: (text) => process.stdout.write(text),
  stderr: (text) => process.stderr.write(text),
};

/** Error codes that mean the command line itself was wrong or the installation is broken. */
const STATUS_2_CODES = new Set<ErrorCode>(['ERR_INVALID_ARGUMENT', 'ERR_INTERNAL', 'ERR_ADDON_LOAD']);

/** Error codes whose message gains a hint about what to do next. */
const HINTS: Partial<Record<ErrorCode, (model: string) => string>> = {
  ERR_UNSUPPORTED_BACKEND: (model) => `run "embed-image inspect ${model}" to see everything this build lacks for it`,
  ERR_UNSUPPORTED_OPERATOR: (model) => `run "embed-image inspect ${model}" to see everything this build lacks for it`,
  ERR_UNSUPPORTED_DTYPE: (model) => `run "embed-image inspect ${model}" to see everything this build lacks for it`,
};

function packageVersion(): string {
  const text = readFileSync(new URL('../package.json', import.meta.url), 'utf8');
  return (JSON.parse(text) as { version: string }).version;
}

function parseCount(name: string, minimum: number) {
  return (text: string): number => {
    const value = Number(text);
    if (!/^\d+$/.test(text) || !Number.isSafeInteger(value) || value < minimum) {
      throw new InvalidArgumentError(`${name} must be an integer of at least ${minimum}.`);
    }
    return value;
  };
}

function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

/** Fails with ERR_FILE_NOT_FOUND or ERR_FILE_READ before the runtime sees a path that is not a file. */
async function checkModelPath(model: string): Promise<void> {
  let kind;
  try {
    kind = await stat(model);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new EmbedImageError('ERR_FILE_NOT_FOUND', `${model}: file not found; pass the path of an ExecuTorch program (.pte)`);
    throw new EmbedImageError('ERR_FILE_READ', `${model}: cannot read the file: ${(error as Error).message}`);
  }
  if (!kind.isFile()) throw new EmbedImageError('ERR_FILE_READ', `${model}: not a regular file; pass the path of an ExecuTorch program (.pte)`);
}

/** Adds the file name to a runtime message that lacks it, and a hint for some error codes. */
function withContext(error: EmbedImageError, model: string): EmbedImageError {
  let message = error.message.includes(model) ? error.message : `${model}: ${error.message}`;
  const hint = HINTS[error.code]?.(model);
  if (hint) message += `; ${hint}`;
  return new EmbedImageError(error.code, message, { cause: error });
}

const RUN_HELP = `
Inputs: one --input per method input, in the method's order. Each is one of
  FILE.npy      a tensor, or a 0-d array for an Int, Double or Bool input
  int:N         an Int, such as int:3 (64-bit signed)
  double:X      a Double, such as double:0.5 (float:X is the same; nan, inf, -inf allowed)
  bool:B        a Bool: true, false, 1 or 0
  str:TEXT      a String
  none          None
  A file whose name starts with one of these prefixes can be given as ./int:3 and so on.
  Tensor inputs must have the method's dtype exactly (no conversion) and a shape the method
  accepts: equal to the declared shape, or within its bounds for a dynamic input.

Outputs: with one tensor output, --output is the file to write. With several, --output is a
  prefix and output i goes to PREFIX.i.npy (a trailing ".npy" on the prefix is dropped).
  Files are written to a temporary file in the same folder, then renamed over the target.
  stdout gets one JSON line per output, in order, for example
    {"output":0,"kind":"tensor","dtype":"float32","shape":[1,3],"file":"out.npy"}
    {"output":1,"kind":"int","value":128}
  Kinds: tensor, int, double, bool, string, none. Int values keep all 64 bits; NaN and
  infinite Doubles print as the strings "NaN", "Infinity" and "-Infinity".

Exit status: 0 success, 1 the run failed, 2 usage or internal error.

Example:
  embed-image run model.pte --input image.npy --output embedding.npy
`;

const INSPECT_HELP = `
Prints the file format (header, segments, constants), then for each method its inputs and
outputs (dtype, shape, dim order, dynamism), operators, delegate backends, instruction and
value counts and planned memory, and ends with a verdict line: "verdict: runnable here", or
"verdict: not runnable here: " (or "partly runnable here (only METHODS): ") and every
operator, backend or dtype this build lacks, by name.
The exit status is 0 whenever the file could be read, whatever the verdict.
`;

const ROOT_HELP = `
Exit status: 0 success, 1 the job failed (missing or malformed file, program not runnable
here, invalid input, execution error), 2 usage or internal error.
`;

function buildProgram(output: CliOutput, setStatus: (status: number) => void): Command {
  const program = new Command('embed-image');
  const configure = (command: Command): Command =>
    command
      .exitOverride()
      .configureOutput(
        commandOutput(output, command.name() === 'embed-image' ? 'embed-image --help' : `embed-image ${command.name()} --help`),
      );

  configure(program)
    .description('Embed images with react-native-executorch models and run ExecuTorch programs (.pte files) on Linux and macOS. Without a command, embed-image embeds its arguments: "embed-image photo.jpg".')
    .version(packageVersion(), '-V, --version', 'print the version of embed-image and exit')
    .helpOption('-h, --help', 'print this help and exit')
    .addHelpText('after', ROOT_HELP);

  configure(program.command('inspect'))
    .description('describe a program: format, methods, inputs, outputs, operators, backends, and whether it can run here')
    .argument('<model>', 'the ExecuTorch program file (.pte)')
    .option('--json', 'print one JSON object instead of text (default: text)', false)
    .helpOption('-h, --help', 'print this help and exit')
    .addHelpText('after', INSPECT_HELP)
    .action(async (model: string, options: { json: boolean }) => {
      await checkModelPath(model);
      const report = await buildInspectReport(model).catch((error: unknown) => {
        throw error instanceof EmbedImageError ? withContext(error, model) : error;
      });
      output.stdout(options.json ? `${JSON.stringify(report, null, 2)}\n` : formatInspectReport(report));
      setStatus(0);
    });

  configure(program.command('run'))
    .description('execute one method of a program on .npy or literal inputs and write its outputs as .npy')
    .argument('<model>', 'the ExecuTorch program file (.pte)')
    .option('-m, --method <name>', 'the method to execute', 'forward')
    .option('-i, --input <spec>', 'one method input: FILE.npy, int:N, double:X, bool:B, str:TEXT or none; repeat for each input, in order (see below)', collect)
    .option('-o, --output <file>', 'the .npy file for the tensor output, or the file prefix when there are several (required when the method returns a tensor)')
    .addOption(
      new Option('-t, --threads <count>', 'worker threads for kernels and delegates; 0 means one per CPU core')
        .default(0)
        .argParser(parseCount('--threads', 0)),
    )
    .addOption(
      new Option('--max-instructions <count>', 'instructions one execution may run before it fails with ERR_EXECUTION_LIMIT')
        .default(10_000_000)
        .argParser(parseCount('--max-instructions', 1)),
    )
    .helpOption('-h, --help', 'print this help and exit')
    .addHelpText('after', RUN_HELP)
    .action(async (model: string, options: { method: string; input?: string[]; output?: string; threads: number; maxInstructions: number }) => {
      await checkModelPath(model);
      const lines = await runCommand(model, {
        method: options.method,
        inputs: options.input ?? [],
        output: options.output,
        threads: options.threads,
        maxInstructions: options.maxInstructions,
      }).catch((error: unknown) => {
        throw error instanceof EmbedImageError ? withContext(error, model) : error;
      });
      for (const line of lines) output.stdout(`${line}\n`);
      setStatus(0);
    });

  registerModelsCommand(program, output, setStatus);
  registerEmbedCommand(program, output, setStatus);
  registerPreprocessCommand(program, output, setStatus);
  registerGoldenCommand(program, output, setStatus);
  registerCompareCommand(program, output, setStatus);

  return program;
}

/**
 * Runs the command line `argv` (as in process.argv: node, script, then arguments) and returns
 * the exit status. Output goes to `output`, which defaults to the process's stdout and stderr.
 */
export async function main(argv: string[], output: CliOutput = processOutput): Promise<number> {
  let status = 0;
  const program = buildProgram(output, (value) => {
    status = value;
  });

  // With embed as the default command, no arguments at all would read as embed without its
  // inputs; the overview of all commands helps more.
  if (argv.length <= 2) {
    program.outputHelp({ error: true });
    return 2;
  }

  try {
    await program.parseAsync(argv, { from: 'node' });
    return status;
  } catch (error) {
    if (error instanceof CommanderError) {
      // Commander has printed the help, the version or the usage error already.
      if (error.code === 'commander.helpDisplayed' || error.code === 'commander.version') return 0;
      return 2;
    }
    if (error instanceof EmbedImageError) {
      output.stderr(`embed-image: ${error.message} (error code ${error.code})\n`);
      return STATUS_2_CODES.has(error.code) ? 2 : 1;
    }
    const detail = error instanceof Error ? (error.stack ?? error.message) : String(error);
    output.stderr(`embed-image: internal error, please report it with the command line: ${detail}\n`);
    return 2;
  }
}
