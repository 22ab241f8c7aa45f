#!/usr/bin/env node
// Builds the C++ addon with cmake-js during `npm install`/`npm ci`. Before building it checks
// the system prerequisites and, when one is missing, stops with one message that names it and
// the command that installs it.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');

function commandWorks(command, args = ['--version']) {
  const result = spawnSync(command, args, { stdio: 'ignore' });
  return result.status === 0;
}

function headerFound(relativePath) {
  const prefixes = ['/usr/include', '/usr/local/include', '/opt/homebrew/include'];
  for (const multiarch of ['x86_64-linux-gnu', 'aarch64-linux-gnu']) prefixes.push(join('/usr/include', multiarch));
  if (process.env.CPATH) prefixes.push(...process.env.CPATH.split(':'));
  return prefixes.some((prefix) => existsSync(join(prefix, relativePath)));
}

function flatbuffersHeadersFound() {
  return headerFound(join('flatbuffers', 'flatbuffers.h'));
}

const prerequisites = [
  { name: 'CMake 3.22 or newer', found: () => commandWorks('cmake'), apt: 'cmake', brew: 'cmake' },
  {
    name: 'a C++20 compiler (g++ 12 or clang++ 14 or newer)',
    found: () => commandWorks('c++') || commandWorks('g++') || commandWorks('clang++'),
    apt: 'g++',
    brew: null, // Xcode command line tools: xcode-select --install
  },
  { name: 'the FlatBuffers compiler (flatc)', found: () => commandWorks('flatc'), apt: 'flatbuffers-compiler', brew: 'flatbuffers' },
  { name: 'the FlatBuffers headers', found: flatbuffersHeadersFound, apt: 'libflatbuffers-dev', brew: 'flatbuffers' },
  {
    name: 'OpenBLAS (cblas.h)',
    found: () => process.platform === 'darwin' || headerFound('cblas.h'),
    apt: 'libopenblas-dev',
    brew: null, // macOS uses the Accelerate framework
  },
];

const missing = prerequisites.filter((item) => !item.found());
if (missing.length > 0) {
  const apt = [...new Set(missing.map((item) => item.apt))].join(' ');
  const brew = [...new Set(missing.map((item) => item.brew).filter(Boolean))].join(' ');
  const lines = [
    `embed-image: cannot build the native addon: missing ${missing.map((item) => item.name).join(', ')}.`,
    `  Debian/Ubuntu: sudo apt-get install -y ${apt}`,
    brew ? `  macOS:         brew install ${brew}` : '  macOS:         xcode-select --install',
    'Then run npm install (or npm ci) again.',
  ];
  console.error(lines.join('\n'));
  process.exit(1);
}

const require = createRequire(import.meta.url);
const cmakeJs = join(dirname(require.resolve('cmake-js/package.json')), 'bin', 'cmake-js');
const args = [cmakeJs, 'compile', '--directory', root, '--out', join(root, 'build')];
if (process.env.EMBED_IMAGE_DEBUG === '1') args.push('--debug');
const build = spawnSync(process.execPath, args, { stdio: 'inherit', cwd: root });
if (build.status !== 0) {
  console.error('embed-image: building the native addon failed; the compiler output above says why.');
  process.exit(build.status ?? 1);
}
