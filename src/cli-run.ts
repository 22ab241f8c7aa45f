/** The `run` command: executes one method on `.npy` and literal inputs and writes its outputs. */
import { bindInputs, outputJsonLine, parseInputSpec, type InputSpec } from './cli-values.js';
import { EmbedImageError, type ErrorCode } from './errors.js';
import { writeNpy } from './npy.js';
import { isTensor, Program, type MethodMeta } from './program.js';

export interface RunOptions {
  method: string;
  inputs: string[];
  output?: string;
  threads: number;
  maxInstructions: number;
}

/**
 * Returns the file for each tensor output, keyed by output index. One tensor output goes to
 * `output` itself; several go to `PREFIX.INDEX.npy`, where PREFIX is `output` without a
 * trailing ".npy".
 */
export function outputFiles(outputs: MethodMeta['outputs'], output: string | undefined, method: string): Map<number, string> {
  const tensorIndices = outputs.flatMap((meta, index) => (meta.kind === 'tensor' ? [index] : []));
  const files = new Map<number, string>();
  if (tensorIndices.length === 0) {
    if (output !== undefined) {
      throw new EmbedImageError('ERR_INVALID_ARGUMENT', `method "${method}" has no tensor outputs, so there is nothing to write to ${output}; remove --output`);
    }
    return files;
  }
  if (output === undefined) {
    throw new EmbedImageError('ERR_INVALID_ARGUMENT', `method "${method}" returns ${tensorIndices.length} tensor${tensorIndices.length === 1 ? '' : 's'}; pass --output FILE.npy (a prefix when there are several)`);
  }
  if (tensorIndices.length === 1) {
    files.set(tensorIndices[0]!, output);
    return files;
  }
  const prefix = output.endsWith('.npy') ? output.slice(0, -'.npy'.length) : output;
  for (const index of tensorIndices) files.set(index, `${prefix}.${index}.npy`);
  return files;
}

/** Runs the method and returns the JSON lines to print, one per output. */
export async function runCommand(model: string, options: RunOptions): Promise<string[]> {
  // Inputs are read before the program is loaded, so a bad .npy fails fast and by name.
  const specs: InputSpec[] = [];
  for (const text of options.inputs) specs.push(await parseInputSpec(text));

  // Unsupported parts are allowed at load time so that the runnable methods of a file can run;
  // the chosen method's own problems are checked below.
  const program = await Program.load(model, { allowUnsupported: true, threads: options.threads, maxInstructions: options.maxInstructions });
  try {
    const names = program.methodNames();
    if (!names.includes(options.method)) {
      throw new EmbedImageError('ERR_METHOD_NOT_FOUND', `${model} has no method "${options.method}"; its methods are ${names.join(', ')} (choose one with --method)`);
    }
    const meta = program.methodMeta(options.method);
    const problem = meta.problems[0];
    if (problem) {
      const messages = meta.problems.map((item) => item.message).join('; ');
      throw new EmbedImageError(problem.code as ErrorCode, `method "${options.method}" cannot run here: ${messages}`);
    }
    const values = bindInputs(options.method, meta.inputs, specs);
    const files = outputFiles(meta.outputs, options.output, options.method);

    const results = await program.execute(options.method, values);

    const lines: string[] = [];
    for (const [index, value] of results.entries()) {
      if (!isTensor(value)) {
        lines.push(outputJsonLine(index, value, meta.outputs[index]));
        continue;
      }
      const file = files.get(index);
      if (file === undefined) {
        throw new EmbedImageError('ERR_INTERNAL', `method "${options.method}" returned a tensor as output ${index}, which its metadata declares as ${meta.outputs[index]?.kind ?? 'absent'}`);
      }
      await writeNpy(file, value);
      lines.push(outputJsonLine(index, value, meta.outputs[index], file));
    }
    return lines;
  } finally {
    program.dispose();
  }
}
