/** Runs `node bin/embed-image.js` as a child process for the CLI tests. */
import { spawn } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

import { repoRoot } from './helpers.js';

export interface CliResult {
  status: number | null;
  stdout: string;
  stderr: string;
}

function newestSourceTime(folder: string): number {
  let newest = 0;
  for (const entry of readdirSync(folder, { withFileTypes: true })) {
    const path = join(folder, entry.name);
    if (entry.isDirectory()) newest = Math.max(newest, newestSourceTime(path));
    else if (entry.name.endsWith('.ts')) newest = Math.max(newest, statSync(path).mtimeMs);
  }
  return newest;
}

/**
 * Throws when dist/ is missing or older than src/, because the bin script runs the compiled
 * JavaScript and would test stale code. `npm ci` and `npx tsc -p tsconfig.json` build it.
 */
export function checkDistIsFresh(): void {
  const compiled = join(repoRoot, 'dist', 'cli.js');
  let compiledTime: number;
  try {
    compiledTime = statSync(compiled).mtimeMs;
  } catch {
    throw new Error(`${compiled} is missing; run "npx tsc -p tsconfig.json" before the CLI tests`);
  }
  if (newestSourceTime(join(repoRoot, 'src')) > compiledTime) {
    throw new Error(`${compiled} is older than src/; run "npx tsc -p tsconfig.json" before the CLI tests`);
  }
}

/** Runs the CLI with `args` and no stdin; resolves with the exit status and both outputs. */
export function runCli(args: string[], cwd = repoRoot): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [join(repoRoot, 'bin', 'embed-image.js'), ...args], { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    child.on('error', reject);
    child.on('close', (status) => resolve({ status, stdout, stderr }));
  });
}

/** Parses stdout of `run`: one JSON object per line. */
export function parseJsonLines(stdout: string): Record<string, unknown>[] {
  return stdout
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => JSON.parse(line) as Record<string, unknown>);
}
