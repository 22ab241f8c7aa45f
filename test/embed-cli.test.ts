// The embed and preprocess commands end to end on fixtures/models/clip-tiny.pte, run as child
// processes on generated PNG files: agreement with `preprocess` + `run` and with the float64
// reference, folder runs with corrupt files, SIGKILL and --resume, output formats and shards.
import { execFileSync, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { appendFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { readNpy } from '../src/npy.js';
import { checkDistIsFresh, runCli } from './cli-process.js';
import { repoRoot, maxAbsDifference, cosine } from './helpers.js';
import { patternPng } from './embed-images.js';
import { clipReferenceEmbedding } from './tooling/clip-reference.js';
import { parseClipConfig, seededClipWeights } from './tooling/clip-weights.js';

const model = path.join(repoRoot, 'fixtures', 'models', 'clip-tiny.pte');
const config = parseClipConfig(JSON.parse(readFileSync(path.join(repoRoot, 'fixtures', 'models', 'clip-tiny.config.json'), 'utf8')));
const root = mkdtempSync(path.join(tmpdir(), 'embed-cli-'));

/** photos/ contains 150 PNGs of which three are corrupt, and photos/more/ 50 good ones. */
const corrupt = new Map<string, Buffer>([
  ['photos/img-030.png', Buffer.from('this is not an image')],
  ['photos/img-077.png', patternPng(20, 20, 77).subarray(0, 40)],
  ['photos/img-140.png', Buffer.alloc(0)],
]);
const allNames: string[] = [];

interface JsonRecord {
  path: string;
  sha256: string;
  model: { name: string; sha256: string };
  profile: string;
  dimensions: number;
  norm: number;
  embedding: number[];
}

function sha256(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

function float32Bits(values: ArrayLike<number>): number[] {
  return Array.from(new Uint32Array(Float32Array.from(values).buffer));
}

function readJsonl(file: string): JsonRecord[] {
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter((line) => line !== '')
    .map((line) => JSON.parse(line) as JsonRecord);
}

function embed(args: string[]) {
  return runCli(['--model', model, ...args], root);
}

beforeAll(() => {
  checkDistIsFresh();
  mkdirSync(path.join(root, 'photos', 'more'), { recursive: true });
  for (let i = 0; i < 200; i++) {
    const name = i < 150 ? `photos/img-${String(i).padStart(3, '0')}.png` : `photos/more/img-${i}.png`;
    allNames.push(name);
    writeFileSync(path.join(root, name), corrupt.get(name) ?? patternPng(16 + (i % 11), 12 + (i % 7), i));
  }
  writeFileSync(path.join(root, 'photos', 'notes.txt'), 'not an image, and not picked up by the folder walk');
  writeFileSync(path.join(root, 'photo.png'), patternPng(80, 60, 1000));
  // A real photo: scikit-image's "chelsea" (see fixtures/images/README.md).
  writeFileSync(path.join(root, 'chelsea.png'), readFileSync(path.join(repoRoot, 'fixtures', 'images', 'chelsea.png')));
});

afterAll(() => rmSync(root, { recursive: true, force: true }));

describe('one photo', () => {
  let record: JsonRecord;
  let stdout = '';

  beforeAll(async () => {
    const result = await embed(['chelsea.png']);
    expect(result.stderr).toBe('');
    expect(result.status).toBe(0);
    stdout = result.stdout;
    record = JSON.parse(stdout) as JsonRecord;
  });

  it('prints one JSON object', () => {
    expect(Object.keys(record)).toEqual(['path', 'sha256', 'model', 'profile', 'dimensions', 'norm', 'embedding']);
  });

  it('records the file and model hashes', () => {
    expect(record.path).toBe('chelsea.png');
    expect(record.sha256).toBe(sha256(readFileSync(path.join(root, 'chelsea.png'))));
    expect(record.model).toEqual({ name: 'clip-tiny.pte', sha256: sha256(readFileSync(model)) });
  });

  it('records the profile, dimensions and norm', () => {
    expect(record.profile).toBe('rne-legacy');
    expect(record.dimensions).toBe(32);
    expect(record.embedding).toHaveLength(32);
    expect(record.norm).toBeCloseTo(Math.hypot(...record.embedding.map((value) => Math.fround(value))), 12);
  });

  it('writes the shortest round-trip decimals', () => {
    const texts = /"embedding":\[([^\]]*)\]/.exec(stdout)![1]!.split(',');
    expect(texts).toHaveLength(32);
    for (const text of texts) {
      const single = Math.fround(Number(text));
      const digits = text.replace(/^-/, '').replace(/e.*$/, '').replace('.', '').replace(/^0+/, '').replace(/0+$/, '').length;
      expect(Number(single.toPrecision(digits)), text).toBe(Number(text));
      if (digits > 1) expect(Math.fround(Number(single.toPrecision(digits - 1))), text).not.toBe(single);
    }
  });

  it('equals preprocess plus run bit for bit', async () => {
    const tensorFile = path.join(root, 'photo-input.npy');
    const outputFile = path.join(root, 'photo-embedding.npy');
    const preprocessed = await runCli(['preprocess', 'chelsea.png', '--model', model, '--out', tensorFile], root);
    expect(preprocessed.status).toBe(0);
    const ran = await runCli(['run', model, '--input', tensorFile, '--output', outputFile], root);
    expect(ran.status).toBe(0);
    const output = await readNpy(outputFile);
    expect(output.shape).toEqual([1, 32]);
    expect(float32Bits(record.embedding)).toEqual(float32Bits(output.data as Float32Array));
  });

  it('matches the float64 reference', async () => {
    const tensorFile = path.join(root, 'photo-reference-input.npy');
    const preprocessed = await runCli(['preprocess', 'chelsea.png', '--size', '64x64', '--out', tensorFile], root);
    expect(preprocessed.status).toBe(0);
    const tensor = await readNpy(tensorFile);
    expect(tensor.shape).toEqual([1, 3, 64, 64]);
    const reference = clipReferenceEmbedding(config, seededClipWeights(config, 1), tensor.data as Float32Array);
    expect(maxAbsDifference(record.embedding, reference)).toBeLessThanOrEqual(1e-5);
    expect(cosine(record.embedding, reference)).toBeGreaterThanOrEqual(0.999999);
  });

  it('writes the resized image with --u8', async () => {
    const u8File = path.join(root, 'photo-u8.npy');
    const result = await runCli(['preprocess', 'chelsea.png', '--size', '32x48', '--out', path.join(root, 'photo-small.npy'), '--u8', u8File], root);
    expect(result.status).toBe(0);
    const resized = await readNpy(u8File);
    expect(resized.dtype).toBe('uint8');
    expect(resized.shape).toEqual([32, 48, 3]);
  });
});

describe('folder runs', () => {
  let fresh: { status: number | null; stdout: string; stderr: string };
  const good = () => allNames.filter((name) => !corrupt.has(name));

  beforeAll(async () => {
    fresh = await embed(['photos', '--out', 'fresh.jsonl', '--concurrency', '3']);
  });

  it('exits with status 1 when images fail', () => {
    expect(fresh.status).toBe(1);
  });

  it('writes the good images in sorted order', () => {
    expect(readJsonl(path.join(root, 'fresh.jsonl')).map((record) => record.path)).toEqual(good());
  });

  it('lists each failure with its path', () => {
    for (const name of corrupt.keys()) expect(fresh.stderr).toContain(`${name}:`);
  });

  it('counts the failures', () => {
    expect(fresh.stderr).toContain('embedded 197 of 200 images (3 failed)');
  });

  it('leaves no journal behind', () => {
    expect(existsSync(path.join(root, 'fresh.jsonl.partial'))).toBe(false);
  });

  it('does not depend on concurrency', async () => {
    const serial = await embed(['photos', '--out', 'serial.jsonl', '--concurrency', '1', '--threads', '1', '--quiet']);
    expect(serial.status).toBe(1);
    expect(readFileSync(path.join(root, 'serial.jsonl'), 'utf8')).toBe(readFileSync(path.join(root, 'fresh.jsonl'), 'utf8'));
  });

  it('streams JSONL to stdout', async () => {
    const streamed = await embed(['photos/more', '--quiet']);
    expect(streamed.status).toBe(0);
    const expected = readJsonl(path.join(root, 'fresh.jsonl')).filter((record) => record.path.startsWith('photos/more/'));
    expect(streamed.stdout.split('\n').filter(Boolean).map((line) => JSON.parse(line) as JsonRecord)).toEqual(expected);
  });

  it('resumes after SIGKILL without duplicates', async () => {
    // A FIFO sorted after photos/img-100.png holds the run there: reading it blocks until a
    // writer appears, so the kill lands midway whatever the machine's speed.
    const fifo = path.join(root, 'photos', 'img-100a.png');
    execFileSync('mkfifo', [fifo]);
    const out = path.join(root, 'killed.jsonl');
    const partial = `${out}.partial`;
    const child = spawn(process.execPath, [path.join(repoRoot, 'bin', 'embed-image.js'), '--model', model, 'photos', 'photos/img-100a.png', '--out', out, '--concurrency', '1', '--quiet'], {
      cwd: root,
      stdio: 'ignore',
    });
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    const goodBeforeFifo = good().filter((name) => name < 'photos/img-100a.png').length;
    const deadline = Date.now() + 30_000;
    while (!existsSync(partial) || readJsonl(partial).length < goodBeforeFifo) {
      if (Date.now() > deadline) expect.fail(`the run wrote ${existsSync(partial) ? readJsonl(partial).length : 0} records in 30 s`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    child.kill('SIGKILL');
    await exited;
    unlinkSync(fifo);

    expect(existsSync(out)).toBe(false);
    // A torn last line, as a write cut off by a crash would leave.
    appendFileSync(partial, '{"path":"photos/img-101.png","sha256":"ab');
    const resumed = await embed(['photos', '--out', 'killed.jsonl', '--resume']);
    expect(resumed.status).toBe(1);
    expect(resumed.stderr).toContain(`${goodBeforeFifo} reused by --resume`);
    expect(resumed.stderr).toContain('dropped 1 incomplete line');
    expect(readFileSync(out, 'utf8')).toBe(readFileSync(path.join(root, 'fresh.jsonl'), 'utf8'));
    expect(existsSync(partial)).toBe(false);
  });

  it('stops on SIGINT with a resume hint', async () => {
    const fifo = path.join(root, 'photos', 'img-060a.png');
    execFileSync('mkfifo', [fifo]);
    const partial = path.join(root, 'interrupted.jsonl.partial');
    const child = spawn(process.execPath, [path.join(repoRoot, 'bin', 'embed-image.js'), '--model', model, 'photos', 'photos/img-060a.png', '--out', 'interrupted.jsonl', '--concurrency', '1'], {
      cwd: root,
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    const exited = new Promise<NodeJS.Signals | null>((resolve) => child.on('close', (_, signal) => resolve(signal)));
    const goodBeforeFifo = good().filter((name) => name < 'photos/img-060a.png').length;
    const deadline = Date.now() + 30_000;
    while (!existsSync(partial) || readJsonl(partial).length < goodBeforeFifo) {
      if (Date.now() > deadline) expect.fail('the run did not reach the FIFO in 30 s');
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    child.kill('SIGINT');
    const signal = await exited;
    unlinkSync(fifo);

    expect(signal).toBe('SIGINT');
    expect(stderr).toContain(`interrupted after ${goodBeforeFifo} of 201 images`);
    expect(stderr).toContain('run the same command with --resume');
    expect(readJsonl(partial)).toHaveLength(goodBeforeFifo);
  });

  it('resumes a finished run without embedding again', async () => {
    writeFileSync(path.join(root, 'again.jsonl'), readFileSync(path.join(root, 'fresh.jsonl')));
    const resumed = await embed(['photos', '--out', 'again.jsonl', '--resume']);
    expect(resumed.stderr).toContain('embedded 197 of 200 images (3 failed, 197 reused by --resume)');
    expect(readFileSync(path.join(root, 'again.jsonl'), 'utf8')).toBe(readFileSync(path.join(root, 'fresh.jsonl'), 'utf8'));
  });

  it('refuses to resume with another profile', async () => {
    writeFileSync(path.join(root, 'other.jsonl'), readFileSync(path.join(root, 'fresh.jsonl')));
    const resumed = await embed(['photos', '--out', 'other.jsonl', '--resume', '--profile', 'rne']);
    expect(resumed.status).toBe(2);
    expect(resumed.stderr).toContain('resume with the same --model and --profile');
  });
});

describe('output formats', () => {
  let records: JsonRecord[];

  beforeAll(async () => {
    const result = await embed(['photos/more', '--out', 'more.jsonl', '--quiet']);
    expect(result.status).toBe(0);
    records = readJsonl(path.join(root, 'more.jsonl'));
  });

  it('writes a JSON array', async () => {
    const result = await embed(['photos/more', '--out', 'more-records.json', '--quiet']);
    expect(result.status).toBe(0);
    expect(JSON.parse(readFileSync(path.join(root, 'more-records.json'), 'utf8'))).toEqual(records);
  });

  it('writes npy rows with identical bits', async () => {
    const result = await embed(['photos/more', '--out', 'more.npy', '--quiet']);
    expect(result.status).toBe(0);
    const matrix = await readNpy(path.join(root, 'more.npy'));
    expect(matrix.shape).toEqual([50, 32]);
    expect(Array.from(new Uint32Array((matrix.data as Float32Array).buffer))).toEqual(records.flatMap((record) => float32Bits(record.embedding)));
  });

  it('writes the npy index beside it', () => {
    const index = JSON.parse(readFileSync(path.join(root, 'more.json'), 'utf8')) as { row: number; path: string }[];
    expect(index.map((entry) => entry.path)).toEqual(records.map((record) => record.path));
    expect(index.map((entry) => entry.row)).toEqual(records.map((_, row) => row));
  });

  it('resumes from npy and its index', async () => {
    const before = readFileSync(path.join(root, 'more.npy'));
    const result = await embed(['photos/more', '--out', 'more.npy', '--resume']);
    expect(result.status).toBe(0);
    expect(result.stderr).toContain('embedded 50 of 50 images (50 reused by --resume)');
    expect(readFileSync(path.join(root, 'more.npy')).equals(before)).toBe(true);
  });

  it('resumes past a mismatched npy pair', async () => {
    const npyFile = path.join(root, 'more.npy');
    const indexFile = path.join(root, 'more.json');
    const before = readFileSync(npyFile);
    const index = JSON.parse(readFileSync(indexFile, 'utf8')) as unknown[];
    // What a kill between the two renames leaves: a new index, the old matrix and the journal.
    writeFileSync(indexFile, JSON.stringify(index.slice(0, 10)));
    writeFileSync(`${npyFile}.partial`, readFileSync(path.join(root, 'more.jsonl')));
    const result = await embed(['photos/more', '--out', 'more.npy', '--resume']);
    expect(result.status).toBe(0);
    expect(result.stderr).toContain('warning: ignoring more.npy');
    expect(result.stderr).toContain('(50 reused by --resume)');
    expect(readFileSync(npyFile).equals(before)).toBe(true);
    expect(JSON.parse(readFileSync(indexFile, 'utf8'))).toEqual(index);
  });

  it('resumes from a JSON array', async () => {
    const result = await embed(['photos/more', '--out', 'more-records.json', '--resume']);
    expect(result.stderr).toContain('(50 reused by --resume)');
    expect(JSON.parse(readFileSync(path.join(root, 'more-records.json'), 'utf8'))).toEqual(records);
  });

  it('prints an array for --format json', async () => {
    const result = await embed(['photo.png', '--format', 'json']);
    expect(result.status).toBe(0);
    expect(JSON.parse(result.stdout)).toHaveLength(1);
  });

  it('takes a glob pattern', async () => {
    const result = await embed(['photos/more/*.png', '--quiet']);
    expect(result.stdout.trim().split('\n')).toHaveLength(50);
  });
});

describe('http inputs', () => {
  it('embeds a URL and reports a 404', async () => {
    const png = patternPng(30, 20, 2024);
    const server = createServer((request, response) => {
      if (request.url === '/cat.png') {
        response.writeHead(200, { 'content-type': 'image/png' });
        response.end(png);
      } else {
        response.writeHead(404);
        response.end();
      }
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    try {
      const result = await embed([`${base}/cat.png`, `${base}/missing.png`, '--quiet']);
      expect(result.status).toBe(1);
      const [record] = result.stdout.split('\n').filter(Boolean).map((line) => JSON.parse(line) as JsonRecord);
      expect(record?.path).toBe(`${base}/cat.png`);
      expect(record?.sha256).toBe(sha256(png));
      expect(result.stderr).toContain(`${base}/missing.png: HTTP 404`);
    } finally {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });
});

describe('shards', () => {
  it('splits the sorted inputs into disjoint parts', async () => {
    const whole = readJsonl(path.join(root, 'more.jsonl'));
    const parts: JsonRecord[][] = [];
    for (let index = 1; index <= 3; index++) {
      const result = await embed(['photos/more', '--shard', `${index}/3`, '--out', `shard-${index}.jsonl`, '--quiet']);
      expect(result.status).toBe(0);
      parts.push(readJsonl(path.join(root, `shard-${index}.jsonl`)));
    }
    const paths = parts.flat().map((record) => record.path);
    expect(new Set(paths).size).toBe(paths.length);
    expect(parts.flat()).toEqual(whole);
  });

  it.each(['0/3', '4/3', 'two/3'])('rejects --shard %s', async (shard) => {
    const result = await embed(['photos/more', '--shard', shard]);
    expect(result.status).toBe(2);
    expect(result.stderr).toContain('must be I/N with 1 <= I <= N');
  });
});

describe('usage', () => {
  it('reports a missing input', async () => {
    const result = await embed(['missing.png']);
    expect(result.status).toBe(1);
    expect(result.stderr).toContain('missing.png: no such file or folder');
  });

  it('needs --out for npy', async () => {
    const result = await embed(['photo.png', '--format', 'npy']);
    expect(result.status).toBe(2);
  });

  it('needs --out for --resume', async () => {
    const result = await embed(['photo.png', '--resume']);
    expect(result.status).toBe(2);
  });

  it('states units and defaults in help', async () => {
    const result = await runCli(['embed', '--help']);
    expect(result.status).toBe(0);
    expect(result.stdout).toMatch(/in\s+seconds\s+\(default:\s+30\)/);
    expect(result.stdout).toMatch(/images\s+in\s+flight\s+at\s+once;[^(]*\(2\s+to\s+8\)\s+decodes[^(]*batch,\s+so\s+16\s+keeps\s+the\s+batches\s+full;[^(]*\(default:\s+16\)/);
  });

  it('states the size unit in preprocess help', async () => {
    const result = await runCli(['preprocess', '--help']);
    expect(result.stdout).toContain('HEIGHTxWIDTH in pixels');
  });

  it('lists embed as the default command', async () => {
    const result = await runCli(['--help']);
    expect(result.stdout).toMatch(/embed \[options\] <inputs\.\.\.>/);
  });
});
