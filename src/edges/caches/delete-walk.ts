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
import { promisify } from 'node:util';
import { faultPoint } from '../../fault.js';
import type { DeleteOptions, DeleteReport } from './delete-report.js';
import { inodeKey } from './inode-key.js';
import { Threads, type Failure, type OpResults } from './delete-threads.js';
import { TokenBucket } from './token-bucket.js';
import { Dispatcher } from './delete-dispatch.js';
import { BATCH, DEFAULT_THREADS, SUBTREE_DEPTH, keepUp, newDir, type Dir, type Job, type WalkStart } from './delete-dirs.js';
import { Findings } from './delete-findings.js';
import { Subtrees } from './delete-subtrees.js';

const close = promisify(closeFd);

export class Walk {
  private readonly calls: Dispatcher;
  private readonly batch: number;
  private readonly countBytes: boolean;
  /** Directories with work to start: a stack, so the walk goes depth-first. */
  private readonly ready: Dir[] = [];
  private readonly subtrees: Subtrees;
  private finished = false;
  private readonly found: Findings;
  /** Directories whose descriptor (or listing) is open, except the base, which the caller closes. */
  private readonly open = new Set<Dir>();
  private readonly base: Dir;

  constructor(
    private readonly report: DeleteReport,
    private readonly start: WalkStart,
    private readonly opts: DeleteOptions,
  ) {
    this.base = newDir(new Uint8Array(), null, start.parentFd, start.parentId);
    this.found = new Findings(report, this.base, start.parentPath);
    const threads = Math.max(1, Math.floor(opts.concurrency ?? DEFAULT_THREADS));
    const bucket = opts.rateLimit ? new TokenBucket(opts.rateLimit, opts.clock) : null;
    this.calls = new Dispatcher(new Threads(threads), threads * 2, bucket, opts.signal);
    this.batch = Math.min(BATCH, bucket?.capacity ?? BATCH);
    this.countBytes = opts.countBytes ?? true;
    this.subtrees = new Subtrees(this.calls, this.found, start, { max: this.batch, countBytes: this.countBytes }, (parent, kept) => {
      parent.using--;
      if (kept) keepUp(parent);
      this.childDone(parent);
    });
  }

  async run(): Promise<void> {
    try {
      if (this.skipNames(this.base).includes(Buffer.from(this.start.topName).toString('latin1'))) {
        this.found.skipMount(this.base, this.start.topName);
        return;
      }
      this.calls.urgent.push(this.openJob(this.base, this.start.topName));
      await this.calls.run(
        () => this.nextJob(),
        () => this.finished,
        (err) => {
          this.found.fail(this.base, this.start.topName, err);
        },
      );
      if (!this.finished && !this.opts.signal?.aborted)
        this.found.fail(this.base, this.start.topName, new Error('internal error: the walk stalled; the rest is left for the next run'));
    } finally {
      // Only after an abort (or a bug) can subtrees, listings and descriptors still be open here.
      await this.calls.closeAll(this.subtrees.inThread, this.open, this.release.bind(this));
    }
    if (this.found.failed > this.report.failures.length) {
      this.opts.logger?.warn(
        { path: this.found.logical(this.base, this.start.topName), failures: this.found.failed, kept: this.report.failures.length },
        'many deletions failed; only the first are reported',
      );
    }
  }

  /** The next call to start: depth-first, from the directory on top of the ready stack. */
  private nextJob(): Job | null {
    for (let dir = this.ready.at(-1); dir !== undefined; dir = this.ready.at(-1)) {
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
        this.calls.bucket?.refund(max - r.files);
        this.report.files += r.removed;
        this.report.bytes += r.bytes;
        for (const f of r.fails) this.found.failIn(dir, f.name, f);
        for (const name of r.skipped) this.found.skipMount(dir, name);
        if (r.listFail) {
          this.found.fail(dir, undefined, r.listFail);
          keepUp(dir);
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
        for (const f of fails) this.found.failIn(dir, f.name, f);
        this.settle(dir);
      },
    };
  }

  private openJob(parent: Dir, name: Uint8Array): Job {
    parent.using++;
    parent.children++;
    if (parent.depth + 1 >= SUBTREE_DEPTH) return this.subtrees.job(parent, name);
    const isTop = parent === this.base;
    return {
      op: 'open',
      args: { dirFd: parent.fd, name, fs: this.start.fs, expect: isTop ? this.start.expectTop : undefined },
      cost: 0,
      done: (value, slot) => {
        this.opened(parent, name, value as OpResults['open'], slot);
      },
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
        if (isTop && this.start.keepTop) this.found.fail(parent, name, { code, message: 'is not a directory (a symlink is never followed); left alone' });
        else parent.links.push(name);
      } else if (code !== 'ENOENT') {
        this.found.fail(parent, name, r.fail);
        keepUp(parent);
      }
      this.settle(parent);
      return;
    }
    const dir = newDir(name, parent, r.fd, r);
    dir.slot = slot;
    this.open.add(dir);
    if (r.stream === undefined) {
      // On another filesystem (a mount point), replaced since it was checked, or unreadable: left alone, with everything below it.
      if (r.replaced) this.found.fail(dir, undefined, { code: 'EMOVED', message: 'was replaced by another directory since it was checked; left alone' });
      else if (r.listFail) this.found.fail(dir, undefined, r.listFail);
      else this.found.skipMount(parent, name);
      this.release(dir);
      parent.children--;
      keepUp(parent);
      this.settle(parent);
      return;
    }
    dir.stream = r.stream;
    this.settle(dir);
    this.settle(parent);
  }

  /** Mount points among `dir`'s entries, as latin1 strings (the form the thread compares names in). */
  private skipNames(dir: Dir): string[] {
    return this.start.mounts.get(inodeKey(dir)) ?? [];
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
    const parent = dir.parent;
    if (parent === null) throw new Error('internal error: the walk tried to remove its base directory');
    if (dir.kept || (parent === this.base && this.start.keepTop)) {
      this.release(dir);
      this.childDone(parent);
      return;
    }
    parent.using++;
    if (parent.fd !== null) {
      this.calls.urgent.push({
        op: 'rmdir',
        args: { dirFd: parent.fd, name: dir.name },
        cost: 1,
        done: (r) => this.removed(parent, dir, (r as OpResults['rmdir']).fail),
      });
      return;
    }
    // The parent was closed while its subdirectories were at work: reopen it from here (checking it is the same one), and remove `dir` from it.
    this.calls.urgent.push({
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
        if (up.fail.code !== 'ENOENT') this.found.fail(parent, undefined, up.fail);
        parent.using--;
        this.release(dir);
        keepUp(parent);
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
      this.found.fail(dir, undefined, fail);
      keepUp(parent);
    }
    this.childDone(parent);
  }

  private childDone(parent: Dir): void {
    parent.children--;
    this.settle(parent);
  }

  private finishWalk(): void {
    this.finished = true;
    this.calls.notify();
  }

  private release(dir: Dir): void {
    if (dir.fd === null || dir === this.base) return;
    void close(dir.fd).catch(() => {});
    dir.fd = null;
    if (dir.stream === null) this.open.delete(dir);
  }
}
