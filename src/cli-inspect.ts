/** The `inspect` command: describes a program and says whether this build can run it. */
import { describeMeta } from './cli-values.js';
import { Program, supportedBackends, supportedOperators, type MethodMeta, type ProgramInfo } from './program.js';

export interface InspectReport {
  file: string;
  info: ProgramInfo;
  methods: (MethodMeta & { runnable: boolean })[];
  /** What this build lacks, by full name, with the methods that need it. */
  missing: {
    operators: { name: string; methods: string[] }[];
    backends: { name: string; methods: string[] }[];
    /** Other problems (unsupported dtypes and the like) as the runtime reports them. */
    other: { code: string; message: string; method: string }[];
  };
  runnable: boolean;
  /**
   * "runnable here"; or "not runnable here: " or "partly runnable here (only METHODS): "
   * followed by what is missing.
   */
  verdict: string;
}

function addUser(list: { name: string; methods: string[] }[], name: string, method: string): void {
  const entry = list.find((item) => item.name === name);
  if (!entry) list.push({ name, methods: [method] });
  else if (!entry.methods.includes(method)) entry.methods.push(method);
}

function usedBy(methods: string[]): string {
  return `used by method${methods.length === 1 ? '' : 's'} ${methods.join(', ')}`;
}

/**
 * Returns the verdict's reasons: each distinct problem message the runtime reported, with the
 * methods it affects, then any missing operator or backend that no message names.
 */
function verdictReasons(methods: MethodMeta[], missing: InspectReport['missing']): string[] {
  const methodsByMessage = new Map<string, string[]>();
  for (const method of methods) {
    for (const problem of method.problems) {
      const users = methodsByMessage.get(problem.message) ?? [];
      if (!users.includes(method.name)) users.push(method.name);
      methodsByMessage.set(problem.message, users);
    }
  }
  const reasons = [...methodsByMessage].map(([message, users]) => `${message} (${usedBy(users)})`);

  const unnamed = (item: { name: string }) => ![...methodsByMessage.keys()].some((message) => message.includes(item.name));
  for (const item of missing.backends.filter(unnamed)) reasons.push(`backend ${item.name} is not in this build's backend list (${usedBy(item.methods)})`);
  for (const item of missing.operators.filter(unnamed)) reasons.push(`operator ${item.name} is not in this build's operator list (${usedBy(item.methods)})`);
  return reasons;
}

/** Loads the program for inspection only (unsupported parts allowed) and builds the report. */
export async function buildInspectReport(path: string): Promise<InspectReport> {
  const program = await Program.load(path, { allowUnsupported: true });
  try {
    const operators = new Set(supportedOperators());
    const backends = new Set(supportedBackends());
    const missing: InspectReport['missing'] = { operators: [], backends: [], other: [] };
    const methods = program.methodNames().map((name) => {
      const meta = program.methodMeta(name);
      for (const operator of meta.operators) if (!operators.has(operator)) addUser(missing.operators, operator, name);
      for (const backend of meta.backends) if (!backends.has(backend)) addUser(missing.backends, backend, name);
      for (const problem of meta.problems) {
        if (problem.code === 'ERR_UNSUPPORTED_OPERATOR' || problem.code === 'ERR_UNSUPPORTED_BACKEND') continue;
        missing.other.push({ ...problem, method: name });
      }
      return { ...meta, runnable: meta.problems.length === 0 };
    });

    const reasons = verdictReasons(methods, missing);
    const runnable = reasons.length === 0;
    const runnableNames = methods.filter((method) => method.runnable).map((method) => method.name);
    // Runtime messages may contain semicolons, so several reasons are numbered.
    const listed = reasons.length === 1 ? reasons[0]! : reasons.map((reason, index) => `(${index + 1}) ${reason}`).join(' ');
    let verdict = 'runnable here';
    if (!runnable && runnableNames.length === 0) verdict = `not runnable here: ${listed}`;
    if (!runnable && runnableNames.length > 0) verdict = `partly runnable here (only ${runnableNames.join(', ')}): ${listed}`;
    return { file: path, info: program.info(), methods, missing, runnable, verdict };
  } finally {
    program.dispose();
  }
}

function formatBytes(count: number): string {
  return `${count} byte${count === 1 ? '' : 's'}`;
}

function formatValues(title: string, metas: MethodMeta['inputs']): string[] {
  if (metas.length === 0) return [`  ${title}: none`];
  const lines = [`  ${title}:`];
  metas.forEach((meta, index) => {
    let line = `    ${index}: ${describeMeta(meta)}`;
    if (meta.kind === 'tensor' && meta.dimOrder) line += `, dim order [${meta.dimOrder.join(', ')}]`;
    lines.push(line);
  });
  return lines;
}

/** Formats the report as the text that `inspect` prints. */
export function formatInspectReport(report: InspectReport): string {
  const info = report.info;
  const segments = info.segments.length === 0 ? 'none' : `${info.segments.length} (${formatBytes(info.segmentDataSize)} from offset ${info.segmentBaseOffset})`;
  const lines = [
    `file: ${report.file}`,
    `size: ${formatBytes(info.fileSize)}, memory-mapped: ${info.mapped ? 'yes' : 'no'}`,
    `format: schema version ${info.schemaVersion}, extended header: ${info.hasExtendedHeader ? 'yes' : 'no'}, program flatbuffer: ${formatBytes(info.programSize)}`,
    `segments: ${segments}`,
    `constants: ${info.constantStorage === 'segment' ? 'in a segment' : info.constantStorage === 'inline' ? 'inline in the program' : 'none'}`,
  ];
  if (info.namedDataKeys.length > 0) lines.push(`named data: ${info.namedDataKeys.length} keys`);
  lines.push(`methods: ${report.methods.map((method) => method.name).join(', ')}`);

  for (const method of report.methods) {
    lines.push('', `method ${method.name}${method.runnable ? '' : ' (not runnable here)'}`);
    lines.push(...formatValues('inputs', method.inputs));
    lines.push(...formatValues('outputs', method.outputs));
    lines.push(`  operators: ${method.operators.length === 0 ? 'none' : method.operators.join(', ')}`);
    lines.push(`  backends: ${method.backends.length === 0 ? 'none' : method.backends.join(', ')}`);
    lines.push(`  instructions: ${method.instructionCount}, values: ${method.valueCount}`);
    lines.push(`  planned memory: ${method.plannedBufferSizes.length === 0 ? 'none' : method.plannedBufferSizes.map(formatBytes).join(' + ')}`);
    for (const problem of method.problems) lines.push(`  problem: ${problem.code}: ${problem.message}`);
  }

  lines.push('', `verdict: ${report.verdict}`);
  return `${lines.join('\n')}\n`;
}
