/**
 * Conformance over real .pte files written by upstream ExecuTorch's exporter, each with an
 * `.expected.json` of inputs and outputs. Every case runs through the Node API and through
 * `embed-image run`, and `inspect` must call each file runnable. Files whose methods run in the
 * XnnpackBackend delegate must also be reported with that backend.
 * The files live outside the repository; without that folder these tests are skipped.
 */
import { readdirSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { readNpy, writeNpy } from '../src/npy.js';
import { Program, type DType, type Tensor, type Value } from '../src/program.js';
import { checkDistIsFresh, parseJsonLines, runCli } from './cli-process.js';
import { expectTensor, fromJson, hasSharedPte, readExpected, sharedPteDir, type ExpectedCase, type JsonTensor, type Tolerance } from './helpers.js';

const names = hasSharedPte ? readdirSync(sharedPteDir).filter((name) => name.endsWith('.pte')).map((name) => name.slice(0, -'.pte'.length)).sort() : [];

/** Files whose methods use the XnnpackBackend delegate, found by loading each for inspection. */
const xnnpackFiles = new Set<string>();
for (const name of names) {
  const program = await Program.load(join(sharedPteDir, `${name}.pte`), { allowUnsupported: true });
  if (program.methodNames().some((method) => program.methodMeta(method).backends.includes('XnnpackBackend'))) xnnpackFiles.add(name);
  program.dispose();
}

function expectOutput(actual: Value | undefined, expected: JsonTensor, tolerance: Tolerance, label: string): void {
  if (expected.shape !== null) {
    expectTensor(actual, expected.dtype as DType, expected.shape, expected.data as number[], tolerance, label);
    return;
  }
  if (expected.dtype === 'Bool') {
    expect(actual, label).toBe(expected.data);
    return;
  }
  expect(typeof actual === 'bigint' || typeof actual === 'number', `${label} is a number`).toBe(true);
  expect(Number(actual), label).toBe(expected.data);
}

function casesOf(name: string): ExpectedCase[] {
  const expected = readExpected(name);
  return [expected, ...(expected.extra_cases ?? [])];
}

/** `run` literal prefixes for the non-tensor dtypes that `.expected.json` files use. */
const LITERAL_PREFIXES: Record<string, string> = { Int: 'int', Double: 'double', Bool: 'bool' };

/** Writes the case's inputs and returns the `run` arguments for them, with --output when needed. */
async function runArguments(path: string, testCase: ExpectedCase, folder: string): Promise<string[]> {
  const args = ['run', path, '--method', testCase.method];
  for (const [index, input] of testCase.inputs.entries()) {
    if (input.shape === null) {
      args.push('--input', `${LITERAL_PREFIXES[input.dtype]}:${String(input.data)}`);
      continue;
    }
    const file = join(folder, `input-${index}.npy`);
    await writeNpy(file, fromJson(input) as Tensor);
    args.push('--input', file);
  }
  const tensorOutputs = testCase.outputs.filter((output) => output.shape !== null).length;
  if (tensorOutputs === 1) args.push('--output', join(folder, 'out.npy'));
  if (tensorOutputs > 1) args.push('--output', join(folder, 'out'));
  return args;
}

describe.skipIf(!hasSharedPte)('shared pte', () => {
  let scratch: string;

  beforeAll(async () => {
    checkDistIsFresh();
    scratch = await mkdtemp(join(tmpdir(), 'embed-image-shared-'));
  });

  afterAll(async () => {
    await rm(scratch, { recursive: true, force: true });
  });

  for (const name of names) {
    const path = join(sharedPteDir, `${name}.pte`);
    const tolerance = readExpected(name).tolerance;

    describe(name, () => {
      it('api loads by default', async () => {
        const program = await Program.load(path);
        expect(program.methodNames().length).toBeGreaterThan(0);
        program.dispose();
      });

      it('inspect verdict runnable', async () => {
        const result = await runCli(['inspect', path]);
        expect(result.status).toBe(0);
        expect(result.stdout).toMatch(/\nverdict: runnable here\n$/);
      });

      it.runIf(xnnpackFiles.has(name))('inspect names XnnpackBackend', async () => {
        const result = await runCli(['inspect', '--json', path]);
        const report = JSON.parse(result.stdout) as { methods: { backends: string[] }[] };
        expect(report.methods.flatMap((method) => method.backends)).toContain('XnnpackBackend');
      });

      for (const [index, testCase] of casesOf(name).entries()) {
        it(`api case ${index} ${testCase.method}`, async () => {
          // Loaded for inspection too, so one unsupported method does not hide the others' results.
          const program = await Program.load(path, { allowUnsupported: true });
          try {
            const outputs = await program.execute(testCase.method, testCase.inputs.map(fromJson));
            expect(outputs.length, 'output count').toBe(testCase.outputs.length);
            testCase.outputs.forEach((expected, output) => expectOutput(outputs[output], expected, tolerance, `output ${output}`));
          } finally {
            program.dispose();
          }
        });

        it(`cli case ${index} ${testCase.method}`, async () => {
          const folder = await mkdtemp(join(scratch, `${name}-`));
          const result = await runCli(await runArguments(path, testCase, folder));
          expect(result.stderr).toBe('');
          expect(result.status).toBe(0);

          const lines = parseJsonLines(result.stdout);
          expect(lines.length, 'JSON lines').toBe(testCase.outputs.length);
          const tensorOutputs = testCase.outputs.filter((output) => output.shape !== null).length;
          for (const [output, expected] of testCase.outputs.entries()) {
            const line = lines[output]!;
            expect(line.output).toBe(output);
            if (expected.shape === null) {
              expect(line.kind).toBe(expected.dtype.toLowerCase());
              expect(line.value).toBe(expected.data);
              continue;
            }
            const file = tensorOutputs === 1 ? join(folder, 'out.npy') : join(folder, `out.${output}.npy`);
            expect(line.file).toBe(file);
            expect(line.shape).toEqual(expected.shape);
            expectOutput(await readNpy(file), expected, tolerance, `output ${output} (${file})`);
          }
        });
      }
    });
  }
});
