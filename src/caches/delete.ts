/**
 * Deleting a tree, safely and fast (used only on the trash).
 *
 * Safety (rules 5 of safety.ts): symlinks are unlinked as links, never
 * followed — readdir's entry types come from the directory itself, and a
 * directory is entered only after lstat says it is a real directory on the
 * top's filesystem. A mount point is left alone, with everything below it, and
 * reported. A failure on one entry is recorded and the walk goes on; an entry
 * someone else removed meanwhile (ENOENT) is not a failure.
 *
 * Speed: files are unlinked many at a time and directories are walked in
 * parallel, bounded by one limiter, so the thread pool stays busy without
 * the process holding the whole tree in memory. A directory is removed once
 * its last child is gone.
 */
import { lstat, readdir, rmdir, unlink } from 'node:fs/promises';
import path from 'node:path';
import type { Dirent } from 'node:fs';
import { errnoCode, errorMessage } from '../errors.js';
import type { Logger } from '../log.js';

export interface DeleteOptions {
  /** Filesystem calls in flight at once. */
  concurrency?: number;
  /** Files per second; 0 or absent = unlimited. */
  rateLimit?: number;
  signal?: AbortSignal;
  logger?: Logger;
  /** lstat each file to count the bytes freed (one extra call per file). Default true. */
  countBytes?: boolean;
}

export interface DeleteReport {
  files: number;
  dirs: number;
  /** Bytes of the files removed (allocated blocks), when counted. */
  bytes: number;
  failures: { path: string; error: string }[];
  skippedMounts: string[];
}

export function emptyReport(): DeleteReport {
  return { files: 0, dirs: 0, bytes: 0, failures: [], skippedMounts: [] };
}

export function addReports(into: DeleteReport, from: DeleteReport): DeleteReport {
  into.files += from.files;
  into.dirs += from.dirs;
  into.bytes += from.bytes;
  into.failures.push(...from.failures);
  into.skippedMounts.push(...from.skippedMounts);
  return into;
}

/** At most this many failures are kept in a report; the count goes on. */
const MAX_FAILURES_KEPT = 100;
/** Entries of one directory handled per batch, to bound the promises alive at once. */
const BATCH = 512;

class Limiter {
  private active = 0;
  private readonly waiting: (() => void)[] = [];
  constructor(private readonly max: number) {}
  async run<T>(fn: () => Promise<T>): Promise<T> {
    if (this.active >= this.max) await new Promise<void>((resolve) => this.waiting.push(resolve));
    this.active++;
    try {
      return await fn();
    } finally {
      this.active--;
      this.waiting.shift()?.();
    }
  }
}

/** A token bucket: `take()` resolves when one more file may be deleted. */
class RateLimiter {
  private nextAt = 0;
  constructor(private readonly perSecond: number) {}
  async take(): Promise<void> {
    const now = performance.now();
    const interval = 1000 / this.perSecond;
    // Allow a burst of up to one second's worth, then pace.
    this.nextAt = Math.max(this.nextAt, now - 1000) + interval;
    const wait = this.nextAt - now;
    if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
  }
}

interface Walk {
  topDev: bigint;
  io: Limiter;
  rate: RateLimiter | null;
  signal: AbortSignal | undefined;
  countBytes: boolean;
  report: DeleteReport;
  failed: number;
}

function fail(walk: Walk, p: string, err: unknown): void {
  walk.failed++;
  if (walk.report.failures.length < MAX_FAILURES_KEPT) walk.report.failures.push({ path: p, error: `${errnoCode(err) ?? 'error'}: ${errorMessage(err)}` });
}

/** Delete `top` and everything below it on the same filesystem. */
export async function deleteTree(top: string, opts: DeleteOptions = {}): Promise<DeleteReport> {
  const report = emptyReport();
  let st;
  try {
    st = await lstat(top, { bigint: true });
  } catch (err) {
    if (errnoCode(err) !== 'ENOENT') report.failures.push({ path: top, error: errorMessage(err) });
    return report;
  }
  const walk: Walk = {
    topDev: st.dev,
    io: new Limiter(opts.concurrency ?? 32),
    rate: opts.rateLimit ? new RateLimiter(opts.rateLimit) : null,
    signal: opts.signal,
    countBytes: opts.countBytes ?? true,
    report,
    failed: 0,
  };
  if (!st.isDirectory()) {
    await removeFile(walk, top);
    return report;
  }
  await removeDir(walk, top);
  if (walk.failed > report.failures.length) {
    opts.logger?.warn({ top, failures: walk.failed, kept: report.failures.length }, 'many deletions failed; only the first are reported');
  }
  return report;
}

async function removeFile(walk: Walk, p: string): Promise<void> {
  if (walk.signal?.aborted) return;
  if (walk.rate) await walk.rate.take();
  await walk.io.run(async () => {
    try {
      if (walk.countBytes) {
        const st = await lstat(p, { bigint: true });
        await unlink(p);
        walk.report.bytes += Number(st.blocks) * 512;
      } else {
        await unlink(p);
      }
      walk.report.files++;
    } catch (err) {
      if (errnoCode(err) !== 'ENOENT') fail(walk, p, err);
    }
  });
}

/** Returns true when the directory is gone. */
async function removeDir(walk: Walk, dir: string): Promise<boolean> {
  if (walk.signal?.aborted) return false;
  let entries: Dirent[];
  try {
    entries = await walk.io.run(() => readdir(dir, { withFileTypes: true }));
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return true;
    fail(walk, dir, err);
    return false;
  }
  const subdirs: string[] = [];
  let keep = false;
  for (let i = 0; i < entries.length; i += BATCH) {
    await Promise.all(
      entries.slice(i, i + BATCH).map(async (entry) => {
        const p = path.join(dir, entry.name);
        if (!entry.isDirectory()) return removeFile(walk, p);
        // Enter only a real directory on the same filesystem.
        try {
          const st = await walk.io.run(() => lstat(p, { bigint: true }));
          if (!st.isDirectory()) return removeFile(walk, p);
          if (st.dev !== walk.topDev) {
            walk.report.skippedMounts.push(p);
            keep = true;
            return;
          }
          subdirs.push(p);
        } catch (err) {
          if (errnoCode(err) !== 'ENOENT') {
            fail(walk, p, err);
            keep = true;
          }
        }
      }),
    );
  }
  entries = [];
  const removed = await Promise.all(subdirs.map((sub) => removeDir(walk, sub)));
  if (keep || removed.includes(false) || walk.signal?.aborted) return false;
  try {
    await walk.io.run(() => rmdir(dir));
    walk.report.dirs++;
    return true;
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return true;
    fail(walk, dir, err);
    return false;
  }
}
