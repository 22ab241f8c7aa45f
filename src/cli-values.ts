/**
 * Conversion between the CLI's textual inputs and outputs and method values: `--input` specs
 * (a `.npy` path or a typed literal such as `int:3`), checks against a method's declared
 * inputs, and the JSON line printed for each output.
 */
import { EmbedImageError } from './errors.js';
import { readNpy } from './npy.js';
import { isTensor, type MethodMeta, type Tensor, type Value } from './program.js';

type ValueMeta = MethodMeta['inputs'][number];

/** An `--input` argument after parsing, before it is checked against the method. */
export type InputSpec =
  | { form: 'file'; path: string; tensor: Tensor }
  | { form: 'literal'; text: string; kind: 'int' | 'double' | 'bool' | 'string' | 'none'; value: Value };

const INTEGER_DTYPES = new Set(['int64', 'int32', 'int16', 'int8', 'uint8']);

/** EValue names, as ExecuTorch spells them, of the value kinds that are not tensors. */
const SCALAR_NAMES: Record<string, string> = { int: 'Int', double: 'Double', bool: 'Bool', string: 'String', none: 'None' };

const DYNAMISM_NAMES: Record<string, string> = {
  static: 'static',
  dynamic_bound: 'each size at most the bound',
  dynamic_unbound: 'sizes unbounded',
};

function invalidArgument(message: string): EmbedImageError {
  return new EmbedImageError('ERR_INVALID_ARGUMENT', message);
}

/** Parses the literal forms `int:N`, `double:X` (or `float:X`), `bool:true|false`, `str:TEXT` and `none`. */
function parseLiteral(text: string): InputSpec | undefined {
  if (text === 'none') return { form: 'literal', text, kind: 'none', value: null };
  const match = /^(int|double|float|bool|str):(.*)$/s.exec(text);
  if (!match) return undefined;
  const [, prefix, body] = match as unknown as [string, string, string];

  if (prefix === 'int') {
    if (!/^[+-]?\d+$/.test(body)) throw invalidArgument(`--input ${text}: "${body}" is not a decimal integer`);
    const big = BigInt(body);
    if (big < -(2n ** 63n) || big >= 2n ** 63n) throw invalidArgument(`--input ${text}: ${body} does not fit in a 64-bit signed integer`);
    const value = Number.isSafeInteger(Number(big)) ? Number(big) : big;
    return { form: 'literal', text, kind: 'int', value };
  }
  if (prefix === 'double' || prefix === 'float') {
    const special: Record<string, number> = { nan: Number.NaN, inf: Infinity, '+inf': Infinity, '-inf': -Infinity };
    const value = special[body.toLowerCase()] ?? (body.trim() === '' ? Number.NaN : Number(body));
    if (Number.isNaN(value) && body.toLowerCase() !== 'nan') throw invalidArgument(`--input ${text}: "${body}" is not a number`);
    return { form: 'literal', text, kind: 'double', value };
  }
  if (prefix === 'bool') {
    const truth: Record<string, boolean> = { true: true, false: false, '1': true, '0': false };
    const value = truth[body.toLowerCase()];
    if (value === undefined) throw invalidArgument(`--input ${text}: "${body}" is not a boolean; use true, false, 1 or 0`);
    return { form: 'literal', text, kind: 'bool', value };
  }
  return { form: 'literal', text, kind: 'string', value: body };
}

/** Parses one `--input` argument; a spec that is not a literal is read as a `.npy` file. */
export async function parseInputSpec(text: string): Promise<InputSpec> {
  const literal = parseLiteral(text);
  if (literal) return literal;
  return { form: 'file', path: text, tensor: await readNpy(text) };
}

/** Describes a declared value for messages, such as "float32 tensor of shape [1, 3] (static)". */
export function describeMeta(meta: ValueMeta): string {
  if (meta.kind !== 'tensor') return SCALAR_NAMES[meta.kind] ?? meta.kind;
  const dynamism = DYNAMISM_NAMES[meta.dynamism ?? 'static'] ?? meta.dynamism;
  return `${meta.dtype ?? '?'} tensor of shape [${(meta.shape ?? []).join(', ')}] (${dynamism})`;
}

function describeSpec(spec: InputSpec): string {
  if (spec.form === 'file') return `${spec.tensor.dtype} array of shape [${spec.tensor.shape.join(', ')}] in ${spec.path}`;
  return `literal ${spec.text}`;
}

/** Returns why `shape` does not fit the declared tensor, or undefined when it fits. */
function shapeMismatch(shape: number[], meta: ValueMeta): string | undefined {
  const declared = meta.shape ?? [];
  if (shape.length !== declared.length) return `it has ${shape.length} dimensions, the method expects ${declared.length}`;
  if (meta.dynamism === 'dynamic_unbound') return undefined;
  for (let axis = 0; axis < shape.length; axis += 1) {
    const size = shape[axis]!;
    const bound = declared[axis]!;
    if (meta.dynamism === 'dynamic_bound' ? size > bound : size !== bound) {
      const relation = meta.dynamism === 'dynamic_bound' ? `at most ${bound}` : `${bound}`;
      return `dimension ${axis} is ${size}, the method expects ${relation}`;
    }
  }
  return undefined;
}

/** Converts a 0-d array to the scalar that an Int, Double or Bool input takes, or undefined. */
function scalarFromArray(tensor: Tensor, kind: string): Value | undefined {
  if (tensor.shape.length !== 0) return undefined;
  const element = tensor.data[0]!;
  if (kind === 'int' && INTEGER_DTYPES.has(tensor.dtype)) {
    return typeof element === 'bigint' && !Number.isSafeInteger(Number(element)) ? element : Number(element);
  }
  if (kind === 'double' && (tensor.dtype === 'float32' || tensor.dtype === 'float64')) return Number(element);
  if (kind === 'bool' && tensor.dtype === 'bool') return element !== 0;
  return undefined;
}

/**
 * Checks the parsed inputs against the method's declared inputs and returns the values to
 * execute with. Throws ERR_INVALID_INPUT naming the input, its source and what was expected.
 */
export function bindInputs(method: string, metas: ValueMeta[], specs: InputSpec[]): Value[] {
  if (specs.length !== metas.length) {
    const summary = metas.length === 0 ? 'takes no inputs' : `takes ${metas.length} input${metas.length === 1 ? '' : 's'} (${metas.map(describeMeta).join('; ')})`;
    throw new EmbedImageError(
      'ERR_INVALID_INPUT',
      `method "${method}" ${summary} but ${specs.length} --input option${specs.length === 1 ? ' was' : 's were'} given; pass one --input per input, in order`,
    );
  }

  return metas.map((meta, index) => {
    const spec = specs[index]!;
    const label = `input ${index} of method "${method}"`;
    const fail = (problem: string): never => {
      throw new EmbedImageError('ERR_INVALID_INPUT', `${label} (${describeSpec(spec)}): ${problem}`);
    };

    if (meta.kind === 'tensor') {
      if (spec.form !== 'file') fail(`the method expects a ${describeMeta(meta)}; pass a .npy file`);
      const tensor = (spec as Extract<InputSpec, { form: 'file' }>).tensor;
      if (tensor.dtype !== meta.dtype) {
        fail(`the method expects dtype ${meta.dtype ?? '?'}, the file has ${tensor.dtype}; convert it first (in numpy: array.astype('${meta.dtype ?? '?'}'))`);
      }
      const mismatch = shapeMismatch(tensor.shape, meta);
      if (mismatch) fail(`shape [${tensor.shape.join(', ')}] does not fit the expected ${describeMeta(meta)}: ${mismatch}`);
      return tensor;
    }

    if (meta.kind === 'int' || meta.kind === 'double' || meta.kind === 'bool') {
      if (spec.form === 'file') {
        const scalar = scalarFromArray(spec.tensor, meta.kind);
        if (scalar === undefined) fail(`the method expects an ${describeMeta(meta)}; pass a 0-d array of a matching dtype or a literal such as ${meta.kind}:VALUE`);
        return scalar!;
      }
      const accepted = spec.kind === meta.kind || (meta.kind === 'double' && spec.kind === 'int');
      if (!accepted) fail(`the method expects a ${describeMeta(meta)}; pass ${meta.kind}:VALUE`);
      return typeof spec.value === 'bigint' && meta.kind === 'double' ? Number(spec.value) : spec.value;
    }

    if (meta.kind === 'string' || meta.kind === 'none') {
      const expected = meta.kind === 'string' ? 'string' : 'none';
      if (spec.form !== 'literal' || spec.kind !== expected) fail(`the method expects ${meta.kind === 'string' ? 'a String; pass str:TEXT' : 'None; pass none'}`);
      return (spec as Extract<InputSpec, { form: 'literal' }>).value;
    }

    return fail(`inputs of kind ${meta.kind} cannot be passed from the command line yet`);
  });
}

/** Formats a number for JSON output; JSON has no NaN or infinities, so those become strings. */
function jsonNumber(value: number): string {
  if (Number.isFinite(value)) return JSON.stringify(value);
  return JSON.stringify(Number.isNaN(value) ? 'NaN' : value > 0 ? 'Infinity' : '-Infinity');
}

/**
 * Formats the JSON line printed for output `index`. Int values are written as plain JSON
 * numbers with all their digits, even beyond 2^53.
 */
export function outputJsonLine(index: number, value: Value, meta: ValueMeta | undefined, file?: string): string {
  if (isTensor(value)) {
    return JSON.stringify({ output: index, kind: 'tensor', dtype: value.dtype, shape: value.shape, file });
  }
  const head = `{"output":${index}`;
  if (value === null) return `${head},"kind":"none","value":null}`;
  if (typeof value === 'bigint') return `${head},"kind":"int","value":${value.toString()}}`;
  if (typeof value === 'number') {
    const kind = meta?.kind === 'int' ? 'int' : 'double';
    return `${head},"kind":"${kind}","value":${jsonNumber(value)}}`;
  }
  if (typeof value === 'boolean') return `${head},"kind":"bool","value":${value}}`;
  return `${head},"kind":"string","value":${JSON.stringify(value)}}`;
}
