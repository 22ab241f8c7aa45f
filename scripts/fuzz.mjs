#!/usr/bin/env node
// Builds the libFuzzer target ei_fuzz_program (addon/fuzz/fuzz_program.cpp) in build-fuzz/,
// writes a seed corpus, fuzzes for a fixed time in one process and prints the execution
// count, coverage and findings. Exits with status 1 when the fuzzer reports a finding.
//
// Usage: npm run fuzz -- [--seconds N] [-- extra libFuzzer flags]
//
// Folders (all ignored by git):
//   build-fuzz/             the clang build with -fsanitize=fuzzer,address,undefined
//   fuzz-corpus/seeds/      upstream .pte files from ../shared/pte (when present) and
//                           programs written by test/hostile-programs.ts
//   fuzz-corpus/corpus/     inputs the fuzzer found interesting; kept between runs
//   fuzz-corpus/findings/   crash-*, leak-*, timeout-* and oom-* reproducers
//   fuzz-corpus/fuzz.log    the fuzzer's full output
import { spawn, spawnSync } from 'node:child_process';
import { copyFileSync, createWriteStream, existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const buildDir = join(root, 'build-fuzz');
const corpusRoot = join(root, 'fuzz-corpus');
const seedDir = join(corpusRoot, 'seeds');
const corpusDir = join(corpusRoot, 'corpus');
const findingsDir = join(corpusRoot, 'findings');
const sharedPteDir = join(root, '..', 'shared', 'pte');
const fuzzer = join(buildDir, 'ei_fuzz_program');

function parseArguments(argv) {
  const options = { seconds: 60, extra: [] };
  for (let i = 0; i < argv.length; i++) {
    const argument = argv[i];
    if (argument === '--') {
      options.extra = argv.slice(i + 1);
      break;
    }
    if (argument === '--seconds') {
      const value = Number(argv[++i]);
      if (!Number.isInteger(value) || value < 1) {
        fail(`--seconds expects a positive whole number of seconds, got "${argv[i]}"`);
      }
      options.seconds = value;
    } else if (argument === '--help' || argument === '-h') {
      console.log('Usage: npm run fuzz -- [--seconds N] [-- extra libFuzzer flags]');
      console.log('  --seconds N   fuzzing time in seconds (default 60)');
      process.exit(0);
    } else {
      fail(`unknown argument "${argument}"; run with --help for the options`);
    }
  }
  return options;
}

function fail(message) {
  console.error(`fuzz: ${message}`);
  process.exit(2);
}

function run(command, args, options = {}) {
  console.log(`fuzz: ${command} ${args.join(' ')}`);
  const result = spawnSync(command, args, { stdio: 'inherit', cwd: root, ...options });
  if (result.error) fail(`cannot run ${command}: ${result.error.message}`);
  if (result.status !== 0) fail(`${command} failed with exit status ${result.status}; its output above says why`);
}

function buildFuzzer() {
  const clangFound = spawnSync('clang++', ['--version'], { stdio: 'ignore' }).status === 0;
  if (!clangFound) {
    fail('clang++ not found; libFuzzer needs clang and its runtime (Debian/Ubuntu: apt-get install clang libclang-rt-14-dev)');
  }
  const environment = { ...process.env, CC: 'clang', CXX: 'clang++' };
  run('cmake', ['-S', root, '-B', buildDir, '-DEI_BUILD_FUZZ=ON', '-DCMAKE_BUILD_TYPE=RelWithDebInfo'], { env: environment });
  const jobs = String(Math.max(1, Math.min(availableParallelism(), 8)));
  run('cmake', ['--build', buildDir, '--parallel', jobs, '--target', 'ei_fuzz_program'], { env: environment });
}

// Compiles the TypeScript program builders to JavaScript with tsc and imports them, because
// Node 20 cannot import .ts files.
async function writeSeeds() {
  mkdirSync(seedDir, { recursive: true });
  let shared = 0;
  if (existsSync(sharedPteDir)) {
    for (const name of readdirSync(sharedPteDir)) {
      if (!name.endsWith('.pte')) continue;
      copyFileSync(join(sharedPteDir, name), join(seedDir, `shared-${name}`));
      shared++;
    }
  }

  const outDir = join(buildDir, 'seed-writer');
  const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc');
  run(process.execPath, [
    tsc,
    '--outDir', outDir,
    '--rootDir', join(root, 'test'),
    '--module', 'NodeNext',
    '--moduleResolution', 'NodeNext',
    '--target', 'ES2022',
    '--strict',
    '--skipLibCheck',
    '--types', 'node',
    join(root, 'test', 'hostile-programs.ts'),
  ]);
  const programs = await import(pathToFileURL(join(outDir, 'hostile-programs.js')).href);
  const seeds = programs.seedPrograms();
  for (const seed of seeds) writeFileSync(join(seedDir, `writer-${seed.name}.pte`), seed.bytes);
  console.log(`fuzz: ${shared} upstream seeds from ${sharedPteDir}${shared === 0 ? ' (folder absent)' : ''}, ${seeds.length} written seeds`);
}

function listFindings() {
  if (!existsSync(findingsDir)) return [];
  return readdirSync(findingsDir).filter((name) => /^(crash|leak|timeout|oom|slow-unit)-/.test(name));
}

async function fuzz(options) {
  mkdirSync(corpusDir, { recursive: true });
  mkdirSync(findingsDir, { recursive: true });
  const findingsBefore = new Set(listFindings());
  const args = [
    `-max_total_time=${options.seconds}`,
    '-rss_limit_mb=2048',
    '-timeout=10',
    '-max_len=16384',
    '-print_final_stats=1',
    `-dict=${join(root, 'addon', 'fuzz', 'pte.dict')}`,
    `-artifact_prefix=${findingsDir}/`,
    ...options.extra,
    corpusDir,
    seedDir,
  ];
  console.log(`fuzz: ${fuzzer} ${args.join(' ')}`);
  const log = createWriteStream(join(corpusRoot, 'fuzz.log'));
  const child = spawn(fuzzer, args, { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
  let lastStatus = '';
  const stats = {};
  let tail = '';
  const onData = (chunk) => {
    log.write(chunk);
    const text = tail + chunk.toString();
    const lines = text.split('\n');
    tail = lines.pop() ?? '';
    for (const line of lines) {
      if (/^#\d+\s/.test(line)) lastStatus = line;
      const stat = /^stat::(\w+):\s+(\d+)/.exec(line);
      if (stat) stats[stat[1]] = Number(stat[2]);
      if (/ERROR: |SUMMARY: |==\d+==|^INFO: (Running|Seed|Loaded)|^MS: |^artifact_prefix/.test(line)) console.log(line);
    }
  };
  child.stdout.on('data', onData);
  child.stderr.on('data', onData);
  const status = await new Promise((resolve) => child.on('close', (code, signal) => resolve(code ?? signal)));
  log.end();

  const newFindings = listFindings().filter((name) => !findingsBefore.has(name));
  const coverage = /cov: (\d+) ft: (\d+) corp: (\d+)\/(\S+)/.exec(lastStatus);
  console.log('');
  console.log(`fuzz: stopped (time limit ${options.seconds} s), exit status ${status}`);
  console.log(`fuzz: executions ${stats.number_of_executed_units ?? 'unknown'} (${stats.average_exec_per_sec ?? '?'}/s), peak RSS ${stats.peak_rss_mb ?? '?'} MB`);
  if (coverage) {
    console.log(`fuzz: coverage cov ${coverage[1]} ft ${coverage[2]}, corpus ${coverage[3]} inputs (${coverage[4]})`);
  }
  console.log(`fuzz: findings ${newFindings.length}${newFindings.length ? `: ${newFindings.map((name) => join(findingsDir, name)).join(', ')}` : ''}`);
  console.log(`fuzz: full output in ${join(corpusRoot, 'fuzz.log')}`);
  if (newFindings.length > 0 || status !== 0) {
    console.log(`fuzz: reproduce with ${fuzzer} <finding>`);
    process.exit(1);
  }
}

const options = parseArguments(process.argv.slice(2));
buildFuzzer();
await writeSeeds();
await fuzz(options);
