/** Whole-file writes that a crash or a concurrent reader never sees half done. */
import { randomBytes } from 'node:crypto';
import { open, rename, unlink, type FileHandle } from 'node:fs/promises';
import path from 'node:path';

import { EmbedImageError } from './errors.js';

/**
 * Writes a file atomically: the data goes to a temporary file in the same folder, which is
 * flushed to disk and then renamed over `file`, so readers see the old file or the whole new
 * one. Failures raise ERR_FILE_WRITE naming the file, and the temporary file is removed.
 */
export async function writeFileAtomic(file: string, data: string | Uint8Array): Promise<void> {
  const temporary = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
  let handle: FileHandle | undefined;
  try {
    handle = await open(temporary, 'wx');
    await handle.writeFile(data);
    await handle.sync();
    await handle.close();
    handle = undefined;
    await rename(temporary, file);
  } catch (error) {
    await handle?.close().catch(() => undefined);
    await unlink(temporary).catch(() => undefined);
    throw new EmbedImageError('ERR_FILE_WRITE', `${file}: cannot write the file: ${writeFailure(error, path.dirname(file))}`, { cause: error });
  }
}

/** Describes a failed write in terms of `folder`, not of the temporary file that Node names. */
function writeFailure(error: unknown, folder: string): string {
  const code = (error as NodeJS.ErrnoException).code;
  if (code === 'ENOENT') return `the folder ${folder} does not exist; create it first`;
  if (code === 'EACCES' || code === 'EPERM') return `permission denied to create files in ${folder}`;
  if (code === 'ENOTDIR') return `${folder} is not a folder`;
  return (error as Error).message;
}
