/**
 * Deleting a tree, safely and fast (used on the trash only).
 *
 * Safety (rule 5 of safety.ts). Every call acts on ONE name inside a directory
 * we hold open — `/proc/self/fd/<fd>/<name>`, Node's stand-in for the
 * openat/unlinkat that `rm -rf` uses — never on a long path resolved anew:
 * - A directory is entered with O_DIRECTORY|O_NOFOLLOW relative to its open
 *   parent, so a symlink is never followed (it fails to open, and is then
 *   unlinked as a link). A task still running inside a purged cache cannot
 *   win a race by swapping a directory for a symlink between our check and
 *   our unlink: there is no second lookup for it to redirect.
 * - Climbing back up to remove an emptied directory opens `<fd>/..` and checks
 *   it is the very directory (device, inode) we came down through.
 * - A directory on another filesystem than the top's parent — another st_dev,
 *   or another mount (mnt_id in /proc/self/fdinfo; a bind mount from the same
 *   filesystem has the same st_dev) — is never listed: it is left alone with
 *   everything below it and reported in `skippedMounts`. Entries listed in
 *   /proc/self/mountinfo as mount points (a file can be bind-mounted too) are
 *   skipped the same way; that table follows renames, so a mount moved into
 *   the trash shows its trash path (found by test/adversarial/names.test.ts).
 * - A failure on one entry is recorded with its path and the walk goes on; the
 *   directories above it stay. ENOENT (someone else removed it) is no failure.
 *
 * Speed (issue 7). Each system call through the libuv pool costs a thread
 * hand-off and a promise, which made deletion CPU-bound at 2–3× the CPU time
 * of `rm -rf`. Here a few worker threads make plain synchronous calls, a batch
 * of names per message, and the main thread only schedules: different
 * directories are worked on in parallel (calls in one directory contend for
 * its lock), which hides disk latency. Directories are taken depth-first, so
 * memory holds the directories being worked on and their ancestors, never the
 * whole tree; nothing recurses on the JS stack. Open descriptors: those being
 * worked on, plus one for each ancestor that still has unvisited
 * subdirectories.
 *
 * Requires Linux /proc (the agent's platform); without it deletion refuses to
 * start rather than fall back to path-based calls that can follow a swapped
 * symlink.
 */
import { Worker } from 'node:worker_threads';
import { close as closeFd, constants, existsSync, fstat } from 'node:fs';
import { open, readFile, realpath } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { AgentError, errnoCode, errorMessage } from '../errors.js';
import type { Logger } from '../log.js';
import { faultPoint } from '../fault.js';
import { isInside, parseMountinfo } from './proc.js';

export interface DeleteOptions {
  /** Worker threads making filesystem calls (default 4). */
  concurrency?: number;
  /** Files (and directories) removed per second; 0 or absent = unlimited. */
  rateLimit?: number;
  signal?: AbortSignal;
  logger?: Logger;
  /** lstat each file to count the bytes freed (one extra call per file). Default true. */
  countBytes?: boolean;
  /** Time source for the rate limit; tests pass a virtual one. */
  clock?: Clock;
}

export interface DeleteReport {
  files: number;
  dirs: number;
  /** Disk space of the files removed (allocated blocks; a file with other hard links frees none), when counted. */
  bytes: number;
  failures: { path: string; error: string }[];
  skippedMounts: string[];
}

export interface Clock {
  now(): number;
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
}

/** Deletion cannot start at all (no /proc). */
export class DeleteUnavailableError extends AgentError {
  readonly code = 'PCA_DELETE_UNAVAILABLE';
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

/** Delete `top` and everything below it on its parent's filesystem. A symlink or file at `top` is unlinked itself. */
export function deleteTree(top: string, opts: DeleteOptions = {}): Promise<DeleteReport> {
  return walkFrom(top, false, opts);
}

/** Delete everything inside `dir` (on its parent's filesystem), keeping `dir` itself. */
export function deleteContents(dir: string, opts: DeleteOptions = {}): Promise<DeleteReport> {
  return walkFrom(dir, true, opts);
}

/** At most this many failures are kept in a report; the count goes on. */
const MAX_FAILURES_KEPT = 100;
/** Names per unlink message: large enough that messaging costs nothing next to the calls. */
const BATCH = 256;
const DEFAULT_THREADS = 4;

// ---------------------------------------------------------------------------
// Rate limit

export const realClock: Clock = {
  now: () => performance.now(),
  sleep: (ms, signal) =>
    new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      signal?.addEventListener('abort', done, { once: true });
      function done(): void {
        clearTimeout(timer);
        signal?.removeEventListener('abort', done);
        resolve();
      }
    }),
};

/**
 * A token bucket: `rate` tokens a second, holding at most a tenth of a
 * second's worth, so deletion is paced smoothly instead of in one-second
 * bursts. One token is one unlink or rmdir.
 */
export class TokenBucket {
  readonly capacity: number;
  private tokens: number;
  private last: number;
  constructor(
    readonly rate: number,
    private readonly clock: Clock = realClock,
  ) {
    this.capacity = Math.max(1, Math.floor(rate / 10));
    this.tokens = this.capacity;
    this.last = clock.now();
  }

  /** Take `n` (at most `capacity`) tokens, waiting for them. False if aborted meanwhile. */
  async take(n: number, signal?: AbortSignal): Promise<boolean> {
    for (;;) {
      const now = this.clock.now();
      this.tokens = Math.min(this.capacity, this.tokens + ((now - this.last) * this.rate) / 1000);
      this.last = now;
      // Within a millionth of a token is enough: floating point may never add up to exactly n.
      if (this.tokens >= n - 1e-6) {
        this.tokens -= n;
        return true;
      }
      if (signal?.aborted) return false;
      await this.clock.sleep(((n - this.tokens) * 1000) / this.rate, signal);
      if (signal?.aborted) return false;
    }
  }
}

// ---------------------------------------------------------------------------
// Worker threads: synchronous calls, one name at a time, each inside an open
// directory. Plain JavaScript in a string, because a worker thread can't load
// a TypeScript module under the test runner; this way tests and production run
// the same code. The main thread owns every decision; these are bare calls.

const THREAD_SOURCE = String.raw`
'use strict';
const { parentPort } = require('node:worker_threads');
const fs = require('node:fs');
const { O_RDONLY, O_DIRECTORY, O_NOFOLLOW } = fs.constants;
const at = (fd, name) => '/proc/self/fd/' + fd + '/' + name;
const failure = (e) => ({ code: (e && e.code) || 'EUNKNOWN', message: String((e && e.message) || e) });
function mountId(fd) {
  try {
    const m = /^mnt_id:\s*(\d+)/m.exec(fs.readFileSync('/proc/self/fdinfo/' + fd, 'latin1'));
    return m ? m[1] : null;
  } catch { return null; }
}
function identity(fd) {
  const st = fs.fstatSync(fd, { bigint: true });
  return { dev: String(st.dev), ino: String(st.ino), mnt: mountId(fd) };
}
const ops = {
  // Open directory 'name' inside 'dirFd' (never through a symlink) and list it, unless it is on another filesystem.
  open({ dirFd, name, fs: want }) {
    let fd;
    try { fd = fs.openSync(at(dirFd, name), O_RDONLY | O_DIRECTORY | O_NOFOLLOW); } catch (e) { return { fail: failure(e) }; }
    const r = { fd, ...identity(fd) };
    if (r.dev !== want.dev || r.mnt !== want.mnt) return r;
    try {
      r.files = []; r.dirs = [];
      for (const e of fs.readdirSync('/proc/self/fd/' + fd, { withFileTypes: true })) (e.isDirectory() ? r.dirs : r.files).push(e.name);
    } catch (e) { r.listFail = failure(e); }
    return r;
  },
  unlink({ dirFd, names, countBytes }) {
    let removed = 0, bytes = 0;
    const fails = [];
    for (const name of names) {
      const p = at(dirFd, name);
      try {
        const st = countBytes ? fs.lstatSync(p, { throwIfNoEntry: false }) : null;
        fs.unlinkSync(p);
        removed++;
        if (st && st.isFile() && st.nlink === 1) bytes += st.blocks * 512;
      } catch (e) { fails.push({ name, ...failure(e) }); }
    }
    return { removed, bytes, fails };
  },
  rmdir({ dirFd, name }) {
    try { fs.rmdirSync(at(dirFd, name)); return {}; } catch (e) { return { fail: failure(e) }; }
  },
  // Open the parent of directory 'fd', check it is the one we came down through, and remove 'name' (that directory) from it.
  rmdirUp({ fd, name, dev, ino }) {
    let pfd;
    try { pfd = fs.openSync(at(fd, '..'), O_RDONLY | O_DIRECTORY); } catch (e) { return { fail: failure(e) }; }
    const id = identity(pfd);
    if (id.dev !== dev || id.ino !== ino) {
      fs.closeSync(pfd);
      return { fail: { code: 'EMOVED', message: 'the directory was moved away while it was being deleted' } };
    }
    try { fs.rmdirSync(at(pfd, name)); return { fd: pfd }; } catch (e) { return { fd: pfd, rmdirFail: failure(e) }; }
  },
};
parentPort.on('message', ({ id, op, args }) => {
  try { parentPort.postMessage({ id, value: ops[op](args) }); }
  catch (e) { parentPort.postMessage({ id, error: failure(e) }); }
});
`;

interface Failure {
  code: string;
  message: string;
}
interface FsId {
  dev: string;
  ino: string;
  mnt: string | null;
}
interface OpenResult extends FsId {
  fd: number;
  files?: string[];
  dirs?: string[];
  listFail?: Failure;
}
interface OpResults {
  open: { fail: Failure } | OpenResult;
  unlink: { removed: number; bytes: number; fails: (Failure & { name: string })[] };
  rmdir: { fail?: Failure };
  rmdirUp: { fail: Failure } | { fd: number; rmdirFail?: Failure };
}
type Op = keyof OpResults;

/** Worker threads, started as work appears (a small tree never starts more than one). */
class Threads {
  private readonly slots: { worker: Worker; load: number }[] = [];
  private readonly calls = new Map<number, { resolve(v: unknown): void; reject(e: Error): void; slot: { load: number } }>();
  private nextId = 1;
  constructor(private readonly max: number) {}

  call<K extends Op>(op: K, args: object): Promise<OpResults[K]> {
    let slot = this.slots.reduce<(typeof this.slots)[number] | undefined>((a, b) => (a && a.load <= b.load ? a : b), undefined);
    if (!slot || (slot.load > 0 && this.slots.length < this.max)) slot = this.spawn();
    const id = this.nextId++;
    slot.load++;
    const target = slot;
    return new Promise((resolve, reject) => {
      this.calls.set(id, { resolve: resolve as (v: unknown) => void, reject, slot: target });
      target.worker.postMessage({ id, op, args });
    });
  }

  async close(): Promise<void> {
    await Promise.all(this.slots.map((s) => s.worker.terminate()));
  }

  private spawn(): (typeof this.slots)[number] {
    // The threads' descriptors are closed by the main thread; without trackUnmanagedFds: false, a thread's
    // exit would close every descriptor number it ever opened — by then perhaps reused for something else.
    const slot = { worker: new Worker(THREAD_SOURCE, { eval: true, trackUnmanagedFds: false }), load: 0 };
    slot.worker.on('message', (m: { id: number; value?: unknown; error?: Failure }) => {
      const call = this.calls.get(m.id);
      if (!call) return;
      this.calls.delete(m.id);
      call.slot.load--;
      if (m.error) call.reject(Object.assign(new Error(m.error.message), { code: m.error.code }));
      else call.resolve(m.value);
    });
    const die = (err: Error): void => {
      for (const [id, call] of this.calls) {
        if (call.slot !== slot) continue;
        this.calls.delete(id);
        call.reject(err);
      }
    };
    slot.worker.on('error', die);
    slot.worker.on('exit', (code) => die(new Error(`a deletion thread exited (code ${code})`)));
    this.slots.push(slot);
    return slot;
  }
}

// ---------------------------------------------------------------------------
// The walk

/** A directory being deleted. */
interface Dir {
  name: string;
  parent: Dir | null;
  /** Open descriptor, or null while only its subdirectories are at work (they climb back to reopen it). */
  fd: number | null;
  dev: string;
  ino: string;
  files: string[];
  subdirs: string[];
  /** Calls in flight that use `fd`: it is never closed under them. */
  using: number;
  /** Subdirectories opened (or being opened) and not finished. */
  children: number;
  /** Something below stays (a mount, a failure): never removed. */
  kept: boolean;
  queued: boolean;
  finished: boolean;
  /** Its real path (only computed when mounts lie below the top). */
  real?: string;
}

function newDir(name: string, parent: Dir | null, fd: number, id: FsId): Dir {
  return { name, parent, fd, dev: id.dev, ino: id.ino, files: [], subdirs: [], using: 0, children: 0, kept: false, queued: false, finished: false };
}

interface Job {
  op: Op;
  args: object;
  /** Rate-limit tokens the call spends. */
  cost: number;
  done(result: unknown): Promise<void> | void;
}

/**
 * `EPERM: operation not permitted (unlink)`: the code, the reason and the call,
 * without the /proc/self/fd/N path Node puts in its messages (the report
 * names the real path).
 */
function describe(err: unknown): string {
  const code = errnoCode(err) ?? 'error';
  const message = typeof err === 'object' && err !== null && 'message' in err ? String(err.message) : errorMessage(err);
  const m = /^[A-Z0-9_]+: (.*?), (\w+) '/.exec(message);
  return m ? `${code}: ${m[1]} (${m[2]})` : `${code}: ${message.replace(new RegExp(`^${code}: `), '')}`;
}

function requireProc(): void {
  if (!existsSync('/proc/self/fd')) {
    throw new DeleteUnavailableError('cannot delete safely without /proc (Linux procfs): mount /proc; the trash is kept until then');
  }
}

const fstatBig = promisify((fd: number, cb: (err: NodeJS.ErrnoException | null, st: import('node:fs').BigIntStats) => void) => fstat(fd, { bigint: true }, cb));
const close = promisify(closeFd);

async function fdIdentity(fd: number): Promise<FsId> {
  const st = await fstatBig(fd);
  let mnt: string | null = null;
  try {
    mnt = /^mnt_id:\s*(\d+)/m.exec(await readFile(`/proc/self/fdinfo/${fd}`, 'latin1'))?.[1] ?? null;
  } catch {
    // No fdinfo: the st_dev comparison is all there is.
  }
  return { dev: String(st.dev), ino: String(st.ino), mnt };
}

/** Mount points at or below `top` in this process's mount table. */
async function mountPointsAt(top: string): Promise<Set<string>> {
  try {
    const table = parseMountinfo(await readFile('/proc/self/mountinfo', 'utf8'));
    return new Set(table.map((m) => m.mountPoint).filter((p) => isInside(p, top)));
  } catch {
    return new Set();
  }
}

async function walkFrom(target: string, keepTop: boolean, opts: DeleteOptions): Promise<DeleteReport> {
  requireProc();
  const report = emptyReport();
  const top = path.resolve(target);
  const parentPath = path.dirname(top);
  const name = path.basename(top);
  if (parentPath === top) throw new DeleteUnavailableError(`refusing to delete ${top}: it is a filesystem root`);
  // The path up to the last component is the caller's (a root or trash resolved at start); the last component is never followed.
  let parent: { fd: number; close(): Promise<void> };
  try {
    parent = await open(parentPath, constants.O_RDONLY | constants.O_DIRECTORY);
  } catch (err) {
    if (errnoCode(err) !== 'ENOENT') report.failures.push({ path: top, error: `cannot open its parent: ${errnoCode(err) ?? ''} ${errorMessage(err)}`.trim() });
    return report;
  }
  try {
    const realTop = path.join(await realpath(parentPath), name);
    const mounts = await mountPointsAt(realTop);
    const fs = await fdIdentity(parent.fd);
    const base = newDir('', null, parent.fd, fs);
    base.real = path.dirname(realTop);
    await new Walk(report, { base, fs, parentPath, topName: name, keepTop, realTop, mounts }, opts).run();
  } catch (err) {
    report.failures.push({ path: top, error: describe(err) });
  } finally {
    await parent.close();
  }
  return report;
}

interface WalkStart {
  /** The top's parent, held open for the whole walk. */
  base: Dir;
  /** The filesystem everything must be on: the top's parent's. */
  fs: { dev: string; mnt: string | null };
  parentPath: string;
  topName: string;
  /** deleteContents: the top itself stays. */
  keepTop: boolean;
  realTop: string;
  /** Mount points in the mount table at or below the top (real paths). */
  mounts: ReadonlySet<string>;
}

class Walk {
  private readonly threads: Threads;
  private readonly maxInFlight: number;
  private readonly bucket: TokenBucket | null;
  private readonly signal: AbortSignal | undefined;
  private readonly countBytes: boolean;
  /** Directories with files or subdirectories left to start: a stack, so the walk goes depth-first. */
  private readonly ready: Dir[] = [];
  /** Calls that finish a directory; they go first, to release descriptors and memory. */
  private readonly urgent: Job[] = [];
  private inFlight = 0;
  private wake: (() => void) | null = null;
  private finished = false;
  private failed = 0;
  /** Directories whose descriptor is open (except the base, which the caller closes). */
  private readonly open = new Set<Dir>();
  private readonly base: Dir;
  private readonly fs: WalkStart['fs'];
  private readonly parentPath: string;
  private readonly topName: string;
  private readonly keepTop: boolean;
  private readonly realTop: string;
  private readonly mounts: ReadonlySet<string>;

  constructor(
    private readonly report: DeleteReport,
    start: WalkStart,
    private readonly opts: DeleteOptions,
  ) {
    this.base = start.base;
    this.fs = start.fs;
    this.parentPath = start.parentPath;
    this.topName = start.topName;
    this.keepTop = start.keepTop;
    this.realTop = start.realTop;
    this.mounts = start.mounts;
    const threads = Math.max(1, Math.floor(opts.concurrency ?? DEFAULT_THREADS));
    this.threads = new Threads(threads);
    this.maxInFlight = threads * 2;
    this.bucket = opts.rateLimit ? new TokenBucket(opts.rateLimit, opts.clock) : null;
    this.signal = opts.signal;
    this.countBytes = opts.countBytes ?? true;
  }

  async run(): Promise<void> {
    try {
      if (this.mounts.has(this.realTop)) {
        this.report.skippedMounts.push(this.logical(this.base, this.topName));
        return;
      }
      this.openChild(this.base, this.topName);
      await this.dispatch();
      if (!this.finished && !this.signal?.aborted) this.fail(this.logical(this.base, this.topName), new Error('internal error: the walk stalled; the rest is left for the next run'));
    } finally {
      await this.threads.close();
      // Only after an abort (or a bug) can descriptors still be open here.
      for (const dir of this.open) this.release(dir);
    }
    if (this.failed > this.report.failures.length) {
      this.opts.logger?.warn({ path: this.logical(this.base, this.topName), failures: this.failed, kept: this.report.failures.length }, 'many deletions failed; only the first are reported');
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
      if (this.bucket && !(await this.bucket.take(job.cost, this.signal))) break;
      this.inFlight++;
      this.threads
        .call(job.op, job.args)
        .then((result) => job.done(result))
        .catch((err: unknown) => {
          // A thread died (out of memory) or a bug: stop; what is left stays in the trash for the next run.
          this.fail(this.logical(this.base, this.topName), err);
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
    const urgent = this.urgent.shift();
    if (urgent) return urgent;
    while (this.ready.length > 0) {
      const dir = this.ready[this.ready.length - 1]!;
      if (dir.files.length > 0) return this.unlinkJob(dir);
      const sub = dir.subdirs.pop();
      if (sub !== undefined) {
        if (dir.subdirs.length === 0) this.unqueue(dir);
        return this.openJob(dir, sub);
      }
      this.unqueue(dir);
    }
    return null;
  }

  private unqueue(dir: Dir): void {
    this.ready.pop();
    dir.queued = false;
  }

  private unlinkJob(dir: Dir): Job {
    const n = Math.min(BATCH, this.bucket?.capacity ?? BATCH);
    const names = dir.files.length <= n ? dir.files : dir.files.splice(dir.files.length - n, n);
    if (names === dir.files) dir.files = [];
    dir.using++;
    return {
      op: 'unlink',
      args: { dirFd: dir.fd, names, countBytes: this.countBytes },
      cost: names.length,
      done: (r) => {
        const { removed, bytes, fails } = r as OpResults['unlink'];
        dir.using--;
        this.report.files += removed;
        this.report.bytes += bytes;
        for (const f of fails) {
          if (f.code === 'ENOENT') continue;
          this.fail(this.logical(dir, f.name), f);
          this.keep(dir);
        }
        this.settle(dir);
      },
    };
  }

  private openChild(parent: Dir, name: string): void {
    this.urgent.push(this.openJob(parent, name));
  }

  private openJob(parent: Dir, name: string): Job {
    parent.using++;
    parent.children++;
    return {
      op: 'open',
      args: { dirFd: parent.fd, name, fs: this.fs },
      cost: 0,
      done: (r) => this.opened(parent, name, r as OpResults['open']),
    };
  }

  private opened(parent: Dir, name: string, r: OpResults['open']): void {
    parent.using--;
    if ('fail' in r) {
      parent.children--;
      const code = r.fail.code;
      const isTop = parent === this.base;
      if (code === 'ELOOP' || code === 'ENOTDIR') {
        // A symlink or a file where a directory was: removed as what it is, never followed.
        if (isTop && this.keepTop) this.fail(this.logical(parent, name), { code, message: 'is not a directory (a symlink is never followed); left alone' });
        else this.queueFile(parent, name);
      } else if (code !== 'ENOENT') {
        this.fail(this.logical(parent, name), r.fail);
        this.keep(parent);
      }
      this.settle(parent);
      return;
    }
    const dir = newDir(name, parent, r.fd, r);
    this.open.add(dir);
    if (r.files === undefined || r.dirs === undefined || r.listFail) {
      // On another filesystem (a mount point), or unreadable: left alone, with everything below it.
      if (r.listFail) this.fail(this.logical(dir), r.listFail);
      else this.report.skippedMounts.push(this.logical(dir));
      this.release(dir);
      parent.children--;
      this.keep(parent);
      this.settle(parent);
      return;
    }
    dir.files = this.withoutMounts(dir, r.files);
    dir.subdirs = this.withoutMounts(dir, r.dirs);
    this.settle(dir);
    this.settle(parent);
  }

  private queueFile(dir: Dir, name: string): void {
    dir.files.push(name);
  }

  /** Entries the mount table lists as mount points are skipped (a bind-mounted file or same-device directory). */
  private withoutMounts(dir: Dir, names: string[]): string[] {
    if (this.mounts.size === 0) return names;
    const real = this.realPathOf(dir);
    return names.filter((n) => {
      if (!this.mounts.has(path.join(real, n))) return true;
      this.report.skippedMounts.push(this.logical(dir, n));
      this.keep(dir);
      return false;
    });
  }

  /**
   * Look at a directory after something changed: queue it if it has work to
   * start; finish it once its own calls and its subdirectories are done; else
   * close it while only its subdirectories are at work.
   */
  private settle(dir: Dir): void {
    if (dir.finished) return;
    if (dir.files.length > 0 || dir.subdirs.length > 0) {
      if (!dir.queued) {
        dir.queued = true;
        this.ready.push(dir);
      }
      return;
    }
    if (dir.using > 0) return;
    if (dir === this.base) {
      if (dir.children === 0) this.finishWalk();
    } else if (dir.children === 0) this.finish(dir);
    else this.release(dir);
  }

  /** Everything below `dir` is gone (or kept): remove it, through its parent. */
  private finish(dir: Dir): void {
    dir.finished = true;
    const parent = dir.parent!;
    if (dir.kept || (parent === this.base && this.keepTop)) {
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
        if (up.fail.code !== 'ENOENT') this.fail(this.logical(parent), up.fail);
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
      this.fail(this.logical(dir), fail);
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
    this.open.delete(dir);
  }

  private keep(dir: Dir): void {
    for (let d: Dir | null = dir; d && !d.kept; d = d.parent) d.kept = true;
  }

  private fail(p: string, err: unknown): void {
    this.failed++;
    if (this.report.failures.length < MAX_FAILURES_KEPT) this.report.failures.push({ path: p, error: describe(err) });
  }

  /** The path a directory (or an entry in it) had when we reached it, for reports. */
  private logical(dir: Dir, entry?: string): string {
    const parts: string[] = entry === undefined ? [] : [entry];
    let d: Dir | null = dir;
    while (d && d !== this.base) {
      parts.push(d.name);
      d = d.parent;
    }
    return path.join(this.parentPath, ...parts.reverse());
  }

  private realPathOf(dir: Dir): string {
    dir.real ??= path.join(this.realPathOf(dir.parent!), dir.name);
    return dir.real;
  }
}
