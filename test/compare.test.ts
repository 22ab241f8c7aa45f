// The compare command and its library: every accepted vector format, record matching, metrics
// checked against a float64 computation written here, neighbour agreement, exit statuses and
// the JSON and JUnit reports.
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

import { beforeAll, describe, expect, it } from 'vitest';

import { main } from '../src/cli.js';
import { matchRecords, neighbourAgreement, pairMetrics, parseVectorSet, percentile, type VectorSet } from '../src/compare.js';
import { EmbedImageError } from '../src/errors.js';
import { encodeNpy } from '../src/npy.js';
import { checkJunitStructure } from './compare-junit.js';

/** Seeded unit vectors, rounded to float32, as float64 arrays of their float32 values. */
function unitVectors(count: number, dimensions: number, seed: number): number[][] {
  let state = seed;
  const next = (): number => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return state / 2 ** 32 - 0.5;
  };
  const vectors: number[][] = [];
  for (let i = 0; i < count; i++) {
    const raw = Array.from({ length: dimensions }, next);
    const norm = Math.sqrt(raw.reduce((sum, value) => sum + value * value, 0));
    vectors.push(raw.map((value) => Math.fround(value / norm)));
  }
  return vectors;
}

/** Float64 metrics written independently of src/compare.ts. */
function reference(a: number[], b: number[]): { cosine: number; maxAbs: number; l2: number } {
  let dot = 0;
  let aa = 0;
  let bb = 0;
  let maxAbs = 0;
  let squares = 0;
  a.forEach((x, i) => {
    const y = b[i]!;
    dot += x * y;
    aa += x * x;
    bb += y * y;
    maxAbs = Math.max(maxAbs, Math.abs(x - y));
    squares += (x - y) ** 2;
  });
  return { cosine: dot / Math.sqrt(aa * bb), maxAbs, l2: Math.sqrt(squares) };
}

async function run(args: string[]): Promise<{ status: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const status = await main(['node', 'embed-image', ...args], { stdout: (text) => (stdout += text), stderr: (text) => (stderr += text) });
  return { status, stdout, stderr };
}

const dir = mkdtempSync(path.join(tmpdir(), 'ei-compare-'));
const file = (name: string): string => path.join(dir, name);
const vectorsA = unitVectors(6, 16, 7);
/** B: A with small float32-sized noise, as from another runtime. */
const vectorsB = vectorsA.map((vector, i) => vector.map((value, j) => Math.fround(value + ((i * 16 + j) % 5 - 2) * 1e-7)));
const names = vectorsA.map((_, i) => `images/img${i}.png`);

function float32Bytes(vectors: number[][]): Uint8Array {
  const data = Float32Array.from(vectors.flat());
  return new Uint8Array(data.buffer);
}

beforeAll(() => {
  const records = vectorsA.map((embedding, i) => ({ path: names[i], sha256: `${i}`.padStart(64, 'a'), embedding }));
  writeFileSync(file('a.json'), JSON.stringify(records));
  writeFileSync(file('a.jsonl'), records.map((record) => JSON.stringify(record)).join('\n') + '\n');
  writeFileSync(file('a-arrays.json'), JSON.stringify(vectorsA));
  writeFileSync(file('a-objects.json'), JSON.stringify({ records: vectorsA.map((embedding) => ({ embedding })) }));
  writeFileSync(file('a.npy'), encodeNpy({ dtype: 'float32', shape: [6, 16], data: Float32Array.from(vectorsA.flat()) }));
  writeFileSync(file('a.f32'), float32Bytes(vectorsA));
  writeFileSync(file('single.json'), JSON.stringify(vectorsA[0]));
  writeFileSync(
    file('b.json'),
    JSON.stringify(vectorsB.map((embedding, i) => ({ path: `/data/user/0/app/files/img${i}.png`, embedding }))),
  );
});

describe('vector formats', () => {
  const cases: [string, string, { dim?: number }][] = [
    ['embed-image JSON', 'a.json', {}],
    ['JSONL', 'a.jsonl', {}],
    ['array of arrays', 'a-arrays.json', {}],
    ['objects with embedding', 'a-objects.json', {}],
    ['npy float32', 'a.npy', {}],
    ['raw float32', 'a.f32', { dim: 16 }],
  ];
  for (const [label, name, options] of cases) {
    it(`reads ${label}`, () => {
      const set = parseVectorSet(readFileSync(file(name)), file(name), options);
      expect(set.records.length).toBe(6);
      expect(set.dimensions).toBe(16);
      for (const [i, record] of set.records.entries()) {
        expect(Array.from(record.embedding)).toEqual(vectorsA[i]);
      }
    });
  }

  it('reads a plain array as one vector', () => {
    const set = parseVectorSet(readFileSync(file('single.json')), 'single.json');
    expect(set.records.length).toBe(1);
    expect(Array.from(set.records[0]!.embedding)).toEqual(vectorsA[0]);
  });

  it('keeps paths and sha256', () => {
    const set = parseVectorSet(readFileSync(file('a.jsonl')), 'a.jsonl');
    expect(set.records[2]!.path).toBe('images/img2.png');
    expect(set.records[2]!.sha256).toBe('2'.padStart(64, 'a'));
  });

  it('rejects raw bytes that are not whole vectors', () => {
    const call = () => parseVectorSet(new Uint8Array(20), 'x.f32', { dim: 16 });
    expect(call).toThrow(/not a whole number of vectors of 16/);
  });

  it('rejects vectors of different lengths', () => {
    const call = () => parseVectorSet(Buffer.from('[[1,2],[1,2,3]]'), 'mixed.json');
    expect(call).toThrow(/#1 has 3 values but #0 has 2/);
  });

  it('rejects null elements by record', () => {
    const call = () => parseVectorSet(Buffer.from('[{"path":"x.png","embedding":[1,null]}]'), 'nan.json');
    expect(call).toThrow(/x\.png.*element 1 is null/);
  });

  it('rejects unknown content with ERR_VECTORS_FORMAT', () => {
    let error: unknown;
    try {
      parseVectorSet(Buffer.from('hello'), 'notes.txt');
    } catch (caught) {
      error = caught;
    }
    expect((error as EmbedImageError).code).toBe('ERR_VECTORS_FORMAT');
  });
});

describe('metrics', () => {
  it('match a float64 computation', () => {
    for (let i = 0; i < vectorsA.length; i++) {
      const expected = reference(vectorsA[i]!, vectorsB[i]!);
      const actual = pairMetrics(Float32Array.from(vectorsA[i]!), Float32Array.from(vectorsB[i]!));
      expect(actual.cosine).toBeCloseTo(expected.cosine, 14);
      expect(actual.maxAbs).toBe(expected.maxAbs);
      expect(actual.l2).toBeCloseTo(expected.l2, 14);
    }
  });

  it('percentile interpolates linearly', () => {
    // NumPy: np.percentile([1, 2, 3, 4], 25) == 1.75, np.percentile([1, 2, 3, 4], 50) == 2.5
    expect(percentile([4, 1, 3, 2], 25)).toBe(1.75);
    expect(percentile([4, 1, 3, 2], 50)).toBe(2.5);
    expect(percentile([4, 1, 3, 2], 100)).toBe(4);
  });

  it('cosine is NaN for a zero vector', () => {
    expect(pairMetrics([0, 0], [1, 0]).cosine).toBeNaN();
  });
});

describe('matching', () => {
  const set = (records: { path?: string; sha256?: string }[]): VectorSet => ({
    source: 'x',
    format: 'test',
    dimensions: 2,
    records: records.map((record, index) => ({ index, ...record, embedding: new Float64Array([1, 0]) })),
  });

  it('pairs by file name when folders differ', () => {
    const { mode, pairs } = matchRecords(set([{ path: 'a/x.png' }, { path: 'a/y.png' }]), set([{ path: '/p/y.png' }, { path: '/p/x.png' }]));
    expect(mode).toBe('name');
    expect(pairs.map((pair) => [pair.a.index, pair.b.index])).toEqual([
      [0, 1],
      [1, 0],
    ]);
  });

  it('names unmatched records on both sides', () => {
    let error: unknown;
    try {
      matchRecords(set([{ path: 'x.png' }, { path: 'y.png' }]), set([{ path: 'x.png' }, { path: 'z.png' }]), 'path');
    } catch (caught) {
      error = caught;
    }
    expect((error as EmbedImageError).code).toBe('ERR_UNMATCHED_RECORDS');
    expect((error as Error).message).toMatch(/"y\.png"/);
    expect((error as Error).message).toMatch(/"z\.png"/);
  });

  it('rejects different counts by position', () => {
    const call = () => matchRecords(set([{}, {}]), set([{}]), 'position');
    expect(call).toThrow(/same number of vectors in the same order/);
  });

  it('rejects duplicate keys', () => {
    const call = () => matchRecords(set([{ sha256: 'a' }, { sha256: 'a' }]), set([{ sha256: 'a' }]), 'sha256');
    expect(call).toThrow(/#0 and #1 have the same sha256 key/);
  });
});

describe('neighbour agreement', () => {
  it('finds a swapped neighbour order', () => {
    // Item 0 is closest to 1 in A, closest to 2 in B.
    const a = [[1, 0, 0], [0.9, 0.1, 0], [0.8, 0.3, 0], [0, 0, 1]];
    const b = [[1, 0, 0], [0.8, 0.3, 0], [0.9, 0.1, 0], [0, 0, 1]];
    const pairs = a.map((vector, i) => ({ key: `#${i}`, a: { index: i, embedding: Float64Array.from(vector) }, b: { index: i, embedding: Float64Array.from(b[i]!) } }));
    const agreement = neighbourAgreement(pairs, 1)!;
    // By hand, with cosines 0.9939 (0-1), 0.9363 (0-2) and 0.9694 (1-2) in A, the nearest
    // neighbours are 0:1, 1:0, 2:1 in A and 0:2, 1:2, 2:0 in B. Item 3 is orthogonal to all,
    // so the tie goes to the lowest index, 0, on both sides: 1 of 4 agree.
    expect(agreement.top1Agreement).toBe(0.25);
    expect(agreement.meanOverlap).toBe(0.25);
  });
});

describe('compare command', () => {
  it('passes for float32-level noise', async () => {
    const result = await run(['compare', file('a.json'), file('b.json')]);
    expect(result.status).toBe(0);
    expect(result.stdout).toMatch(/matched by name/);
    expect(result.stdout).toMatch(/verdict: pass \(6 of 6/);
  });

  it('fails a vector altered in the 4th decimal', async () => {
    const altered = vectorsB.map((vector) => [...vector]);
    altered[3]![5] = Math.fround(altered[3]![5]! + 3e-4);
    writeFileSync(file('b-altered.json'), JSON.stringify(altered.map((embedding, i) => ({ path: `img${i}.png`, embedding }))));
    const result = await run(['compare', file('a.json'), file('b-altered.json'), '--max-abs', '1e-4', '--unit-norm', 'no']);
    expect(result.status).toBe(1);
    expect(result.stdout).toMatch(/^FAIL .* img3\.png$/m);
    expect(result.stdout).toMatch(/max abs difference 3\.0\de-4 at index 5/);
  });

  it('fails a swapped pair of records by position', async () => {
    const swapped = [...vectorsB];
    [swapped[1], swapped[4]] = [swapped[4]!, swapped[1]!];
    writeFileSync(file('b-swapped.json'), JSON.stringify(swapped));
    const result = await run(['compare', file('a-arrays.json'), file('b-swapped.json')]);
    expect(result.status).toBe(1);
    expect(result.stdout).toMatch(/^FAIL .* #1$/m);
    expect(result.stdout).toMatch(/^FAIL .* #4$/m);
    expect(result.stdout).toMatch(/verdict: FAIL: 2 of 6 pairs/);
  });

  it('flags a vector that is not unit length', async () => {
    const scaled = vectorsB.map((vector, i) => (i === 2 ? vector.map((value) => Math.fround(value * 1.01)) : vector));
    writeFileSync(file('b-scaled.json'), JSON.stringify(scaled));
    const result = await run(['compare', file('a-arrays.json'), file('b-scaled.json'), '--max-abs', '1']);
    expect(result.status).toBe(1);
    expect(result.stdout).toMatch(/B vector has norm 1\.01\d*, not unit length/);
  });

  it('exits 2 for unmatched records', async () => {
    const result = await run(['compare', file('a.json'), file('single.json'), '--match', 'position']);
    expect(result.status).toBe(2);
    expect(result.stderr).toMatch(/ERR_UNMATCHED_RECORDS/);
  });

  it('exits 2 for a missing file', async () => {
    const result = await run(['compare', file('a.json'), file('absent.json')]);
    expect(result.status).toBe(2);
    expect(result.stderr).toMatch(/absent\.json: file not found/);
  });

  it('writes a JSON report', async () => {
    const result = await run(['compare', file('a.npy'), file('a.f32'), '--dim', '16', '--json', file('report.json')]);
    expect(result.status).toBe(0);
    const report = JSON.parse(readFileSync(file('report.json'), 'utf8'));
    expect(report.verdict).toBe('pass');
    expect(report.pairs.length).toBe(6);
    expect(report.pairs[0].cosine).toBeCloseTo(1, 12);
  });

  it('writes a valid JUnit report', async () => {
    const swapped = file('b-swapped.json');
    const result = await run(['compare', file('a-arrays.json'), swapped, '--junit', file('report.xml')]);
    expect(result.status).toBe(1);
    const xml = readFileSync(file('report.xml'), 'utf8');
    const summary = checkJunitStructure(xml);
    expect(summary.problems).toEqual([]);
    expect(summary.tests).toBe(6);
    expect(summary.failures).toBe(2);
  });

  it('writes a JUnit error when it cannot run', async () => {
    const result = await run(['compare', file('a.json'), file('absent.json'), '--junit', file('error.xml')]);
    expect(result.status).toBe(2);
    const summary = checkJunitStructure(readFileSync(file('error.xml'), 'utf8'));
    expect(summary.problems).toEqual([]);
    expect(summary.errors).toBe(1);
  });

  it('JUnit check rejects a wrong count', () => {
    const xml = '<?xml version="1.0" encoding="UTF-8"?>\n<testsuites><testsuite name="s" tests="2"><testcase name="a"/></testsuite></testsuites>\n';
    expect(checkJunitStructure(xml).problems).toEqual(['tests="2" but the suite has 1 test cases']);
  });

  it('JUnit check rejects misplaced elements', () => {
    const xml = '<?xml version="1.0" encoding="UTF-8"?>\n<testsuites><testsuite name="s" tests="1"><testcase name="a"/><properties/></testsuite></testsuites>\n';
    expect(checkJunitStructure(xml).problems).toEqual(['<testsuite> has <properties> where the schema does not allow it']);
  });
});
