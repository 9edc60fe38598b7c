/** What a walk found that it could not delete (failures, mounts left alone), with the paths they had, for its report. */
import path from 'node:path';
import { MAX_KEPT, describe, displayName, type DeleteReport } from './delete-report.js';
import { keepUp, type Dir } from './delete-dirs.js';
import type { Failure, SubtreeResult } from './delete-threads.js';

export class Findings {
  /** Failures counted, described or not. */
  failed = 0;

  constructor(
    private readonly report: DeleteReport,
    private readonly base: Dir,
    private readonly parentPath: string,
  ) {}

  /** A failed call on an entry of `dir`: someone else removing it first (ENOENT) is no failure. */
  failIn(dir: Dir, name: Uint8Array, f: Failure): void {
    if (f.code === 'ENOENT') return;
    this.fail(dir, name, f);
    keepUp(dir);
  }

  fail(dir: Dir, entry: Uint8Array | undefined, err: unknown): void {
    // The path is built only for the failures kept: a deep tree's paths are long.
    if (this.report.failures.length < MAX_KEPT) this.failAt(this.logical(dir, entry), err);
    else this.failed++;
  }

  failAt(p: string, err: unknown): void {
    this.failed++;
    if (this.report.failures.length < MAX_KEPT) this.report.failures.push({ path: p, error: describe(err) });
  }

  skipMount(dir: Dir, name: Uint8Array): void {
    keepUp(dir);
    this.skippedAt(this.logical(dir, name));
  }

  skippedAt(p: string): void {
    if (this.report.skippedMounts.length < MAX_KEPT) this.report.skippedMounts.push(p);
  }

  /** What a slice of a subtree deleted in a thread did, below `parent`. */
  countSubtree(parent: Dir, r: SubtreeResult): void {
    this.report.files += r.removed;
    this.report.bytes += r.bytes;
    this.report.dirs += r.dirs;
    const under = (trail: string[]): string => path.join(this.logical(parent), ...trail.map((n) => displayName(Buffer.from(n, 'latin1'))));
    for (const f of r.fails) this.failAt(under(f.trail), f);
    this.failed += r.failCount - r.fails.length;
    for (const trail of r.skipped) this.skippedAt(under(trail));
  }

  /** The path a directory (or an entry in it) had when we reached it, for reports. */
  logical(dir: Dir, entry?: Uint8Array): string {
    const parts: string[] = entry === undefined ? [] : [displayName(entry)];
    for (let d: Dir | null = dir; d && d !== this.base; d = d.parent) parts.push(displayName(d.name));
    return path.join(this.parentPath, ...parts.reverse());
  }
}
