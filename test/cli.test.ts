/**
 * The embed-image command line. Most cases call main() in-process with captured output; the
 * bin script itself is spawned for --version and for the shipped model. Programs are written
 * with the test .pte writer, so these tests need no files from outside the repository, except
 * the upstream-file cases, which skip when that folder is absent.
 */
import { readFileSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { main } from '../src/cli.js';
import { readNpy, writeNpy } from '../src/npy.js';
import type { Tensor } from '../src/program.js';
import { checkDistIsFresh, parseJsonLines, runCli } from './cli-process.js';
import { expectTensor, hasSharedPte, readExpected, repoRoot, sharedPteDir } from './helpers.js';
import { ProgramBuilder } from './tooling/pte-writer.js';
import { buildAddOneProgram } from './tooling/sample-programs.js';

interface Captured {
  status: number;
  stdout: string;
  stderr: string;
}

async function cli(...args: string[]): Promise<Captured> {
  let stdout = '';
  let stderr = '';
  const status = await main(['node', 'embed-image', ...args], {
    stdout: (text) => (stdout += text),
    stderr: (text) => (stderr += text),
  });
  return { status, stdout, stderr };
}

/** Asserts the error contract: one stderr line "embed-image: ...", no stack trace, no stdout. */
function expectOneLineError(result: Captured, pattern: RegExp): void {
  expect(result.stderr).toMatch(/^embed-image: [^\n]*\n$/);
  expect(result.stderr).toMatch(pattern);
  expect(result.stderr).not.toMatch(/\n\s+at /);
  expect(result.stdout).toBe('');
}

/** y0 = x + 1 and y1 = y0 + 1 on float32 [2]: two tensor outputs. */
function buildTwoOutputsProgram(): Uint8Array {
  const program = new ProgramBuilder();
  const forward = program.method('forward');
  const one = forward.tensor({ dtype: 'float32', sizes: [], constant: [1] });
  const x = forward.tensor({ dtype: 'float32', sizes: [2] });
  const y0 = forward.tensor({ dtype: 'float32', sizes: [2] });
  const y1 = forward.tensor({ dtype: 'float32', sizes: [2] });
  const alpha = forward.int(1);
  forward.kernel('aten::add.out', [x, one, alpha, y0, y0]);
  forward.kernel('aten::add.out', [y0, one, alpha, y1, y1]);
  forward.setInputs([x]).setOutputs([y0, y1]);
  return program.build();
}

/** Methods that return their Int, Double or Bool input unchanged, and one with no inputs. */
function buildScalarProgram(): Uint8Array {
  const program = new ProgramBuilder();
  const echoInt = program.method('echo_int');
  const integer = echoInt.int(0);
  echoInt.setInputs([integer]).setOutputs([integer]);
  const echoDouble = program.method('echo_double');
  const double = echoDouble.double(0);
  echoDouble.setInputs([double]).setOutputs([double]);
  const echoBool = program.method('echo_bool');
  const bool = echoBool.bool(false);
  echoBool.setInputs([bool]).setOutputs([bool]);
  const constant = program.method('constant');
  const answer = constant.int(42);
  constant.setInputs([]).setOutputs([answer]);
  return program.build();
}

/** y = x + x on float32 with a dynamic bound of [8]. */
function buildDynamicProgram(): Uint8Array {
  const program = new ProgramBuilder();
  const forward = program.method('forward');
  const x = forward.tensor({ dtype: 'float32', sizes: [8], dynamism: 'dynamic_bound' });
  const y = forward.tensor({ dtype: 'float32', sizes: [8], dynamism: 'dynamic_bound' });
  const alpha = forward.int(1);
  forward.kernel('aten::add.out', [x, x, alpha, y, y]);
  forward.setInputs([x]).setOutputs([y]);
  return program.build();
}

/** A method using an operator and a delegate backend that no runtime implements. */
function buildUnsupportedProgram(): Uint8Array {
  const program = new ProgramBuilder();
  const forward = program.method('forward');
  const x = forward.tensor({ dtype: 'float32', sizes: [2] });
  const y = forward.tensor({ dtype: 'float32', sizes: [2] });
  forward.kernel('acme::frobnicate.out', [x, y, y]);
  const delegate = forward.delegate({ id: 'AcmeBackend', payload: new Uint8Array(16) });
  forward.delegateCall(delegate, [x, y]);
  forward.setInputs([x]).setOutputs([y]);
  return program.build();
}

const float32 = (shape: number[], values: number[]): Tensor => ({ dtype: 'float32', shape, data: Float32Array.from(values) });

let folder: string;
const paths = {
  addOne: '',
  twoOutputs: '',
  scalars: '',
  dynamic: '',
  unsupported: '',
  x3: '',
};

beforeAll(async () => {
  folder = await mkdtemp(join(tmpdir(), 'embed-image-cli-'));
  const write = async (name: string, bytes: Uint8Array): Promise<string> => {
    const path = join(folder, name);
    await writeFile(path, bytes);
    return path;
  };
  paths.addOne = await write('add-one.pte', buildAddOneProgram());
  paths.twoOutputs = await write('two-outputs.pte', buildTwoOutputsProgram());
  paths.scalars = await write('scalars.pte', buildScalarProgram());
  paths.dynamic = await write('dynamic.pte', buildDynamicProgram());
  paths.unsupported = await write('unsupported.pte', buildUnsupportedProgram());
  paths.x3 = join(folder, 'x3.npy');
  await writeNpy(paths.x3, float32([3], [1, 2, 3]));
});

afterAll(async () => {
  await rm(folder, { recursive: true, force: true });
});

describe('cli help and version', () => {
  it('version from package.json', async () => {
    checkDistIsFresh();
    const version = (JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as { version: string }).version;
    const result = await runCli(['--version']);
    expect(result.status).toBe(0);
    expect(result.stdout).toBe(`${version}\n`);
  });

  it('root help lists commands', async () => {
    const result = await cli('--help');
    expect(result.status).toBe(0);
    expect(result.stdout).toMatch(/^\s+inspect \[options\] <model>/m);
    expect(result.stdout).toMatch(/^\s+run \[options\] <model>/m);
    expect(result.stdout).toContain('Exit status: 0 success, 1 the job failed');
  });

  it('run help gives defaults and units', async () => {
    const result = await cli('run', '--help');
    expect(result.status).toBe(0);
    expect(result.stdout).toMatch(/--method <name>\s+the method to execute \(default: "forward"\)/);
    expect(result.stdout).toMatch(/0 means\s+one per CPU core \(default: 0\)/);
    expect(result.stdout).toMatch(/\(default: 10000000\)/);
    expect(result.stdout).toContain('int:N         an Int');
    expect(result.stdout).toContain('PREFIX.i.npy');
  });

  it('inspect help', async () => {
    const result = await cli('inspect', '--help');
    expect(result.status).toBe(0);
    expect(result.stdout).toMatch(/--json\s+print one JSON object instead of text \(default: text\)/);
  });

  it('no command is a usage error', async () => {
    const result = await cli();
    expect(result.status).toBe(2);
    expect(result.stderr).toContain('Usage: embed-image');
  });

  it('unknown command', async () => {
    // embed is the default command, so an unknown word is taken for a missing image file.
    const result = await cli('frobnicate');
    expect(result.status).toBe(1);
    expectOneLineError(result, /frobnicate: no such file or folder, and no command of that name \(see "embed-image --help"\)/);
  });

  it('unknown option', async () => {
    const result = await cli('inspect', '--bogus', paths.addOne);
    expect(result.status).toBe(2);
    expectOneLineError(result, /unknown option '--bogus' \(see "embed-image inspect --help"\) \(error code ERR_INVALID_ARGUMENT\)$/m);
  });

  it('invalid threads', async () => {
    const result = await cli('run', paths.addOne, '--threads', 'many', '-i', paths.x3, '-o', join(folder, 'unused.npy'));
    expect(result.status).toBe(2);
    expectOneLineError(result, /--threads must be an integer of at least 0/);
  });

  it('missing model argument', async () => {
    const result = await cli('run');
    expect(result.status).toBe(2);
    expectOneLineError(result, /missing required argument 'model'.*\(error code ERR_INVALID_ARGUMENT\)/);
  });
});

describe('cli inspect', () => {
  it('text describes add-one', async () => {
    const result = await cli('inspect', paths.addOne);
    expect(result.status).toBe(0);
    expect(result.stderr).toBe('');
    expect(result.stdout).toContain(`file: ${paths.addOne}\n`);
    expect(result.stdout).toContain('extended header: yes');
    expect(result.stdout).toContain('constants: in a segment\n');
    expect(result.stdout).toContain('methods: forward\n');
    expect(result.stdout).toContain('    0: float32 tensor of shape [3] (static), dim order [0]\n');
    expect(result.stdout).toContain('  operators: aten::add.out\n');
    expect(result.stdout).toContain('  backends: none\n');
    expect(result.stdout).toContain('  instructions: 1,');
    expect(result.stdout.endsWith('\nverdict: runnable here\n')).toBe(true);
  });

  it('json describes add-one', async () => {
    const result = await cli('inspect', '--json', paths.addOne);
    expect(result.status).toBe(0);
    const report = JSON.parse(result.stdout) as {
      runnable: boolean;
      verdict: string;
      info: { hasExtendedHeader: boolean; constantStorage: string };
      methods: { name: string; inputs: { kind: string; dtype: string; shape: number[]; dynamism: string }[]; operators: string[] }[];
    };
    expect(report.runnable).toBe(true);
    expect(report.verdict).toBe('runnable here');
    expect(report.info.hasExtendedHeader).toBe(true);
    expect(report.info.constantStorage).toBe('segment');
    expect(report.methods.map((method) => method.name)).toEqual(['forward']);
    expect(report.methods[0]!.inputs).toEqual([{ kind: 'tensor', dtype: 'float32', shape: [3], dimOrder: [0], dynamism: 'static' }]);
    expect(report.methods[0]!.operators).toEqual(['aten::add.out']);
  });

  it('verdict names what is missing', async () => {
    const result = await cli('inspect', paths.unsupported);
    expect(result.status).toBe(0);
    const verdict = result.stdout.split('\n').find((line) => line.startsWith('verdict: '));
    expect(verdict).toMatch(/^verdict: not runnable here: \(1\) .* \(2\) /);
    expect(verdict).toMatch(/\(1\) operator acme::frobnicate\.out .*\(used by method forward\) \(2\)/);
    expect(verdict).toMatch(/\(2\) backend 'AcmeBackend' .*\(used by method forward\)$/);
  });

  it('json lists missing parts', async () => {
    const result = await cli('inspect', '--json', paths.unsupported);
    const report = JSON.parse(result.stdout) as { runnable: boolean; missing: { operators: { name: string }[]; backends: { name: string }[] } };
    expect(report.runnable).toBe(false);
    expect(report.missing.operators.map((item) => item.name)).toEqual(['acme::frobnicate.out']);
    expect(report.missing.backends.map((item) => item.name)).toEqual(['AcmeBackend']);
  });

  it('scalar kinds', async () => {
    const result = await cli('inspect', paths.scalars);
    expect(result.stdout).toContain('methods: echo_int, echo_double, echo_bool, constant\n');
    expect(result.stdout).toMatch(/method echo_double\n {2}inputs:\n {4}0: Double\n {2}outputs:\n {4}0: Double\n/);
    expect(result.stdout).toMatch(/method constant\n {2}inputs: none\n/);
  });

  it('dynamic bound shown', async () => {
    const result = await cli('inspect', paths.dynamic);
    expect(result.stdout).toContain('0: float32 tensor of shape [8] (each size at most the bound), dim order [0]');
  });

  it.skipIf(!hasSharedPte)('upstream AddModel facts', async () => {
    const path = join(sharedPteDir, 'et-arduino-AddModel.pte');
    const expected = readExpected('et-arduino-AddModel') as ReturnType<typeof readExpected> & { size: number };
    const result = await cli('inspect', '--json', path);
    const report = JSON.parse(result.stdout) as { info: { fileSize: number; hasExtendedHeader: boolean }; methods: { name: string; inputs: { shape: number[]; dtype: string }[] }[]; runnable: boolean };
    expect(report.info.fileSize).toBe(expected.size);
    expect(report.info.hasExtendedHeader).toBe(true);
    expect(report.methods.map((method) => method.name)).toEqual([expected.method]);
    expect(report.methods[0]!.inputs.map((input) => input.shape)).toEqual(expected.inputs.map((input) => input.shape));
    expect(report.methods[0]!.inputs.map((input) => input.dtype)).toEqual(expected.inputs.map((input) => input.dtype));
    expect(report.runnable).toBe(true);
  });

  it('missing file', async () => {
    const path = join(folder, 'absent.pte');
    const result = await cli('inspect', path);
    expect(result.status).toBe(1);
    expectOneLineError(result, new RegExp(`^embed-image: ${path}: file not found; pass the path of an ExecuTorch program \\(\\.pte\\) \\(error code ERR_FILE_NOT_FOUND\\)`));
  });

  it('folder instead of file', async () => {
    const result = await cli('inspect', folder);
    expect(result.status).toBe(1);
    expectOneLineError(result, /not a regular file.*ERR_FILE_READ/);
  });

  it('not a pte file', async () => {
    const result = await cli('inspect', paths.x3);
    expect(result.status).toBe(1);
    expectOneLineError(result, /x3\.npy: not an ExecuTorch program.*\(error code ERR_PTE_/);
  });

  it('short text file', async () => {
    const path = join(folder, 'notes.txt');
    await writeFile(path, 'hello\n');
    const result = await cli('inspect', path);
    expect(result.status).toBe(1);
    expectOneLineError(result, /notes\.txt.*\(error code ERR_PTE_/);
  });

  it('other extension accepted', async () => {
    const path = join(folder, 'add-one.bin');
    await copyFile(paths.addOne, path);
    const result = await cli('inspect', path);
    expect(result.status).toBe(0);
  });
});

describe('cli run', () => {
  it('add-one writes output', async () => {
    const output = join(folder, 'add-one-out.npy');
    const result = await cli('run', paths.addOne, '--input', paths.x3, '--output', output);
    expect(result.stderr).toBe('');
    expect(result.status).toBe(0);
    expect(parseJsonLines(result.stdout)).toEqual([{ output: 0, kind: 'tensor', dtype: 'float32', shape: [3], file: output }]);
    expectTensor(await readNpy(output), 'float32', [3], [2, 3, 4]);
  });

  it('output replaced, no temp left', async () => {
    const runFolder = join(folder, 'atomic');
    await mkdir(runFolder);
    const output = join(runFolder, 'y.npy');
    await writeFile(output, 'stale');
    const result = await cli('run', paths.addOne, '-i', paths.x3, '-o', output, '--threads', '1');
    expect(result.status).toBe(0);
    expect(await readdir(runFolder)).toEqual(['y.npy']);
    expectTensor(await readNpy(output), 'float32', [3], [2, 3, 4]);
  });

  it('several outputs use prefix', async () => {
    const input = join(folder, 'x2.npy');
    await writeNpy(input, float32([2], [0.5, -1]));
    const result = await cli('run', paths.twoOutputs, '-i', input, '-o', join(folder, 'pair.npy'));
    expect(result.status).toBe(0);
    const lines = parseJsonLines(result.stdout);
    expect(lines.map((line) => line.file)).toEqual([join(folder, 'pair.0.npy'), join(folder, 'pair.1.npy')]);
    expectTensor(await readNpy(join(folder, 'pair.0.npy')), 'float32', [2], [1.5, 0]);
    expectTensor(await readNpy(join(folder, 'pair.1.npy')), 'float32', [2], [2.5, 1]);
  });

  it('int literal', async () => {
    const result = await cli('run', paths.scalars, '-m', 'echo_int', '-i', 'int:-7');
    expect(result.status).toBe(0);
    expect(result.stdout).toBe('{"output":0,"kind":"int","value":-7}\n');
  });

  it('int beyond 2^53 exact', async () => {
    const result = await cli('run', paths.scalars, '-m', 'echo_int', '-i', 'int:9007199254740993');
    expect(result.stdout).toBe('{"output":0,"kind":"int","value":9007199254740993}\n');
  });

  it('int from 0-d npy', async () => {
    const input = join(folder, 'int0d.npy');
    await writeNpy(input, { dtype: 'int64', shape: [], data: new BigInt64Array([5n]) });
    const result = await cli('run', paths.scalars, '-m', 'echo_int', '-i', input);
    expect(result.stdout).toBe('{"output":0,"kind":"int","value":5}\n');
  });

  it('double literal', async () => {
    const result = await cli('run', paths.scalars, '-m', 'echo_double', '-i', 'double:0.25');
    expect(result.stdout).toBe('{"output":0,"kind":"double","value":0.25}\n');
  });

  it('double infinity as string', async () => {
    const result = await cli('run', paths.scalars, '-m', 'echo_double', '-i', 'double:-inf');
    expect(result.stdout).toBe('{"output":0,"kind":"double","value":"-Infinity"}\n');
  });

  it('bool literal', async () => {
    const result = await cli('run', paths.scalars, '-m', 'echo_bool', '-i', 'bool:true');
    expect(result.stdout).toBe('{"output":0,"kind":"bool","value":true}\n');
  });

  it('no inputs no output', async () => {
    const result = await cli('run', paths.scalars, '-m', 'constant');
    expect(result.status).toBe(0);
    expect(result.stdout).toBe('{"output":0,"kind":"int","value":42}\n');
  });

  it('dynamic input within bound', async () => {
    const input = join(folder, 'x4.npy');
    const output = join(folder, 'dynamic-out.npy');
    await writeNpy(input, float32([4], [1, 2, 3, 4]));
    const result = await cli('run', paths.dynamic, '-i', input, '-o', output);
    expect(result.stderr).toBe('');
    expectTensor(await readNpy(output), 'float32', [4], [2, 4, 6, 8]);
  });

  it('dynamic input over bound', async () => {
    const input = join(folder, 'x9.npy');
    await writeNpy(input, float32([9], [1, 2, 3, 4, 5, 6, 7, 8, 9]));
    const result = await cli('run', paths.dynamic, '-i', input, '-o', join(folder, 'unused.npy'));
    expect(result.status).toBe(1);
    expectOneLineError(result, /dimension 0 is 9, the method expects at most 8 \(error code ERR_INVALID_INPUT\)/);
  });

  it('missing input option', async () => {
    const result = await cli('run', paths.addOne, '-o', join(folder, 'unused.npy'));
    expect(result.status).toBe(1);
    expectOneLineError(result, /method "forward" takes 1 input \(float32 tensor of shape \[3\] \(static\)\) but 0 --input options were given/);
  });

  it('too many inputs', async () => {
    const result = await cli('run', paths.addOne, '-i', paths.x3, '-i', paths.x3, '-o', join(folder, 'unused.npy'));
    expect(result.status).toBe(1);
    expectOneLineError(result, /takes 1 input .* but 2 --input options were given.*ERR_INVALID_INPUT/);
  });

  it('wrong input dtype', async () => {
    const input = join(folder, 'f64.npy');
    await writeNpy(input, { dtype: 'float64', shape: [3], data: new Float64Array([1, 2, 3]) });
    const result = await cli('run', paths.addOne, '-i', input, '-o', join(folder, 'unused.npy'));
    expect(result.status).toBe(1);
    expectOneLineError(result, /input 0 of method "forward" \(float64 array of shape \[3\] in .*f64\.npy\): the method expects dtype float32, the file has float64; convert it first \(in numpy: array\.astype\('float32'\)\)/);
  });

  it('wrong input shape', async () => {
    const input = join(folder, 'x4b.npy');
    await writeNpy(input, float32([4], [1, 2, 3, 4]));
    const result = await cli('run', paths.addOne, '-i', input, '-o', join(folder, 'unused.npy'));
    expect(result.status).toBe(1);
    expectOneLineError(result, /shape \[4\] does not fit the expected float32 tensor of shape \[3\] \(static\): dimension 0 is 4, the method expects 3/);
  });

  it('wrong input rank', async () => {
    const input = join(folder, 'x1x3.npy');
    await writeNpy(input, float32([1, 3], [1, 2, 3]));
    const result = await cli('run', paths.addOne, '-i', input, '-o', join(folder, 'unused.npy'));
    expectOneLineError(result, /it has 2 dimensions, the method expects 1/);
  });

  it('literal for tensor input', async () => {
    const result = await cli('run', paths.addOne, '-i', 'double:1', '-o', join(folder, 'unused.npy'));
    expect(result.status).toBe(1);
    expectOneLineError(result, /the method expects a float32 tensor of shape \[3\] \(static\); pass a \.npy file/);
  });

  it('wrong literal kind', async () => {
    const result = await cli('run', paths.scalars, '-m', 'echo_bool', '-i', 'int:1');
    expect(result.status).toBe(1);
    expectOneLineError(result, /the method expects a Bool; pass bool:VALUE/);
  });

  it('invalid int literal', async () => {
    const result = await cli('run', paths.scalars, '-m', 'echo_int', '-i', 'int:three');
    expect(result.status).toBe(2);
    expectOneLineError(result, /--input int:three: "three" is not a decimal integer/);
  });

  it('missing input file', async () => {
    const input = join(folder, 'absent.npy');
    const result = await cli('run', paths.addOne, '-i', input, '-o', join(folder, 'unused.npy'));
    expect(result.status).toBe(1);
    expectOneLineError(result, /absent\.npy: file not found.*ERR_FILE_NOT_FOUND/);
  });

  it('malformed input file', async () => {
    const input = join(folder, 'broken.npy');
    await writeFile(input, (await readFile(paths.x3)).subarray(0, 60));
    const result = await cli('run', paths.addOne, '-i', input, '-o', join(folder, 'unused.npy'));
    expect(result.status).toBe(1);
    expectOneLineError(result, /broken\.npy: truncated: .*\(error code ERR_NPY\)/);
  });

  it('missing output option', async () => {
    const result = await cli('run', paths.addOne, '-i', paths.x3);
    expect(result.status).toBe(2);
    expectOneLineError(result, /method "forward" returns 1 tensor; pass --output FILE\.npy/);
  });

  it('output without tensor outputs', async () => {
    const result = await cli('run', paths.scalars, '-m', 'constant', '-o', join(folder, 'unused.npy'));
    expect(result.status).toBe(2);
    expectOneLineError(result, /method "constant" has no tensor outputs.*remove --output/);
  });

  it('output folder missing', async () => {
    const output = join(folder, 'no-such-folder', 'y.npy');
    const result = await cli('run', paths.addOne, '-i', paths.x3, '-o', output);
    expect(result.status).toBe(1);
    expect(result.stderr).toMatch(/no-such-folder\/y\.npy: cannot write the file: the folder .*no-such-folder does not exist; create it first.*ERR_FILE_WRITE/);
    expect(result.stderr).not.toMatch(/\.tmp/);
  });

  it('unknown method', async () => {
    const result = await cli('run', paths.scalars, '-m', 'nope');
    expect(result.status).toBe(1);
    expectOneLineError(result, /has no method "nope"; its methods are echo_int, echo_double, echo_bool, constant.*ERR_METHOD_NOT_FOUND/);
  });

  it('unsupported operator', async () => {
    const input = join(folder, 'x2u.npy');
    await writeNpy(input, float32([2], [1, 2]));
    const result = await cli('run', paths.unsupported, '-i', input, '-o', join(folder, 'unused.npy'));
    expect(result.status).toBe(1);
    expectOneLineError(result, /acme::frobnicate\.out.*run "embed-image inspect .*unsupported\.pte" to see everything this build lacks/);
  });
});

describe('cli shipped model', () => {
  const model = join(repoRoot, 'fixtures', 'models', 'add-one.pte');
  const input = join(repoRoot, 'fixtures', 'models', 'add-one-input.npy');

  it('add-one.pte matches the writer', async () => {
    // EMBED_IMAGE_UPDATE_FIXTURES=1 rewrites the file from the writer instead of comparing.
    if (process.env.EMBED_IMAGE_UPDATE_FIXTURES === '1') await writeFile(model, buildAddOneProgram());
    const shipped = await readFile(model);
    expect(shipped.equals(Buffer.from(buildAddOneProgram()))).toBe(true);
  });

  it('README run command', async () => {
    checkDistIsFresh();
    const output = join(folder, 'readme-y.npy');
    const result = await runCli(['run', model, '--input', input, '--output', output]);
    expect(result.stderr).toBe('');
    expect(result.status).toBe(0);
    expect(parseJsonLines(result.stdout)).toEqual([{ output: 0, kind: 'tensor', dtype: 'float32', shape: [3], file: output }]);
    expectTensor(await readNpy(output), 'float32', [3], [2, 3, 4]);
  });

  it('README inspect command', async () => {
    const result = await runCli(['inspect', model]);
    expect(result.status).toBe(0);
    expect(result.stdout).toMatch(/\nverdict: runnable here\n$/);
  });
});
