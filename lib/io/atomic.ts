import { closeSync, fsyncSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';

/**
 * Writes parts to path atomically: a temporary file in the same folder, fsync, rename, fsync of
 * the folder, so a crash leaves the old file or the new one, never half of one.
 * @throws {Error} the file-system error; the old file stays and no temporary file is left
 */
export function writeFileAtomic(path: string, parts: (Uint8Array | string)[]): void {
  const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.tmp`);
  const fd = openSync(tmp, 'w');
  try {
    for (const part of parts) writeSync(fd, typeof part === 'string' ? Buffer.from(part) : part);
    fsyncSync(fd);
  } catch (e) {
    closeSync(fd);
    rmSync(tmp, { force: true });
    throw e;
  }
  closeSync(fd);
  renameSync(tmp, path);
  try {
    const dir = openSync(dirname(path), 'r');
    fsyncSync(dir);
    closeSync(dir);
  } catch {
    // some file systems cannot fsync a directory; the rename itself is still atomic
  }
}
