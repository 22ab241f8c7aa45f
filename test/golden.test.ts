// golden create and golden check on the committed clip-tiny model and fixture images: the round
// trip is exact, and each perturbation (an altered value, swapped records, a non-unit vector,
// a changed image, another model) is caught and named with the right exit status.
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

import { beforeAll, describe, expect, it } from 'vitest';

import { main } from '../src/cli.js';
import { ImageEmbeddings } from '../src/embeddings.js';
import { parseGolden, type GoldenFile } from '../src/golden.js';
import { checkJunitStructure } from './compare-junit.js';
import { repoRoot } from './helpers.js';
import { buildClipProgram } from './tooling/clip-program.js';
import { parseClipConfig, seededClipWeights } from './tooling/clip-weights.js';

const images = ['chelsea.png', 'coffee-420.jpg', 'rocket.jpg', 'astronaut-progressive.jpg', 'camera-gray.png'];
const modelFile = path.join(repoRoot, 'fixtures', 'models', 'clip-tiny.pte');

async function run(args: string[]): Promise<{ status: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const status = await main(['node', 'embed-image', ...args], { stdout: (text) => (stdout += text), stderr: (text) => (stderr += text) });
  return { status, stdout, stderr };
}

const dir = mkdtempSync(path.join(tmpdir(), 'ei-golden-'));
const goldenPath = path.join(dir, 'golden.json');
let original: GoldenFile;

/** Writes a modified copy of the golden file and returns its path. */
function variant(name: string, change: (golden: GoldenFile) => void): string {
  const copy = structuredClone(original);
  change(copy);
  const file = path.join(dir, name);
  writeFileSync(file, JSON.stringify(copy));
  return file;
}

beforeAll(async () => {
  mkdirSync(path.join(dir, 'images'));
  for (const name of images) copyFileSync(path.join(repoRoot, 'fixtures', 'images', name), path.join(dir, 'images', name));
  copyFileSync(modelFile, path.join(dir, 'clip-tiny.pte'));
  const result = await run(['golden', 'create', path.join(dir, 'images'), '--model', path.join(dir, 'clip-tiny.pte'), '--out', goldenPath, '--threads', '1', '--save-inputs', path.join(dir, 'inputs')]);
  if (result.status !== 0) throw new Error(`golden create failed: ${result.stderr}`);
  original = parseGolden(JSON.parse(readFileSync(goldenPath, 'utf8')), goldenPath);
});

describe('golden create', () => {
  it('names every image that fails', async () => {
    const folder = path.join(dir, 'with-bad');
    mkdirSync(folder);
    copyFileSync(path.join(repoRoot, 'fixtures', 'images', 'chelsea.png'), path.join(folder, 'chelsea.png'));
    const header = readFileSync(path.join(repoRoot, 'fixtures', 'images', 'chelsea.png')).subarray(0, 100);
    writeFileSync(path.join(folder, 'cut-a.png'), header);
    writeFileSync(path.join(folder, 'cut-b.png'), header);
    const out = path.join(dir, 'with-bad.json');
    const result = await run(['golden', 'create', folder, '--model', path.join(dir, 'clip-tiny.pte'), '--out', out, '--threads', '1']);
    expect(result.status).toBe(1);
    expect(result.stderr).toContain('2 of 3 images could not be embedded');
    expect(result.stderr).toContain('cut-a.png');
    expect(result.stderr).toContain('cut-b.png');
    expect(result.stderr).toContain('ERR_IMAGE_DECODE');
    expect(() => readFileSync(out)).toThrow();
  });

  it('records provenance', () => {
    expect(original.model.name).toBe('clip-tiny.pte');
    expect(original.model.source).toBe('clip-tiny.pte');
    expect(original.model.inputShape).toEqual([1, 3, 64, 64]);
    expect(original.model.outputShape).toEqual([1, 32]);
    expect(original.preprocessing.profile).toBe('rne-legacy');
    expect(original.machine.threads).toBe(1);
    expect(original.images.map((image) => image.path)).toEqual([...images].sort().map((name) => `images/${name}`));
  });

  it('stores the model sha256', async () => {
    const { createHash } = await import('node:crypto');
    expect(original.model.sha256).toBe(createHash('sha256').update(readFileSync(modelFile)).digest('hex'));
  });

  it('stores exact float32 embeddings', async () => {
    const embeddings = new ImageEmbeddings();
    await embeddings.load({ modelSource: modelFile, threads: 1 });
    try {
      for (const image of original.images) {
        const expected = await embeddings.forward(path.join(dir, image.path));
        const stored = Float32Array.from(image.embedding);
        expect(Buffer.from(stored.buffer).equals(Buffer.from(expected.buffer))).toBe(true);
      }
    } finally {
      embeddings.delete();
    }
  });
});

describe('golden check', () => {
  it('passes with exact equality', async () => {
    const report = path.join(dir, 'exact.json');
    const result = await run(['golden', 'check', goldenPath, '--json', report, '--threads', '2']);
    expect(result.status).toBe(0);
    const pairs = (JSON.parse(readFileSync(report, 'utf8')) as { pairs: { maxAbs: number }[] }).pairs;
    expect(pairs.length).toBe(images.length);
    expect(pairs.every((pair) => pair.maxAbs === 0)).toBe(true);
  });

  it('names a value altered in the 4th decimal', async () => {
    const file = variant('altered.json', (golden) => {
      golden.images[2]!.embedding[7] = golden.images[2]!.embedding[7]! + 2e-4;
    });
    const result = await run(['golden', 'check', file]);
    expect(result.status).toBe(1);
    expect(result.stdout).toMatch(new RegExp(`^FAIL .* ${original.images[2]!.path}$`, 'm'));
    expect(result.stdout).toMatch(/max abs difference 2\.\d+e-4 at index 7/);
    expect(result.stdout).toMatch(/inputs equal: the input tensor is bit-identical/);
    expect(result.stdout).toMatch(/verdict: FAIL: 1 of 5 pairs/);
  });

  it('names a swapped pair of records', async () => {
    const file = variant('swapped.json', (golden) => {
      const first = golden.images[0]!.embedding;
      golden.images[0]!.embedding = golden.images[3]!.embedding;
      golden.images[3]!.embedding = first;
    });
    const result = await run(['golden', 'check', file]);
    expect(result.status).toBe(1);
    expect(result.stdout).toMatch(new RegExp(`^FAIL .* ${original.images[0]!.path}$`, 'm'));
    expect(result.stdout).toMatch(new RegExp(`^FAIL .* ${original.images[3]!.path}$`, 'm'));
    expect(result.stdout).toMatch(/verdict: FAIL: 2 of 5 pairs/);
  });

  it('names a vector that is not unit length', async () => {
    const file = variant('scaled.json', (golden) => {
      golden.images[1]!.embedding = golden.images[1]!.embedding.map((value) => value * 1.001);
    });
    const result = await run(['golden', 'check', file, '--max-abs', '1']);
    expect(result.status).toBe(1);
    expect(result.stdout).toMatch(/golden vector has norm 1\.001\d*, not unit length/);
  });

  it('exits 2 for a changed image', async () => {
    const changedDir = path.join(dir, 'changed');
    mkdirSync(path.join(changedDir, 'images'), { recursive: true });
    for (const name of images) copyFileSync(path.join(dir, 'images', name), path.join(changedDir, 'images', name));
    const bytes = readFileSync(path.join(changedDir, 'images', 'rocket.jpg'));
    writeFileSync(path.join(changedDir, 'images', 'rocket.jpg'), Buffer.concat([bytes, Buffer.from([0])]));
    const golden = { ...original, model: { ...original.model, source: '../clip-tiny.pte' } };
    writeFileSync(path.join(changedDir, 'golden.json'), JSON.stringify(golden));
    const result = await run(['golden', 'check', path.join(changedDir, 'golden.json')]);
    expect(result.status).toBe(2);
    expect(result.stderr).toMatch(/images\/rocket\.jpg \(was [0-9a-f]{12}, now [0-9a-f]{12}\)/);
    expect(result.stderr).toMatch(/ERR_GOLDEN_INPUT_CHANGED/);
  });

  it('exits 2 for a missing image', async () => {
    const file = variant('missing.json', (golden) => {
      golden.images[4]!.path = 'images/absent.png';
    });
    const result = await run(['golden', 'check', file]);
    expect(result.status).toBe(2);
    expect(result.stderr).toMatch(/1 image is missing: images\/absent\.png/);
  });

  it('exits 2 for a different model, and --update accepts it', async () => {
    const config = parseClipConfig(JSON.parse(readFileSync(path.join(repoRoot, 'fixtures', 'models', 'clip-tiny.config.json'), 'utf8')));
    const other = path.join(dir, 'clip-tiny-seed2.pte');
    writeFileSync(other, buildClipProgram(config, seededClipWeights(config, 2)).bytes);
    const file = variant('other-model.json', () => undefined);

    const refused = await run(['golden', 'check', file, '--model', other]);
    expect(refused.status).toBe(2);
    expect(refused.stderr).toMatch(/ERR_GOLDEN_MODEL_CHANGED/);
    expect(refused.stderr).toMatch(/clip-tiny-seed2\.pte has sha256 [0-9a-f]{64}/);

    const updated = await run(['golden', 'check', file, '--model', other, '--update']);
    expect(updated.status).toBe(0);
    expect(updated.stdout).toMatch(/model: clip-tiny\.pte [0-9a-f]{12} -> clip-tiny-seed2\.pte/);
    expect(updated.stdout).toMatch(/5 of 5 embeddings moved/);

    const after = await run(['golden', 'check', file]);
    expect(after.status).toBe(0);
  });

  it('says how the input changed for another profile', async () => {
    const result = await run(['golden', 'check', goldenPath, '--profile', 'sharp', '--min-cosine', '1', '--max-abs', '0']);
    expect(result.status).toBe(1);
    expect(result.stdout).toMatch(/inputs differ: \d+ of 4096 pixels/);
    expect(result.stdout).toMatch(/likely cause: resize/);
  });

  it('names last-bit scaling for the rne profile', async () => {
    const result = await run(['golden', 'check', goldenPath, '--profile', 'rne', '--min-cosine', '1', '--max-abs', '0']);
    expect(result.status).toBe(1);
    expect(result.stdout).toMatch(/likely cause: scaling: last-bit float differences only/);
  });

  it('exits 2 for a malformed golden file', async () => {
    const file = path.join(dir, 'broken.json');
    writeFileSync(file, JSON.stringify({ format: 'embed-image-golden', version: 1 }));
    const result = await run(['golden', 'check', file]);
    expect(result.status).toBe(2);
    expect(result.stderr).toMatch(/ERR_GOLDEN_FORMAT/);
  });

  it('writes a valid JUnit report', async () => {
    const file = variant('junit-altered.json', (golden) => {
      golden.images[0]!.embedding[0] = golden.images[0]!.embedding[0]! - 5e-4;
    });
    const junit = path.join(dir, 'golden.xml');
    const result = await run(['golden', 'check', file, '--junit', junit]);
    expect(result.status).toBe(1);
    const summary = checkJunitStructure(readFileSync(junit, 'utf8'));
    expect(summary.problems).toEqual([]);
    expect(summary.tests).toBe(5);
    expect(summary.failures).toBe(1);
    expect(summary.names).toContain(original.images[0]!.path);
  });
});
