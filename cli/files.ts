import { randomBytes } from 'node:crypto';
import { chmodSync, closeSync, existsSync, fsyncSync, mkdirSync, openSync, renameSync, statSync, unlinkSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

/** Makes the parent folder (0700) and writes the file atomically: temp file (0600), fsync, rename. */
export function writeFileAtomic(path: string, data: string): void {
  const dir = dirname(path);
  if (!existsSync(dir)) mkdirSync(dir, { recursive: true, mode: 0o700 });
  const tmp = `${path}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
  const fd = openSync(tmp, 'wx', 0o600);
  try {
    writeSync(fd, data);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  chmodSync(tmp, 0o600);
  renameSync(tmp, path);
}

/**
 * Runs fn holding `path.lock` (created exclusively), so two processes renewing the same file never
 * interleave their read-modify-write. A lock older than staleMs is taken over (its owner died).
 */
export async function withFileLock<T>(path: string, fn: () => T | Promise<T>, opts: { timeoutMs?: number; staleMs?: number } = {}): Promise<T> {
  const lock = `${path}.lock`;
  const dir = dirname(path);
  if (!existsSync(dir)) mkdirSync(dir, { recursive: true, mode: 0o700 });
  const deadline = Date.now() + (opts.timeoutMs ?? 15_000);
  for (let wait = 10; ; wait = Math.min(wait * 2, 200)) {
    try {
      closeSync(openSync(lock, 'wx', 0o600));
      break;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      try {
        if (Date.now() - statSync(lock).mtimeMs > (opts.staleMs ?? 30_000)) unlinkSync(lock);
      } catch {
        // the owner removed it meanwhile
      }
      if (Date.now() > deadline) throw new Error(`${lock} is held by another process; remove it if none is running`);
      await sleep(wait + Math.floor(Math.random() * 10));
    }
  }
  try {
    return await fn();
  } finally {
    try {
      unlinkSync(lock);
    } catch {
      // already gone
    }
  }
}
