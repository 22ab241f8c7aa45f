/**
 * The `compare` command, and the reports it shares with `golden check`: a text table (worst
 * pair first), a JSON report and a JUnit XML report.
 *
 * Exit status of both commands: 0 when every pair is within tolerance, 1 when any is not, and
 * 2 when the comparison could not run (a missing or malformed file, unmatched records, a
 * changed image or model, or a usage error).
 */
import { hostname } from 'node:os';

import { Command, InvalidArgumentError, Option } from 'commander';

import {
  buildReport,
  COMPARE_DEFAULTS,
  describeRecord,
  formatNumber,
  MATCH_MODES,
  matchRecords,
  readVectorSet,
  REPORTED_PERCENTILES,
  type ComparisonReport,
  type MatchMode,
  type PairResult,
  type Tolerance,
} from './compare.js';
import { diagnoseInputs, findInputTensor, readInputTensor } from './diagnose.js';
import { EmbedImageError } from './errors.js';
import { writeFileAtomic } from './atomic-file.js';
import { commandOutput } from './cli-usage.js';

export interface CommandOutput {
  stdout: (text: string) => void;
  stderr: (text: string) => void;
}

/** Routes a command's help and usage errors to `output`, in the CLI's one-line error form. */
export function configureCommand(command: Command, usage: string, output: CommandOutput): Command {
  return command
    .exitOverride()
    .helpOption('-h, --help', 'print this help and exit')
    .configureOutput(commandOutput(output, `${usage} --help`));
}

// ---------------------------------------------------------------------------------------------
// Option parsers

export function parseFraction(name: string, minimum: number, maximum: number) {
  return (text: string): number => {
    const value = Number(text);
    if (text.trim() === '' || !Number.isFinite(value) || value < minimum || value > maximum) {
      throw new InvalidArgumentError(`${name} must be a number from ${minimum} to ${maximum}, got "${text}".`);
    }
    return value;
  };
}

export function parsePositiveInteger(name: string, minimum = 1) {
  return (text: string): number => {
    const value = Number(text);
    if (!/^\d+$/.test(text) || !Number.isSafeInteger(value) || value < minimum) {
      throw new InvalidArgumentError(`${name} must be an integer of at least ${minimum}, got "${text}".`);
    }
    return value;
  };
}

function parseUnitNorm(text: string): boolean | 'auto' {
  if (text === 'auto') return 'auto';
  if (text === 'yes' || text === 'true') return true;
  if (text === 'no' || text === 'false') return false;
  throw new InvalidArgumentError(`--unit-norm must be auto, yes or no, got "${text}".`);
}

function parseMatch(text: string): MatchMode {
  if (!(MATCH_MODES as string[]).includes(text)) throw new InvalidArgumentError(`--match must be one of ${MATCH_MODES.join(', ')}, got "${text}".`);
  return text as MatchMode;
}

// ---------------------------------------------------------------------------------------------
// Text report

function pad(text: string, width: number): string {
  return text.length >= width ? text : text + ' '.repeat(width - text.length);
}

function describeTolerance(report: ComparisonReport): string {
  const t = report.tolerance;
  const unit = report.unitNormExpected ? `, unit length required (|norm - 1| <= ${t.normTolerance})` : ', unit length not required';
  const neighbours = t.minTopKOverlap > 0 ? `, min top-k overlap ${t.minTopKOverlap}` : '';
  return `min cosine ${t.minCosine}, max abs ${t.maxAbs}${unit}${neighbours}`;
}

function tableRow(result: PairResult): string[] {
  return [
    result.failures.length > 0 ? 'FAIL' : 'ok',
    formatNumber(result.cosine, 9),
    formatNumber(result.maxAbs),
    formatNumber(result.l2),
    formatNumber(result.normA, 7),
    formatNumber(result.normB, 7),
    result.key,
  ];
}

/** Formats the report as text: header, table of pairs (worst first, at most `rows`), statistics, verdict. */
export function formatReport(report: ComparisonReport, rows: number): string {
  const lines: string[] = [];
  lines.push(`${report.a.label}: ${report.a.source}${report.a.format ? ` (${report.a.format})` : ''}`);
  lines.push(`${report.b.label}: ${report.b.source}${report.b.format ? ` (${report.b.format})` : ''}`);
  lines.push(`pairs: ${report.pairs.length}${report.match ? `, matched by ${report.match}` : ''}, dimensions: ${report.dimensions}`);
  lines.push(`tolerance: ${describeTolerance(report)}`);
  lines.push('');

  const header = ['status', 'cosine', 'max_abs', 'l2', `norm_${report.a.label}`, `norm_${report.b.label}`, 'image'];
  const failing = report.pairs.filter((result) => result.failures.length > 0);
  // Every failing pair is listed, however many; passing pairs fill the rest of `rows`.
  const shown = report.pairs.slice(0, Math.max(rows, failing.length));
  const cells = [header, ...shown.map(tableRow)];
  const widths = header.map((_, column) => Math.max(...cells.map((row) => row[column]!.length)));
  lines.push(header.map((cell, column) => pad(cell, widths[column]!)).join('  ').trimEnd());
  for (const result of shown) {
    lines.push(tableRow(result).map((cell, column) => pad(cell, widths[column]!)).join('  ').trimEnd());
    for (const failure of result.failures) lines.push(`    ${failure.message}`);
    if (result.diagnosis !== undefined) lines.push(`    ${result.diagnosis}`);
  }
  if (report.pairs.length > shown.length) lines.push(`... ${report.pairs.length - shown.length} more pairs, all within tolerance (see --rows)`);
  lines.push('');

  const percentileName = (p: number): string => {
    if (p === 0) return 'min';
    if (p === 100) return 'max';
    return `p${p}`;
  };
  const percentileHeader = REPORTED_PERCENTILES.map(percentileName);
  lines.push(`percentiles over pairs: ${percentileHeader.join(' / ')}`);
  lines.push(`  cosine:  ${REPORTED_PERCENTILES.map((p) => formatNumber(report.percentiles.cosine[`p${p}`]!, 9)).join(' / ')}`);
  lines.push(`  max abs: ${REPORTED_PERCENTILES.map((p) => formatNumber(report.percentiles.maxAbs[`p${p}`]!)).join(' / ')}`);
  lines.push(`  l2:      ${REPORTED_PERCENTILES.map((p) => formatNumber(report.percentiles.l2[`p${p}`]!)).join(' / ')}`);
  if (report.neighbours) {
    const n = report.neighbours;
    const same = Math.round(n.top1Agreement * report.pairs.length);
    lines.push(`nearest neighbours (top ${n.k}, cosine within each set): mean overlap ${formatNumber(n.meanOverlap, 4)}, min ${formatNumber(n.minOverlap, 4)}, same nearest neighbour for ${same} of ${report.pairs.length}`);
    for (const item of n.differing.slice(0, 5)) {
      lines.push(`  ${item.key}: overlap ${formatNumber(item.overlap, 4)}; ${report.a.label}: ${item.neighboursA.join(', ')}; ${report.b.label}: ${item.neighboursB.join(', ')}`);
    }
  }
  for (const note of report.notes) lines.push(`note: ${note}`);
  lines.push(verdictLine(report));
  return `${lines.join('\n')}\n`;
}

export function verdictLine(report: ComparisonReport): string {
  if (report.verdict === 'pass') return `verdict: pass (${report.pairs.length} of ${report.pairs.length} pairs within tolerance)`;
  const parts: string[] = [];
  if (report.failed > 0) parts.push(`${report.failed} of ${report.pairs.length} pairs out of tolerance`);
  if (report.neighbourFailure !== undefined) parts.push(report.neighbourFailure);
  return `verdict: FAIL: ${parts.join('; ')}`;
}

// ---------------------------------------------------------------------------------------------
// JSON report

/** Converts the report to plain JSON data. Vectors are left out, and records are named by path, sha256 and index. */
export function reportToJson(report: ComparisonReport): unknown {
  const side = (record: PairResult['a']) => ({ index: record.index, ...(record.path !== undefined ? { path: record.path } : {}), ...(record.sha256 !== undefined ? { sha256: record.sha256 } : {}) });
  const finite = (value: number): number | null => (Number.isFinite(value) ? value : null);
  return {
    kind: report.kind,
    verdict: report.verdict,
    a: report.a,
    b: report.b,
    ...(report.match !== undefined ? { match: report.match } : {}),
    dimensions: report.dimensions,
    tolerance: report.tolerance,
    unitNormExpected: report.unitNormExpected,
    failed: report.failed,
    total: report.pairs.length,
    percentiles: report.percentiles,
    ...(report.neighbours ? { neighbours: report.neighbours } : {}),
    ...(report.neighbourFailure !== undefined ? { neighbourFailure: report.neighbourFailure } : {}),
    notes: report.notes,
    pairs: report.pairs.map((result) => ({
      key: result.key,
      pass: result.failures.length === 0,
      cosine: finite(result.cosine),
      maxAbs: finite(result.maxAbs),
      maxAbsIndex: result.maxAbsIndex,
      l2: finite(result.l2),
      normA: finite(result.normA),
      normB: finite(result.normB),
      failures: result.failures,
      ...(result.diagnosis !== undefined ? { diagnosis: result.diagnosis } : {}),
      a: side(result.a),
      b: side(result.b),
    })),
  };
}

// ---------------------------------------------------------------------------------------------
// JUnit XML report

/** Escapes text for XML attributes and content, dropping characters XML 1.0 cannot hold. */
export function escapeXml(text: string): string {
  return text
    .replace(/[^\t\n\r\u0020-\uD7FF\uE000-\uFFFD\u{10000}-\u{10FFFF}]/gu, '')
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&apos;');
}

function attributes(values: Record<string, string | number>): string {
  return Object.entries(values)
    .map(([name, value]) => ` ${name}="${escapeXml(String(value))}"`)
    .join('');
}

/**
 * Formats the report as JUnit XML (the Ant/Jenkins form that CI systems read): one test suite,
 * one test case per pair with a <failure> for pairs out of tolerance, and one more test case for
 * the neighbour agreement when --min-top-k-overlap is set.
 */
export function formatJunit(report: ComparisonReport, suiteName: string, seconds: number, now = new Date()): string {
  const cases: string[] = [];
  const classname = `embed-image.${report.kind}`;
  const inOrder = [...report.pairs].sort((x, y) => x.a.index - y.a.index);
  for (const result of inOrder) {
    const metrics = `cosine ${formatNumber(result.cosine, 9)}, max abs ${formatNumber(result.maxAbs)}, l2 ${formatNumber(result.l2)}, norms ${formatNumber(result.normA, 7)} and ${formatNumber(result.normB, 7)}`;
    const open = `    <testcase${attributes({ name: result.key, classname, time: '0' })}`;
    if (result.failures.length === 0) {
      cases.push(`${open}/>`);
      continue;
    }
    const message = result.failures.map((failure) => failure.message).join('; ');
    const details = [metrics, ...result.failures.map((failure) => failure.message), ...(result.diagnosis !== undefined ? [result.diagnosis] : [])].join('\n');
    cases.push(`${open}>\n      <failure${attributes({ message, type: 'tolerance' })}>${escapeXml(details)}</failure>\n    </testcase>`);
  }
  let failures = report.failed;
  if (report.neighbours && report.tolerance.minTopKOverlap > 0) {
    const open = `    <testcase${attributes({ name: `top-${report.neighbours.k} neighbour overlap`, classname, time: '0' })}`;
    if (report.neighbourFailure === undefined) {
      cases.push(`${open}/>`);
    } else {
      failures += 1;
      cases.push(`${open}>\n      <failure${attributes({ message: report.neighbourFailure, type: 'neighbours' })}>${escapeXml(report.neighbourFailure)}</failure>\n    </testcase>`);
    }
  }
  const properties = [
    ['a', report.a.source],
    ['b', report.b.source],
    ['min-cosine', String(report.tolerance.minCosine)],
    ['max-abs', String(report.tolerance.maxAbs)],
    ['dimensions', String(report.dimensions)],
  ].map(([name, value]) => `      <property${attributes({ name: name!, value: value! })}/>`);
  const counts = { tests: cases.length, failures, errors: 0, skipped: 0, time: seconds.toFixed(3) };
  const summary = formatReport(report, 0);
  return [
    '<?xml version="1.0" encoding="UTF-8"?>',
    `<testsuites${attributes({ name: suiteName, ...counts })}>`,
    `  <testsuite${attributes({ name: suiteName, ...counts, timestamp: now.toISOString().replace(/\.\d+Z$/, ''), hostname: hostname() || 'localhost' })}>`,
    '    <properties>',
    ...properties,
    '    </properties>',
    ...cases,
    `    <system-out>${escapeXml(summary)}</system-out>`,
    '    <system-err></system-err>',
    '  </testsuite>',
    '</testsuites>',
    '',
  ].join('\n');
}

/** Formats a JUnit report for a comparison that could not run: one test case with an <error>. */
export function formatJunitError(error: EmbedImageError, suiteName: string, seconds: number, now = new Date()): string {
  const counts = { tests: 1, failures: 0, errors: 1, skipped: 0, time: seconds.toFixed(3) };
  return [
    '<?xml version="1.0" encoding="UTF-8"?>',
    `<testsuites${attributes({ name: suiteName, ...counts })}>`,
    `  <testsuite${attributes({ name: suiteName, ...counts, timestamp: now.toISOString().replace(/\.\d+Z$/, ''), hostname: hostname() || 'localhost' })}>`,
    `    <testcase${attributes({ name: 'run', classname: 'embed-image', time: '0' })}>`,
    `      <error${attributes({ message: error.message, type: error.code })}>${escapeXml(`${error.message} (error code ${error.code})`)}</error>`,
    '    </testcase>',
    '  </testsuite>',
    '</testsuites>',
    '',
  ].join('\n');
}

// ---------------------------------------------------------------------------------------------
// Shared command plumbing

export interface ReportFiles {
  junit?: string;
  json?: string;
}

/** Writes the requested report files, the text report to stdout, and returns the exit status (0 or 1). */
export async function emitReport(report: ComparisonReport, files: ReportFiles, suiteName: string, started: number, rows: number, output: CommandOutput): Promise<number> {
  const seconds = (Date.now() - started) / 1000;
  if (files.json !== undefined) await writeFileAtomic(files.json, `${JSON.stringify(reportToJson(report), null, 2)}\n`);
  if (files.junit !== undefined) await writeFileAtomic(files.junit, formatJunit(report, suiteName, seconds));
  output.stdout(formatReport(report, rows));
  return report.verdict === 'pass' ? 0 : 1;
}

/**
 * Runs a comparison action with this module's exit status: an EmbedImageError means the
 * comparison could not run, so it is printed, written as a JUnit <error> when --junit is set,
 * and gives status 2.
 */
export async function runComparison(action: () => Promise<number>, files: ReportFiles, suiteName: string, output: CommandOutput): Promise<number> {
  const started = Date.now();
  try {
    return await action();
  } catch (error) {
    if (!(error instanceof EmbedImageError)) throw error;
    output.stderr(`embed-image: ${error.message} (error code ${error.code})\n`);
    if (files.junit !== undefined) {
      await writeFileAtomic(files.junit, formatJunitError(error, suiteName, (Date.now() - started) / 1000)).catch((writeError: unknown) => {
        output.stderr(`embed-image: ${(writeError as Error).message}\n`);
      });
    }
    return 2;
  }
}

/** Adds the tolerance options shared by compare and golden check. */
export function addToleranceOptions(command: Command, defaults: { minCosine?: number; maxAbs?: number; text: string }): Command {
  return command
    .addOption(new Option('--min-cosine <c>', `smallest cosine similarity a pair may have, from -1 to 1 ${defaults.text}`).argParser(parseFraction('--min-cosine', -1, 1)))
    .addOption(new Option('--max-abs <a>', `largest absolute difference of one vector element ${defaults.text}`).argParser(parseFraction('--max-abs', 0, Number.MAX_VALUE)))
    .addOption(new Option('--unit-norm <mode>', 'require unit-length vectors: yes, no, or auto (when the median norm of both sides is within 1e-3 of 1)').default('auto').argParser(parseUnitNorm))
    .addOption(new Option('--norm-tolerance <t>', 'largest |norm - 1| of a vector that must have unit length').default(COMPARE_DEFAULTS.normTolerance).argParser(parseFraction('--norm-tolerance', 0, 1)))
    .addOption(new Option('--top-k <k>', 'neighbours per image for the nearest-neighbour agreement; 0 skips it').default(5).argParser(parsePositiveInteger('--top-k', 0)))
    .addOption(new Option('--min-top-k-overlap <f>', 'smallest mean top-k neighbour overlap, from 0 to 1; 0 reports it without failing').default(0).argParser(parseFraction('--min-top-k-overlap', 0, 1)))
    .addOption(new Option('--rows <n>', 'pairs listed in the table, worst first; failing pairs are always listed').default(20).argParser(parsePositiveInteger('--rows', 0)))
    .option('--junit <file>', 'also write a JUnit XML report to FILE')
    .option('--json <file>', 'also write a JSON report to FILE');
}

export interface ToleranceOptions {
  minCosine?: number;
  maxAbs?: number;
  unitNorm: boolean | 'auto';
  normTolerance: number;
  topK: number;
  minTopKOverlap: number;
  rows: number;
  junit?: string;
  json?: string;
}

export function toleranceFrom(options: ToleranceOptions, defaults: { minCosine: number; maxAbs: number }): Tolerance {
  return {
    minCosine: options.minCosine ?? defaults.minCosine,
    maxAbs: options.maxAbs ?? defaults.maxAbs,
    unitNorm: options.unitNorm,
    normTolerance: options.normTolerance,
    minTopKOverlap: options.minTopKOverlap,
  };
}

// ---------------------------------------------------------------------------------------------
// compare

interface CompareOptions extends ToleranceOptions {
  match: MatchMode;
  dim?: number;
  inputsA?: string;
  inputsB?: string;
}

/** Adds a diagnosis to each failing pair whose input tensors are found in both folders. */
async function diagnoseFailures(report: ComparisonReport, inputsA: string, inputsB: string): Promise<void> {
  for (const result of report.pairs) {
    if (result.failures.length === 0) continue;
    const fileA = await findInputTensor(inputsA, result.a);
    const fileB = await findInputTensor(inputsB, result.b);
    if (fileA === undefined || fileB === undefined) {
      const missing = [fileA === undefined ? `${inputsA} (for ${describeRecord(result.a)})` : '', fileB === undefined ? `${inputsB} (for ${describeRecord(result.b)})` : ''].filter(Boolean).join(' and ');
      result.diagnosis = `no input tensor found in ${missing}; name them IMAGE.npy or IMAGE.json after the image file`;
      continue;
    }
    const diagnosis = diagnoseInputs(await readInputTensor(fileA), await readInputTensor(fileB), { a: report.a.label, b: report.b.label });
    result.diagnosis = diagnosis.message;
  }
}

const COMPARE_HELP = `
Formats (chosen from the extension and content):
  embed-image JSON or JSONL records {"path", "sha256", "embedding": [...]}, or a golden file
  a JSON array of numbers (one vector) or of arrays (one vector each)
  JSON objects with an "embedding" field, alone, in an array or in a "records" array
  .npy float32 or float64 of shape [N, D] or [D]
  raw little-endian float32, N*D values, with --dim D

Records are matched by --match: path, name (the file name without its folder), sha256, or
position; auto tries path, then name, then sha256, then position.

Diagnosis: with --inputs-a DIR and --inputs-b DIR, each failing pair's model input tensors
(IMAGE.npy from "embed-image preprocess", or IMAGE.json {"shape", "dtype", "data"} from an app)
are compared to say where the difference starts.

Exit status: 0 every pair within tolerance, 1 some pair out of tolerance, 2 the comparison
could not run (missing or malformed file, unmatched records, usage error).

Example:
  embed-image compare phone.json desktop.jsonl --match name --junit compare.xml
`;

/** Registers `compare` on the root command. */
export function registerCompareCommand(program: Command, output: CommandOutput, setStatus: (status: number) => void): void {
  const command = configureCommand(program.command('compare'), 'embed-image compare', output)
    .description('compare two sets of embeddings (such as a phone dump and a desktop run) pair by pair and as a whole')
    .argument('<a>', 'the first vector file')
    .argument('<b>', 'the second vector file');
  addToleranceOptions(command, { text: `(default: ${COMPARE_DEFAULTS.minCosine} for --min-cosine, ${COMPARE_DEFAULTS.maxAbs} for --max-abs)` })
    .addOption(new Option('--match <mode>', `how records are paired: ${MATCH_MODES.join(', ')}`).default('auto').argParser(parseMatch))
    .addOption(new Option('--dim <d>', 'vector length of raw little-endian float32 files').argParser(parsePositiveInteger('--dim')))
    .option('--inputs-a <dir>', 'folder of model input tensors for A, used to diagnose failing pairs')
    .option('--inputs-b <dir>', 'folder of model input tensors for B, used to diagnose failing pairs')
    .addHelpText('after', COMPARE_HELP)
    .action(async (fileA: string, fileB: string, options: CompareOptions) => {
      const status = await runComparison(
        async () => {
          if ((options.inputsA === undefined) !== (options.inputsB === undefined)) {
            throw new EmbedImageError('ERR_INVALID_ARGUMENT', 'pass both --inputs-a and --inputs-b, or neither');
          }
          const started = Date.now();
          const readOptions = options.dim !== undefined ? { dim: options.dim } : {};
          const a = await readVectorSet(fileA, readOptions);
          const b = await readVectorSet(fileB, readOptions);
          const { mode, pairs } = matchRecords(a, b, options.match);
          const report = buildReport({
            kind: 'compare',
            a: { label: 'A', source: fileA, format: a.format },
            b: { label: 'B', source: fileB, format: b.format },
            match: mode,
            pairs,
            tolerance: toleranceFrom(options, COMPARE_DEFAULTS),
            topK: options.topK,
          });
          if (options.inputsA !== undefined && options.inputsB !== undefined) await diagnoseFailures(report, options.inputsA, options.inputsB);
          return emitReport(report, options, 'embed-image compare', started, options.rows, output);
        },
        options,
        'embed-image compare',
        output,
      );
      setStatus(status);
    });
}
