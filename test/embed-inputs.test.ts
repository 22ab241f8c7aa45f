// Input expansion of the embed command (files, folders, symbolic links, globs) and --shard.
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

import { afterAll, describe, expect, it } from 'vitest';

import { expandInputs, parseShard, selectShard } from '../src/cli-embed-inputs.js';
import { EmbedImageError } from '../src/errors.js';

const root = mkdtempSync(path.join(tmpdir(), 'embed-inputs-'));
const files = ['b.png', 'a.JPG', 'notes.txt', 'sub/c.webp', 'sub/deeper/d.jpeg', 'sub/e.gif', 'other/f.png', 'noext'];
for (const file of files) {
  mkdirSync(path.dirname(path.join(root, file)), { recursive: true });
  writeFileSync(path.join(root, file), file);
}
symlinkSync(root, path.join(root, 'sub', 'loop'));
symlinkSync(path.join(root, 'other'), path.join(root, 'sub', 'link-to-other'));
symlinkSync(path.join(root, 'gone.png'), path.join(root, 'broken.png'));

afterAll(() => rmSync(root, { recursive: true, force: true }));

async function names(args: string[]): Promise<string[]> {
  return (await expandInputs(args, root)).items.map((item) => item.name);
}

async function errorOf(promise: Promise<unknown>): Promise<EmbedImageError> {
  try {
    await promise;
  } catch (error) {
    if (error instanceof EmbedImageError) return error;
    throw error;
  }
  return expect.fail('expected the promise to reject');
}

describe('expandInputs', () => {
  it('walks a folder for image files', async () => {
    expect(await names(['.'])).toEqual(['a.JPG', 'b.png', 'other/f.png', 'sub/c.webp', 'sub/deeper/d.jpeg', 'sub/e.gif']);
  });

  it('walks each real folder once through links', async () => {
    const listed = await names(['sub', '.']);
    expect(listed.filter((name) => name.endsWith('f.png'))).toHaveLength(1);
    expect(new Set(listed).size).toBe(listed.length);
  });

  it('warns about a broken link', async () => {
    const { warnings } = await expandInputs(['.'], root);
    expect(warnings.some((warning) => warning.includes('broken.png'))).toBe(true);
  });

  it('takes a named file whatever its extension', async () => {
    expect(await names(['noext', 'b.png'])).toEqual(['b.png', 'noext']);
  });

  it('lists a file named twice once', async () => {
    expect(await names(['b.png', './b.png', path.join(root, 'b.png')])).toEqual(['b.png']);
  });

  it('matches a glob pattern', async () => {
    expect(await names(['sub/*.{webp,gif}'])).toEqual(['sub/c.webp', 'sub/e.gif']);
  });

  it('lists each real file once through a glob', async () => {
    const listed = await names(['sub/**/*']);
    expect(listed.filter((name) => name.endsWith('/f.png'))).toEqual(['sub/link-to-other/f.png']);
    expect(listed.filter((name) => name.endsWith('/c.webp'))).toEqual(['sub/c.webp']);
  });

  it('names files outside the working directory relatively', async () => {
    const { items } = await expandInputs([path.join(root, 'b.png')], path.join(root, 'sub'));
    expect(items[0]?.name).toBe('../b.png');
  });

  it('keeps URLs', async () => {
    expect(await names(['https://example.com/x.jpg', 'b.png'])).toEqual(['b.png', 'https://example.com/x.jpg']);
  });

  it('rejects a missing file', async () => {
    const error = await errorOf(expandInputs(['missing.png'], root));
    expect(error.code).toBe('ERR_FILE_NOT_FOUND');
    expect(error.message).toContain('missing.png');
  });

  it('rejects a glob without images', async () => {
    const error = await errorOf(expandInputs(['*.txt'], root));
    expect(error.code).toBe('ERR_FILE_NOT_FOUND');
  });
});

describe('shards', () => {
  it.each(['1/1', '2/4', '4/4', ' 3/7 '])('parses %s', (text) => {
    const shard = parseShard(text);
    expect(`${shard.index}/${shard.count}`).toBe(text.trim());
  });

  it.each(['0/3', '4/3', '1/0', 'a/b', '1', '1/2/3', '-1/2', '1.5/2'])('rejects %s', (text) => {
    expect(() => parseShard(text)).toThrow(/--shard must be I\/N/);
  });

  it('splits into disjoint blocks that cover the list', () => {
    for (let length = 0; length <= 23; length++) {
      const items = Array.from({ length }, (_, index) => index);
      for (let count = 1; count <= 7; count++) {
        const parts = Array.from({ length: count }, (_, index) => selectShard(items, { index: index + 1, count }));
        expect(parts.flat(), `${length} items in ${count} shards`).toEqual(items);
        const sizes = parts.map((part) => part.length);
        expect(Math.max(...sizes) - Math.min(...sizes), `${length} items in ${count} shards`).toBeLessThanOrEqual(1);
      }
    }
  });
});
