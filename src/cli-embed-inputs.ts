/**
 * Input expansion for the embed command: files, folders (walked recursively for image files),
 * glob patterns and http(s) URLs become one sorted, de-duplicated list, which `--shard` can
 * split for parallel jobs.
 */
import { opendir, realpath, stat } from 'node:fs/promises';
import path from 'node:path';

import { glob, isDynamicPattern } from 'tinyglobby';

import { EmbedImageError } from './errors.js';

/** File name extensions (lowercase) that folder walks and globs pick up as images. */
export const IMAGE_EXTENSIONS: ReadonlySet<string> = new Set([
  '.jpg', '.jpeg', '.jpe', '.png', '.webp', '.gif', '.bmp', '.tif', '.tiff', '.avif', '.heic', '.heif', '.pbm', '.pgm', '.ppm', '.pnm',
]);

export interface InputItem {
  /** Name of the input in records and messages: its path relative to the working directory with "/" separators, or the URL. */
  name: string;
  /** The absolute file path, or the URL. */
  location: string;
  kind: 'file' | 'url';
}

export interface ExpandedInputs {
  items: InputItem[];
  /** Things skipped on the way, such as broken symbolic links, one message each. */
  warnings: string[];
}

export function isImageFileName(name: string): boolean {
  return IMAGE_EXTENSIONS.has(path.extname(name).toLowerCase());
}

/** Returns the record name of an absolute path: relative to `cwd`, with "/" separators. */
export function recordName(absolute: string, cwd: string): string {
  const relative = path.relative(cwd, absolute);
  return (relative === '' ? '.' : relative).split(path.sep).join('/');
}

/** Compares strings by UTF-16 code units, so the order does not depend on the locale. */
export function compareCodeUnits(a: string, b: string): number {
  if (a < b) return -1;
  return a > b ? 1 : 0;
}

/**
 * Walks a folder depth first in name order and calls `add` for each image file. A folder
 * reached again through a symbolic link (a loop, or two links to one folder) is walked only
 * the first time, so every real folder is listed once.
 */
async function walkFolder(folder: string, visited: Set<string>, add: (file: string) => void, warnings: string[]): Promise<void> {
  const real = await realpath(folder);
  if (visited.has(real)) return;
  visited.add(real);

  const entries = [];
  for await (const entry of await opendir(folder)) entries.push(entry);
  entries.sort((a, b) => compareCodeUnits(a.name, b.name));

  for (const entry of entries) {
    const child = path.join(folder, entry.name);
    if (entry.isDirectory()) {
      await walkFolder(child, visited, add, warnings);
    } else if (entry.isFile()) {
      if (isImageFileName(entry.name)) add(child);
    } else if (entry.isSymbolicLink()) {
      let target;
      try {
        target = await stat(child);
      } catch (error) {
        warnings.push(`${child}: skipped a symbolic link that cannot be followed (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`);
        continue;
      }
      if (target.isDirectory()) await walkFolder(child, visited, add, warnings);
      else if (target.isFile() && isImageFileName(entry.name)) add(child);
    }
  }
}

/**
 * Expands command-line inputs. An existing file is taken whatever its extension. A folder is
 * walked for files with an image extension. An argument that is not an existing path and
 * contains glob syntax is matched with tinyglobby, keeping image files only and each real
 * file once. An http(s) URL is kept as it is. Anything else is an error (ERR_FILE_NOT_FOUND), as is an input that
 * yields no image. The result is sorted by name and contains each file once.
 */
export async function expandInputs(args: string[], cwd: string): Promise<ExpandedInputs> {
  const byLocation = new Map<string, InputItem>();
  const warnings: string[] = [];
  const visited = new Set<string>();
  const addFile = (file: string): void => {
    const absolute = path.resolve(cwd, file);
    if (!byLocation.has(absolute)) byLocation.set(absolute, { name: recordName(absolute, cwd), location: absolute, kind: 'file' });
  };
  // Glob matches through symbolic links can name one file several times. The first name in
  // sorted order is kept.
  const globbedRealPaths = new Set<string>();
  const addGlobMatches = async (matches: string[]): Promise<void> => {
    for (const file of matches.sort(compareCodeUnits)) {
      const real = await realpath(file);
      if (globbedRealPaths.has(real)) continue;
      globbedRealPaths.add(real);
      addFile(file);
    }
  };

  for (const arg of args) {
    if (/^https?:\/\//i.test(arg)) {
      byLocation.set(arg, { name: arg, location: arg, kind: 'url' });
      continue;
    }
    const absolute = path.resolve(cwd, arg);
    let kind;
    try {
      kind = await stat(absolute);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code !== 'ENOENT' && code !== 'ENOTDIR') throw new EmbedImageError('ERR_FILE_READ', `${arg}: cannot read: ${(error as Error).message}`, { cause: error });
    }

    if (kind?.isDirectory()) {
      const before = byLocation.size;
      await walkFolder(absolute, visited, addFile, warnings);
      if (byLocation.size === before) warnings.push(`${arg}: the folder holds no files with an image extension (${[...IMAGE_EXTENSIONS].join(' ')})`);
    } else if (kind) {
      addFile(absolute);
    } else if (isDynamicPattern(arg)) {
      const matches = await glob(arg, { cwd, absolute: true, onlyFiles: true, followSymbolicLinks: true, expandDirectories: false });
      const images = matches.filter((file) => isImageFileName(file));
      if (images.length === 0) {
        throw new EmbedImageError('ERR_FILE_NOT_FOUND', `${arg}: no such file or folder, and as a glob pattern it matches no image files (${matches.length} other files)`);
      }
      await addGlobMatches(images);
    } else {
      // A bare word is more likely a mistyped command than a file name.
      const hint = /^[a-z][a-z-]*$/.test(arg) ? ', and no command of that name (see "embed-image --help")' : '';
      throw new EmbedImageError('ERR_FILE_NOT_FOUND', `${arg}: no such file or folder${hint}`);
    }
  }

  const items = [...byLocation.values()].sort((a, b) => compareCodeUnits(a.name, b.name));
  return { items, warnings };
}

export interface Shard {
  /** 1-based shard number. */
  index: number;
  count: number;
}

/** Parses "I/N" with 1 <= I <= N, or throws ERR_INVALID_ARGUMENT. */
export function parseShard(text: string): Shard {
  const match = /^(\d+)\/(\d+)$/.exec(text.trim());
  const index = Number(match?.[1]);
  const count = Number(match?.[2]);
  if (!match || !Number.isSafeInteger(index) || !Number.isSafeInteger(count) || count < 1 || index < 1 || index > count) {
    throw new EmbedImageError('ERR_INVALID_ARGUMENT', `--shard must be I/N with 1 <= I <= N, such as 2/4, got "${text}"`);
  }
  return { index, count };
}

/**
 * Returns shard `index` of `count` over a sorted list: a contiguous block, so concatenating
 * the outputs of shards 1..N in order gives the sorted order of the whole run. Block sizes
 * differ by at most one.
 */
export function selectShard<T>(items: readonly T[], shard: Shard): T[] {
  const start = Math.floor(((shard.index - 1) * items.length) / shard.count);
  const end = Math.floor((shard.index * items.length) / shard.count);
  return items.slice(start, end);
}
