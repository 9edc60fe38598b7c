/**
 * The walk that deletes a tree: the main thread schedules, the deletion
 * threads (delete-threads.ts) make the calls. Different directories are worked
 * on in parallel (calls in one directory contend for its lock), which hides
 * disk latency. Directories are taken depth-first and read a bounded batch at
 * a time, and a directory reads its next batch only once the subdirectories of
 * the last one are started: memory holds the directories being worked on, their
 * ancestors, and at most one batch of names each — never a whole directory,
 * never the whole tree, and nothing that grows with a path's length. Nothing
 * recurses on the JS stack.
 */
import { close as closeFd } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { faultPoint } from '../fault.js';
import { MAX_KEPT, describe, displayName, type DeleteOptions, type DeleteReport } from './delete-report.js';
import { Threads, type Failure, type FsId, type OpResults, type Op } from './delete-threads.js';
import { TokenBucket } from './token-bucket.js';

/** Entries per read: large enough that messaging costs nothing next to the calls. */
const BATCH = 256;
/**
 * Directories this deep below the top (a trash's caches' subdirectories) are
 * deleted whole by one thread, a slice of calls at a time: parallel enough
 * across siblings, and a deep chain costs no message per level.
 */
const SUBTREE_DEPTH = 2;
const DEFAULT_THREADS = 4;

const close = promisify(closeFd);

/** A directory being deleted. */
interface Dir {
  name: Uint8Array;
  parent: Dir | null;
  /** 0 for the top. */
  depth: number;
  /** Open descriptor, or null while only its subdirectories are at work (they climb back to reopen it). */
  fd: number | null;
  dev: string;
  ino: string;
  /** Its listing, open in deletion thread `slot`, until read to the end. */
  stream: number | null;
  slot: number;
  /** Subdirectories listed and not yet started (at most one batch). */
  subdirs: Uint8Array[];
  /** Names to unlink that were listed as directories but are not (a symlink swapped in). */
  links: Uint8Array[];
  /** Calls in flight that use `fd` (a read among them): it is never closed under them. */
  using: number;
  reading: boolean;
  /** Subdirectories opened (or being opened) and not finished. */
  children: number;
  /** Something below stays (a mount, a failure): never removed. */
  kept: boolean;
  queued: boolean;
  finished: boolean;
}

function newDir(name: Uint8Array, parent: Dir | null, fd: number, id: Pick<FsId, 'dev' | 'ino'>): Dir {
  return { name, parent, depth: parent ? parent.depth + 1 : -1, fd, dev: id.dev, ino: id.ino, stream: null, slot: 0, subdirs: [], links: [], using: 0, reading: false, children: 0, kept: false, queued: false, finished: false };
}

interface Job {
  op: Op;
  args: object;
  /** Rate-limit tokens the call may spend. */
  cost: number;
  pinned?: number;
  done(result: unknown, slot: number): Promise<void> | void;
}

export interface WalkStart {
  /** The top's parent, held open by the caller for the whole walk. */
  parentFd: number;
  parentId: Pick<FsId, 'dev' | 'ino'>;
  /** The filesystem everything must be on: the top's parent's. */
  fs: { dev: string; mnt: string | null };
  parentPath: string;
  topName: Uint8Array;
  /** deleteContents: the top itself stays. */
  keepTop: boolean;
  /** The directory the top must be, when the caller checked it (a trash). */
  expectTop?: { dev: string; ino: string };
  /** Mount points, as `<dev>:<ino of the directory holding it>` → entry names (latin1). */
  mounts: ReadonlyMap<string, string[]>;
}

export class Walk {
  private readonly threads: Threads;
  private readonly maxInFlight: number;
  private readonly bucket: TokenBucket | null;
  private readonly batch: number;
  private readonly signal: AbortSignal | undefined;
  private readonly countBytes: boolean;
  /** Directories with work to start: a stack, so the walk goes depth-first. */
  private readonly ready: Dir[] = [];
  /** Calls that finish a directory; they go first, to release descriptors and memory. */
  private readonly urgent: Job[] = [];
  /** Subtrees under way in a thread (id → thread), continued before anything new is started. */
  private readonly subtrees = new Map<number, number>();
  private readonly continuing: Job[] = [];
  private inFlight = 0;
  private wake: (() => void) | null = null;
  private finished = false;
  private failed = 0;
  /** Directories whose descriptor (or listing) is open, except the base, which the caller closes. */
  private readonly open = new Set<Dir>();
  private readonly base: Dir;

  constructor(
    private readonly report: DeleteReport,
    private readonly start: WalkStart,
    private readonly opts: DeleteOptions,
  ) {
    this.base = newDir(new Uint8Array(), null, start.parentFd, start.parentId);
    const threads = Math.max(1, Math.floor(opts.concurrency ?? DEFAULT_THREADS));
    this.threads = new Threads(threads);
    this.maxInFlight = threads * 2;
    this.bucket = opts.rateLimit ? new TokenBucket(opts.rateLimit, opts.clock) : null;
    this.batch = Math.min(BATCH, this.bucket?.capacity ?? BATCH);
    this.signal = opts.signal;
    this.countBytes = opts.countBytes ?? true;
  }

  async run(): Promise<void> {
    try {
      if (this.skipNames(this.base).includes(Buffer.from(this.start.topName).toString('latin1'))) {
        this.skipMount(this.base, this.start.topName);
        return;
      }
      this.urgent.push(this.openJob(this.base, this.start.topName));
      await this.dispatch();
      if (!this.finished && !this.signal?.aborted) this.fail(this.base, this.start.topName, new Error('internal error: the walk stalled; the rest is left for the next run'));
    } finally {
      // Only after an abort (or a bug) can subtrees, listings and descriptors still be open here.
      for (const [id, slot] of this.subtrees) await this.threads.call('subtreeClose', { id }, slot).catch(() => {});
      for (const dir of this.open) {
        if (dir.stream !== null) await this.threads.call('closeStream', { stream: dir.stream }, dir.slot).catch(() => {});
        dir.stream = null;
        this.release(dir);
      }
      await this.threads.close();
    }
    if (this.failed > this.report.failures.length) {
      this.opts.logger?.warn({ path: this.logical(this.base, this.start.topName), failures: this.failed, kept: this.report.failures.length }, 'many deletions failed; only the first are reported');
    }
  }

  /** Hand out calls until the top is finished (or the walk is aborted), at most maxInFlight at a time. */
  private async dispatch(): Promise<void> {
    while (!this.finished && !this.signal?.aborted) {
      const job = this.inFlight < this.maxInFlight ? this.nextJob() : null;
      if (!job) {
        if (this.inFlight === 0) break; // nothing left to do: only an abort or a bug gets here unfinished
        await new Promise<void>((resolve) => (this.wake = resolve));
        continue;
      }
      if (this.bucket && job.cost > 0 && !(await this.bucket.take(job.cost, this.signal))) break;
      this.inFlight++;
      this.threads
        .call(job.op, job.args, job.pinned)
        .then(({ value, slot }) => job.done(value, slot))
        .catch((err: unknown) => {
          // A thread died (out of memory) or a bug: stop; what is left stays in the trash for the next run.
          this.fail(this.base, this.start.topName, err);
          this.finished = true;
        })
        .finally(() => {
          this.inFlight--;
          this.notify();
        });
    }
    while (this.inFlight > 0) await new Promise<void>((resolve) => (this.wake = resolve));
  }

  private notify(): void {
    const wake = this.wake;
    this.wake = null;
    wake?.();
  }

  private nextJob(): Job | null {
    const urgent = this.urgent.shift() ?? this.continuing.shift();
    if (urgent) return urgent;
    while (this.ready.length > 0) {
      const dir = this.ready[this.ready.length - 1]!;
      if (dir.links.length > 0) return this.unlinkJob(dir);
      const sub = dir.subdirs.pop();
      if (sub !== undefined) return this.openJob(dir, sub);
      if (dir.stream !== null && !dir.reading) return this.readJob(dir);
      this.ready.pop();
      dir.queued = false;
    }
    return null;
  }

  private readJob(dir: Dir): Job {
    dir.using++;
    dir.reading = true;
    const max = this.batch;
    return {
      op: 'read',
      args: { stream: dir.stream, dirFd: dir.fd, max, countBytes: this.countBytes, skip: this.skipNames(dir) },
      cost: max,
      pinned: dir.slot,
      done: (value) => {
        const r = value as OpResults['read'];
        dir.using--;
        dir.reading = false;
        this.bucket?.refund(max - r.files);
        this.report.files += r.removed;
        this.report.bytes += r.bytes;
        for (const f of r.fails) this.failIn(dir, f.name, f);
        for (const name of r.skipped) this.skipMount(dir, name);
        if (r.listFail) {
          this.fail(dir, undefined, r.listFail);
          this.keep(dir);
        }
        dir.subdirs.push(...r.dirs);
        if (r.end) dir.stream = null;
        this.settle(dir);
      },
    };
  }

  private unlinkJob(dir: Dir): Job {
    const names = dir.links.splice(0, this.batch);
    dir.using++;
    return {
      op: 'unlink',
      args: { dirFd: dir.fd, names, countBytes: this.countBytes },
      cost: names.length,
      done: (value) => {
        const { removed, bytes, fails } = value as OpResults['unlink'];
        dir.using--;
        this.report.files += removed;
        this.report.bytes += bytes;
        for (const f of fails) this.failIn(dir, f.name, f);
        this.settle(dir);
      },
    };
  }

  private openJob(parent: Dir, name: Uint8Array): Job {
    if (parent.depth + 1 >= SUBTREE_DEPTH) return this.subtreeJob(parent, name);
    parent.using++;
    parent.children++;
    const isTop = parent === this.base;
    return {
      op: 'open',
      args: { dirFd: parent.fd, name, fs: this.start.fs, expect: isTop ? this.start.expectTop : undefined },
      cost: 0,
      done: (value, slot) => this.opened(parent, name, value as OpResults['open'], slot),
    };
  }

  private opened(parent: Dir, name: Uint8Array, r: OpResults['open'], slot: number): void {
    parent.using--;
    const isTop = parent === this.base;
    if ('fail' in r) {
      parent.children--;
      const code = r.fail.code;
      if (code === 'ELOOP' || code === 'ENOTDIR') {
        // A symlink or a file where a directory was: removed as what it is, never followed.
        if (isTop && this.start.keepTop) this.fail(parent, name, { code, message: 'is not a directory (a symlink is never followed); left alone' });
        else parent.links.push(name);
      } else if (code !== 'ENOENT') {
        this.fail(parent, name, r.fail);
        this.keep(parent);
      }
      this.settle(parent);
      return;
    }
    const dir = newDir(name, parent, r.fd, r);
    dir.slot = slot;
    this.open.add(dir);
    if (r.stream === undefined) {
      // On another filesystem (a mount point), replaced since it was checked, or unreadable: left alone, with everything below it.
      if (r.replaced) this.fail(dir, undefined, { code: 'EMOVED', message: 'was replaced by another directory since it was checked; left alone' });
      else if (r.listFail) this.fail(dir, undefined, r.listFail);
      else this.skipMount(parent, name);
      this.release(dir);
      parent.children--;
      this.keep(parent);
      this.settle(parent);
      return;
    }
    dir.stream = r.stream;
    this.settle(dir);
    this.settle(parent);
  }

  private subtreeJob(parent: Dir, name: Uint8Array): Job {
    parent.using++;
    parent.children++;
    const max = this.batch;
    return {
      op: 'subtree',
      args: { dirFd: parent.fd, name, fs: this.start.fs, countBytes: this.countBytes, mounts: [...this.start.mounts], max },
      cost: max,
      done: (value, slot) => this.subtreeProgress(parent, value as OpResults['subtree'], slot, max),
    };
  }

  /** A slice of a subtree was done: count it, and continue it on the same thread until it is finished. */
  private async subtreeProgress(parent: Dir, r: OpResults['subtree'], slot: number, max: number, id = r.id): Promise<void> {
    this.bucket?.refund(max - r.ops);
    this.report.files += r.removed;
    this.report.bytes += r.bytes;
    this.report.dirs += r.dirs;
    const under = (trail: string[]): string => path.join(this.logical(parent), ...trail.map((n) => displayName(Buffer.from(n, 'latin1'))));
    for (const f of r.fails) this.failAt(under(f.trail), f);
    this.failed += r.failCount - r.fails.length;
    for (const trail of r.skipped) if (this.report.skippedMounts.length < MAX_KEPT) this.report.skippedMounts.push(under(trail));
    if (r.dirs > 0) await faultPoint('trash-delete');
    if (!r.done && id !== undefined) {
      this.subtrees.set(id, slot);
      this.continuing.push({ op: 'subtreeStep', args: { id, max }, cost: max, pinned: slot, done: (value) => this.subtreeProgress(parent, value as OpResults['subtree'], slot, max, id) });
      return;
    }
    if (id !== undefined) this.subtrees.delete(id);
    parent.using--;
    if (r.kept) this.keep(parent);
    this.childDone(parent);
  }

  /** Mount points among `dir`'s entries, as latin1 strings (the form the thread compares names in). */
  private skipNames(dir: Dir): string[] {
    return this.start.mounts.get(`${dir.dev}:${dir.ino}`) ?? [];
  }

  /**
   * Look at a directory after something changed: queue it if it has work to
   * start; finish it once its own calls, its listing and its subdirectories
   * are done; else close it while only its subdirectories are at work.
   */
  private settle(dir: Dir): void {
    if (dir.finished) return;
    if (dir.links.length > 0 || dir.subdirs.length > 0 || (dir.stream !== null && !dir.reading)) {
      if (!dir.queued) {
        dir.queued = true;
        this.ready.push(dir);
      }
      return;
    }
    if (dir.using > 0 || dir.stream !== null) return;
    if (dir === this.base) {
      if (dir.children === 0) this.finishWalk();
    } else if (dir.children === 0) this.finish(dir);
    else this.release(dir);
  }

  /** Everything below `dir` is gone (or kept): remove it, through its parent. */
  private finish(dir: Dir): void {
    dir.finished = true;
    const parent = dir.parent!;
    if (dir.kept || (parent === this.base && this.start.keepTop)) {
      this.release(dir);
      this.childDone(parent);
      return;
    }
    parent.using++;
    if (parent.fd !== null) {
      this.urgent.push({
        op: 'rmdir',
        args: { dirFd: parent.fd, name: dir.name },
        cost: 1,
        done: (r) => this.removed(parent, dir, (r as OpResults['rmdir']).fail),
      });
      return;
    }
    // The parent was closed while its subdirectories were at work: reopen it from here (checking it is the same one), and remove `dir` from it.
    this.urgent.push({
      op: 'rmdirUp',
      args: { fd: dir.fd, name: dir.name, dev: parent.dev, ino: parent.ino },
      cost: 1,
      done: (r) => {
        const up = r as OpResults['rmdirUp'];
        if ('fd' in up) {
          if (parent.fd === null) {
            parent.fd = up.fd;
            this.open.add(parent);
          } else void close(up.fd);
          return this.removed(parent, dir, up.rmdirFail);
        }
        // Gone (someone else deleted it meanwhile) is no failure; its parent stays for the next run either way.
        if (up.fail.code !== 'ENOENT') this.fail(parent, undefined, up.fail);
        parent.using--;
        this.release(dir);
        this.keep(parent);
        this.childDone(parent);
      },
    });
  }

  /** `dir` was removed from `parent` (or that failed). */
  private async removed(parent: Dir, dir: Dir, fail: Failure | undefined): Promise<void> {
    parent.using--;
    this.release(dir);
    if (!fail) {
      this.report.dirs++;
      // Crash tests (src/fault.ts) kill the process here: in the middle of emptying the trash.
      await faultPoint('trash-delete');
    } else if (fail.code !== 'ENOENT') {
      this.fail(dir, undefined, fail);
      this.keep(parent);
    }
    this.childDone(parent);
  }

  private childDone(parent: Dir): void {
    parent.children--;
    this.settle(parent);
  }

  private finishWalk(): void {
    this.finished = true;
    this.notify();
  }

  private release(dir: Dir): void {
    if (dir.fd === null || dir === this.base) return;
    void close(dir.fd).catch(() => {});
    dir.fd = null;
    if (dir.stream === null) this.open.delete(dir);
  }

  private keep(dir: Dir): void {
    for (let d: Dir | null = dir; d && !d.kept; d = d.parent) d.kept = true;
  }

  /** A failed call on an entry of `dir`: someone else removing it first (ENOENT) is no failure. */
  private failIn(dir: Dir, name: Uint8Array, f: Failure): void {
    if (f.code === 'ENOENT') return;
    this.fail(dir, name, f);
    this.keep(dir);
  }

  private fail(dir: Dir, entry: Uint8Array | undefined, err: unknown): void {
    // The path is built only for the failures kept: a deep tree's paths are long.
    if (this.report.failures.length < MAX_KEPT) this.failAt(this.logical(dir, entry), err);
    else this.failed++;
  }

  private failAt(p: string, err: unknown): void {
    this.failed++;
    if (this.report.failures.length < MAX_KEPT) this.report.failures.push({ path: p, error: describe(err) });
  }

  private skipMount(dir: Dir, name: Uint8Array): void {
    this.keep(dir);
    if (this.report.skippedMounts.length < MAX_KEPT) this.report.skippedMounts.push(this.logical(dir, name));
  }

  /** The path a directory (or an entry in it) had when we reached it, for reports. */
  private logical(dir: Dir, entry?: Uint8Array): string {
    const parts: string[] = entry === undefined ? [] : [displayName(entry)];
    for (let d: Dir | null = dir; d && d !== this.base; d = d.parent) parts.push(displayName(d.name));
    return path.join(this.start.parentPath, ...parts.reverse());
  }
}
