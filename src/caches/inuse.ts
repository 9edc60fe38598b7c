/**
 * Is a cache in use? The imperative shell around src/caches/proc.ts: it reads
 * /proc once per call, for all the caches asked about, and says who holds each.
 *
 * How a holder is found (issue 3, "Detecting use"):
 * - Every process's cwd, root, open files (fd/*) and mapped files (maps) are
 *   read with readlink and text reads only — no link is ever followed into a
 *   cache — and tested for exact containment in each cache.
 * - A lock is placed through the descriptor that holds it: for each open file
 *   inside a cache, /proc/<pid>/fdinfo/<fd> lists the locks owned through that
 *   open file. This names the real holder even when /proc/locks records a pid
 *   that has exited (flock(1) locking on our behalf, a fork that inherited the
 *   descriptor). A lock on the cache directory itself is also matched directly
 *   by device:inode in /proc/locks, so it counts even if no holder is visible.
 * - A lock whose holder we cannot see at all (another pid namespace, a process
 *   we may not inspect, a file kept only by a mapping) could still be inside a
 *   cache. Reporting every such lock on the cache's filesystem would defer
 *   purges forever because of unrelated locks (a database on the same disk);
 *   so for a cache that is otherwise free, we first discard locked inodes that
 *   some visible descriptor outside the caches holds, and only if some remain
 *   do we walk the cache (lstat, never following links or crossing devices)
 *   looking for them. The walk costs about what the purge's own delete costs,
 *   and with a fully visible /proc (the recommended set-up) it never happens.
 * - A process in another mount namespace (a container with the cache
 *   bind-mounted elsewhere) sees other paths: those are translated through its
 *   mountinfo to device + path within the filesystem and compared that way.
 *
 * Known limits: threads that unshared their cwd or fd table are seen through
 * their thread-group leader only; a file hard-linked from outside a cache is
 * judged by the path its holder opened; on btrfs, a subvolume's st_dev differs
 * from the device /proc/locks prints, so there only descriptor-placed locks
 * count (tryLockForRename still catches flocks on the cache directory).
 */
import { lstat, open, opendir, readFile, readdir, realpath, stat, type FileHandle } from 'node:fs/promises';
import { constants, readFileSync, readdirSync, readlinkSync, type BigIntStats } from 'node:fs';
import path from 'node:path';
import { UnsafePathError, errnoCode, errorMessage } from '../errors.js';
import { tryFlock, tryFlockMany, FlockUnavailableError } from '../flock.js';
import type { Logger } from '../log.js';
import {
  USE_LOCK_TYPES, devOf, formatCmdline, fsLocation, isInside, lockKey, parseFdinfoLocks, parseMaps,
  parseMountinfo, parseProcLocks, pathForms, type Mount, type ProcLock,
} from './proc.js';

export { parseProcLocks, parseMaps } from './proc.js';

export interface Holder {
  kind: 'lock' | 'process' | 'lease';
  pid?: number;
  command?: string;
  owner?: string;
  /** Human text: "pid 1234 (cargo build) holds a shared flock on /caches/x". */
  detail: string;
}

/** Each source can be switched off in the configuration; leases live in src/leases.ts. */
export interface UsageSources {
  locks: boolean;
  processes: boolean;
}

export interface UsageProbe {
  /** Holders for each given cache path (absolute directory paths); checks ONLY these caches. */
  holdersOf(cachePaths: string[]): Promise<Map<string, Holder[]>>;
}

export interface ProbeOptions {
  sources: UsageSources;
  logger?: Logger;
  procRoot?: string;
  /** Our own process, ignored for process checks but not for locks. */
  selfPid?: number;
}

/** Processes read at once: enough to hide syscall latency, few enough not to flood libuv's pool. */
const SCAN_CONCURRENCY = 16;

interface Target {
  path: string;
  /** The path as given (resolved) and its realpath: /proc shows the latter. */
  forms: string[];
  stDev: bigint;
  dev: string;
  key: string;
  /** Device and path within the filesystem, for matching other mount namespaces. */
  location?: { dev: string; fsPath: string } | undefined;
  found: Found[];
}

/** A holder before its command line is known. */
interface Found {
  kind: 'lock' | 'process';
  pid?: number;
  /** What follows "pid N (cmd)" in the detail, or the whole detail when pid is unset. */
  text: string;
}

type View = (p: string) => Target[];

export function createUsageProbe(opts: ProbeOptions): UsageProbe {
  const procRoot = opts.procRoot ?? '/proc';
  const selfPid = opts.selfPid ?? process.pid;
  const { sources, logger } = opts;
  const reported = new Set<number>();

  /** Processes we cannot inspect are normal (races, permissions): say so once, quietly. */
  function uninspectable(pid: number, err: unknown): void {
    if (reported.has(pid)) return;
    if (reported.size > 10_000) reported.clear();
    reported.add(pid);
    logger?.debug({ pid, code: errnoCode(err), reason: errorMessage(err) }, 'cannot inspect process for cache use');
  }

  return {
    async holdersOf(cachePaths) {
      const result = new Map<string, Holder[]>(cachePaths.map((p) => [p, []]));
      const targets = (await Promise.all(cachePaths.map(resolveTarget))).filter((t) => t !== undefined);
      if (targets.length === 0 || (!sources.locks && !sources.processes)) return result;
      const scan = new Scan(procRoot, selfPid, sources, targets, uninspectable);
      const started = performance.now();
      await scan.run();
      logger?.debug({ caches: targets.length, ...scan.stats, ms: Math.round(performance.now() - started) }, 'scanned /proc for cache use');
      for (const t of targets) result.set(t.path, await scan.finish(t));
      return result;
    },
  };
}

async function resolveTarget(given: string): Promise<Target | undefined> {
  const abs = path.resolve(given);
  let st: BigIntStats;
  let real: string;
  try {
    st = await lstat(abs, { bigint: true });
    if (!st.isDirectory()) return undefined;
    real = await realpath(abs);
  } catch {
    return undefined; // gone: nothing can be using it
  }
  const dev = devOf(st.dev);
  return { path: given, forms: [...new Set([abs, real])], stDev: st.dev, dev, key: lockKey(dev, st.ino), found: [] };
}

/** One pass over /proc for a set of caches. */
class Scan {
  private locks: ProcLock[] = [];
  /** Lock keys that some descriptor we could read is known to own. */
  private attributed = new Set<string>();
  /** Descriptors on files outside every cache, to stat if a locked inode is unplaced. */
  private outsideFds: string[] = [];
  private selfNs: string | undefined;
  private views = new Map<string, View>();
  private commands = new Map<number, Promise<string | undefined>>();
  /** For the debug log: what the pass cost. */
  readonly stats = { processes: 0, unplacedLocks: 0, statted: 0, walked: 0 };

  constructor(
    private procRoot: string,
    private selfPid: number,
    private sources: UsageSources,
    private targets: Target[],
    private uninspectable: (pid: number, err: unknown) => void,
  ) {}

  async run(): Promise<void> {
    if (this.sources.locks) {
      const text = await readFile(`${this.procRoot}/locks`, 'utf8').catch(() => '');
      this.locks = parseProcLocks(text).filter((l) => USE_LOCK_TYPES.has(l.type));
    }
    this.selfNs = readlinkOrUndefined(`${this.procRoot}/self/ns/mnt`);
    const pids = (await readdir(this.procRoot)).filter((n) => /^\d+$/.test(n)).map(Number);
    this.stats.processes = pids.length;
    await forEachLimit(pids, SCAN_CONCURRENCY, (pid) => this.scanProcess(pid));
    if (this.sources.locks) {
      this.lockedCacheDirs();
      await this.unplacedLocks();
    }
  }

  /** The holders of one cache, with command lines filled in. */
  async finish(t: Target): Promise<Holder[]> {
    const seen = new Set<string>();
    const holders: Holder[] = [];
    for (const f of t.found) {
      const id = `${f.kind}:${f.pid ?? ''}:${f.kind === 'process' ? '' : f.text}`;
      if (seen.has(id)) continue; // one entry per process, however many files it has open
      seen.add(id);
      if (f.pid === undefined) {
        holders.push({ kind: f.kind, detail: f.text });
        continue;
      }
      const command = await this.commandOf(f.pid);
      const who = command ? `pid ${f.pid} (${command})` : `pid ${f.pid}`;
      holders.push({ kind: f.kind, pid: f.pid, ...(command ? { command } : {}), detail: `${who} ${f.text}` });
    }
    return holders;
  }

  /**
   * Links and fdinfo are read synchronously: procfs answers them from kernel
   * memory without taking the target's memory lock, and the async round trip
   * through libuv's pool made the scan about 4x slower. maps (and cmdline,
   * later) are read asynchronously: they take the target's mmap lock and can
   * stall behind a process stuck in I/O, which must not freeze the agent.
   */
  private async scanProcess(pid: number): Promise<void> {
    const dir = `${this.procRoot}/${pid}`;
    const watchProcess = this.sources.processes && pid !== this.selfPid;
    try {
      const view = this.viewOf(pid);
      if (watchProcess) {
        for (const [link, verb] of [['cwd', 'working'], ['root', 'root']] as const) {
          const p = readlinkOrUndefined(`${dir}/${link}`);
          for (const t of p === undefined ? [] : view(p)) this.add(t, 'process', pid, `has its ${verb} directory in ${t.path}`);
        }
      }
      for (const fd of readdirSync(`${dir}/fd`)) {
        const p = readlinkOrUndefined(`${dir}/fd/${fd}`);
        if (p === undefined) continue;
        const inside = view(p);
        if (inside.length === 0) {
          if (this.sources.locks && p.startsWith('/')) this.outsideFds.push(`${dir}/fd/${fd}`);
          continue;
        }
        for (const t of inside) if (watchProcess) this.add(t, 'process', pid, `has ${p} open`);
        if (this.sources.locks && this.locks.length > 0) this.fdLocks(pid, fd, p, inside);
      }
      if (watchProcess) {
        for (const p of parseMaps(await readFile(`${dir}/maps`, 'utf8'))) {
          for (const t of view(p)) this.add(t, 'process', pid, `has ${p} mapped`);
        }
      }
    } catch (err) {
      this.uninspectable(pid, err);
    }
  }

  /** The locks owned through one descriptor on a file inside a cache. */
  private fdLocks(pid: number, fd: string, p: string, inside: Target[]): void {
    let info = '';
    try {
      info = readFileSync(`${this.procRoot}/${pid}/fdinfo/${fd}`, 'utf8');
    } catch {
      return; // closed meanwhile
    }
    for (const lock of parseFdinfoLocks(info)) {
      if (!USE_LOCK_TYPES.has(lock.type)) continue;
      this.attributed.add(lockKey(lock.dev, lock.ino));
      for (const t of inside) this.add(t, 'lock', pid, `holds ${lockWords(lock)} on ${p}`);
    }
  }

  /** Locks on a cache directory itself count even when no descriptor shows who holds them. */
  private lockedCacheDirs(): void {
    for (const t of this.targets) {
      for (const lock of this.locks) {
        if (lockKey(lock.dev, lock.ino) !== t.key || this.attributed.has(t.key)) continue;
        this.add(t, 'lock', undefined, `${lockWords(lock)} on ${t.path} is held by a process the agent cannot see${recorded(lock)}`);
      }
    }
  }

  /** See the header: place locks no visible descriptor owns, for caches otherwise free. */
  private async unplacedLocks(): Promise<void> {
    const free = this.targets.filter((t) => t.found.length === 0);
    const unplaced = new Map<string, ProcLock>();
    for (const lock of this.locks) {
      const key = lockKey(lock.dev, lock.ino);
      if (!this.attributed.has(key) && free.some((t) => t.dev === lock.dev && t.key !== key)) unplaced.set(key, lock);
    }
    if (unplaced.size === 0) return;
    this.stats.unplacedLocks = unplaced.size;
    this.stats.statted = this.outsideFds.length;
    await forEachLimit(this.outsideFds, SCAN_CONCURRENCY, async (link) => {
      const st = await stat(link, { bigint: true }).catch(() => undefined);
      if (st) unplaced.delete(lockKey(devOf(st.dev), st.ino));
    });
    for (const t of free) {
      const wanted = new Map([...unplaced].filter(([, lock]) => lock.dev === t.dev));
      if (wanted.size === 0) continue;
      const { found, entries } = await findInodes(t, wanted);
      this.stats.walked += entries;
      for (const [p, lock] of found) {
        this.add(t, 'lock', undefined, `${lockWords(lock)} on ${p} is held by a process the agent cannot see${recorded(lock)}`);
      }
    }
  }

  private add(t: Target, kind: Found['kind'], pid: number | undefined, text: string): void {
    t.found.push(pid === undefined ? { kind, text: capitalise(text) } : { kind, pid, text });
  }

  /** Each cache path form → its targets, so a path is placed by walking up its ancestors. */
  private byForm: Map<string, Target[]> | undefined;

  /**
   * The targets containing `p` (exactly, as isInside defines it): a lookup per
   * ancestor of `p`, so a scan costs O(paths × depth), not O(paths × caches).
   */
  private containing(p: string): Target[] {
    if (!this.byForm) {
      this.byForm = new Map();
      for (const t of this.targets) for (const form of new Set(t.forms)) this.byForm.set(form, [...(this.byForm.get(form) ?? []), t]);
    }
    const hits = new Set<Target>();
    for (const form of pathForms(p)) {
      if (!form.startsWith('/')) continue;
      for (let at = form; ; at = path.dirname(at)) {
        for (const t of this.byForm.get(at) ?? []) hits.add(t);
        if (at === '/') break;
      }
    }
    return [...hits];
  }

  /** How to place this process's paths: directly, or through its mount namespace. */
  private viewOf(pid: number): View {
    const direct: View = (p) => this.containing(p);
    // No namespace to compare: the reads that follow report any problem.
    const ns = readlinkOrUndefined(`${this.procRoot}/${pid}/ns/mnt`);
    if (ns === undefined || this.selfNs === undefined || ns === this.selfNs) return direct;
    let view = this.views.get(ns);
    if (!view) {
      view = this.foreignView(pid, direct);
      this.views.set(ns, view);
    }
    return view;
  }

  private foreignView(pid: number, fallback: View): View {
    let theirs: Mount[];
    try {
      theirs = parseMountinfo(readFileSync(`${this.procRoot}/${pid}/mountinfo`, 'utf8'));
      this.locateTargets();
    } catch (err) {
      this.uninspectable(pid, err);
      return fallback;
    }
    return (p) => {
      const locs = pathForms(p).map((f) => fsLocation(f, theirs)).filter((l) => l !== undefined);
      return this.targets.filter((t) => {
        const own = t.location;
        return own !== undefined && locs.some((l) => l.dev === own.dev && isInside(l.fsPath, own.fsPath));
      });
    };
  }

  private located = false;
  private locateTargets(): void {
    if (this.located) return;
    const ours = parseMountinfo(readFileSync(`${this.procRoot}/self/mountinfo`, 'utf8'));
    for (const t of this.targets) t.location = fsLocation(t.forms[t.forms.length - 1]!, ours);
    this.located = true;
  }

  private commandOf(pid: number): Promise<string | undefined> {
    let cmd = this.commands.get(pid);
    if (!cmd) {
      const dir = `${this.procRoot}/${pid}`;
      cmd = readFile(`${dir}/cmdline`, 'utf8')
        .then(async (raw) => formatCmdline(raw) || `[${(await readFile(`${dir}/comm`, 'utf8')).trim()}]`)
        .catch(() => undefined);
      this.commands.set(pid, cmd);
    }
    return cmd;
  }
}

/**
 * Walk a cache for locked inodes: lstat only, never following links or leaving
 * its filesystem; stops once every wanted inode is found. Returns path → lock.
 */
async function findInodes(t: Target, wanted: Map<string, ProcLock>): Promise<{ found: Map<string, ProcLock>; entries: number }> {
  const found = new Map<string, ProcLock>();
  const seen = new Set<string>();
  let entries = 0;
  const dirs = [t.forms[t.forms.length - 1]!];
  while (dirs.length > 0 && seen.size < wanted.size) {
    const dir = dirs.pop()!;
    try {
      for await (const entry of await opendir(dir)) {
        const p = path.join(dir, entry.name);
        entries++;
        const st = await lstat(p, { bigint: true }).catch(() => undefined);
        if (!st || st.dev !== t.stDev) continue;
        const key = lockKey(t.dev, st.ino);
        const lock = wanted.get(key);
        if (lock && !seen.has(key)) {
          seen.add(key);
          found.set(p, lock);
        }
        if (st.isDirectory()) dirs.push(p);
      }
    } catch {
      // Unreadable, or removed as we read it: a purge would meet the same, and say so.
    }
  }
  return { found, entries };
}

function readlinkOrUndefined(link: string): string | undefined {
  try {
    return readlinkSync(link);
  } catch {
    return undefined;
  }
}

function lockWords(lock: ProcLock): string {
  const mode = lock.access === 'READ' ? 'a shared' : lock.access === 'WRITE' ? 'an exclusive' : 'a';
  const kind = lock.type === 'FLOCK' ? 'flock' : lock.type === 'OFDLCK' ? 'OFD lock' : `${lock.type} lock`;
  return `${mode} ${kind}`;
}

function recorded(lock: ProcLock): string {
  return lock.pid > 0 ? ` (the kernel recorded pid ${lock.pid})` : '';
}

function capitalise(s: string): string {
  return s.charAt(0).toUpperCase() + s.slice(1);
}

async function forEachLimit<T>(items: readonly T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) await fn(items[next++]!);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

// ---------------------------------------------------------------------------
// Directory locks: the agent's rename lock, and exec's shared lock.

export interface DirLock {
  fd: number;
  /** `${st_dev}:${st_ino}` of the directory locked, as inodeKey() forms it. */
  key: string;
  release(): Promise<void>;
}

/** The identity of a directory, comparable with what a later lstat of its path gives. */
export function inodeKey(st: { dev: bigint | number; ino: bigint | number }): string {
  return `${st.dev}:${st.ino}`;
}

// O_NOFOLLOW: a cache path that became a symlink is refused, never locked through.
const DIR_FLAGS = constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW;

let warnedNoFlock = false;

/**
 * Without flock(1) (util-linux) we cannot lock from Node. We then go on
 * without the lock rather than stop purging (or stop exec) altogether: the
 * in-use checks still run, only the small race they leave is no longer closed.
 * The warning is logged once per process.
 */
function noFlock(logger: Logger | undefined): void {
  if (warnedNoFlock || !logger) return;
  warnedNoFlock = true;
  logger.warn('flock(1) was not found on PATH: cache directories are used and purged without flock; install util-linux');
}

async function openDir(cachePath: string): Promise<{ handle: FileHandle; key: string }> {
  let handle: FileHandle;
  try {
    handle = await open(cachePath, DIR_FLAGS);
  } catch (err) {
    const code = errnoCode(err);
    if (code === 'ELOOP' || code === 'ENOTDIR') {
      throw new UnsafePathError(`${cachePath} is not a directory (or is a symbolic link); refusing to lock it`, cachePath);
    }
    throw err;
  }
  try {
    return { handle, key: inodeKey(await handle.stat({ bigint: true })) };
  } catch (err) {
    await handle.close();
    throw err;
  }
}

function dirLock(handle: FileHandle, key: string): DirLock {
  let closed: Promise<void> | undefined;
  // Closing our descriptor drops the lock: flock(2) locks belong to the open file.
  return { fd: handle.fd, key, release: () => (closed ??= handle.close()) };
}

/**
 * The agent's lock while it renames a cache: exclusive and non-blocking, so
 * any user holding a (shared) flock on the directory makes it 'busy'. Rejects
 * with the errno error (ENOENT when the cache is gone) or UnsafePathError.
 * The caller should check that the path still has `key` before renaming.
 */
export async function tryLockForRename(cachePath: string, opts: { logger?: Logger } = {}): Promise<DirLock | 'busy'> {
  const [result] = await tryLockManyForRename([cachePath], opts);
  if (result instanceof Error) throw result;
  return result!;
}

/**
 * tryLockForRename for many caches at once, with one locking process for all
 * of them (see tryFlockMany). Each result is a lock, 'busy', or the error that
 * opening that cache gave (ENOENT when it is gone, UnsafePathError).
 */
export async function tryLockManyForRename(cachePaths: readonly string[], opts: { logger?: Logger } = {}): Promise<(DirLock | 'busy' | Error)[]> {
  const opened = await Promise.all(cachePaths.map((p) => openDir(p).catch((err: unknown) => (err instanceof Error ? err : new Error(String(err))))));
  const handles = opened.filter((o): o is { handle: FileHandle; key: string } => !(o instanceof Error));
  let results: ('locked' | 'busy')[];
  try {
    results = await tryFlockMany(handles.map((h) => h.handle.fd), 'exclusive');
  } catch (err) {
    if (!(err instanceof FlockUnavailableError)) {
      await Promise.all(handles.map((h) => h.handle.close()));
      throw err;
    }
    noFlock(opts.logger);
    results = handles.map(() => 'locked');
  }
  let next = 0;
  return Promise.all(
    opened.map(async (o) => {
      if (o instanceof Error) return o;
      if (results[next++] === 'busy') {
        await o.handle.close();
        return 'busy' as const;
      }
      return dirLock(o.handle, o.key);
    }),
  );
}

/**
 * A user's shared lock on a cache directory, for `exec`. Waits while someone
 * holds it exclusively (the agent renaming it): a retry loop with backoff, so
 * that `signal` can cancel the wait — a blocking flock(1) could only be killed.
 * After it resolves the caller must check that the path still has `key`: the
 * directory may have been renamed away between our open and our lock.
 */
export async function acquireSharedLock(cachePath: string, opts: { logger?: Logger; signal?: AbortSignal } = {}): Promise<DirLock> {
  const { handle, key } = await openDir(cachePath);
  try {
    for (let delay = 10; ; delay = Math.min(delay * 2, 500)) {
      opts.signal?.throwIfAborted();
      if ((await tryFlock(handle.fd, 'shared')) === 'locked') break;
      await sleep(delay, opts.signal);
    }
  } catch (err) {
    if (!(err instanceof FlockUnavailableError)) {
      await handle.close();
      throw err;
    }
    noFlock(opts.logger);
  }
  return dirLock(handle, key);
}

function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(done, ms);
    function done(): void {
      signal?.removeEventListener('abort', abort);
      resolve();
    }
    function abort(): void {
      clearTimeout(timer);
      reject(signal!.reason);
    }
    signal?.addEventListener('abort', abort, { once: true });
  });
}
