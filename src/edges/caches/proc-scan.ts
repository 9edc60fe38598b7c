/**
 * One pass over /proc for a set of caches, bounded whatever other users do.
 *
 * - Everything but the list of processes is streamed: each fd directory, maps,
 *   /proc/locks and mountinfo are read entry by entry or line by line.
 * - A process is read only until it is known to hold every cache being judged.
 * - Every entry read (a process, a descriptor, a line of maps, locks or
 *   mountinfo) is charged to a budget. When it runs out the pass stops, and
 *   the caches not yet seen held are reported with an 'unknown' holder, so
 *   they are deferred, never purged on incomplete knowledge.
 * - The pass yields to the event loop every few hundred entries, so the local
 *   API and the probes keep answering during a long pass.
 */
import { opendirSync, readlinkSync, readFileSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { SYNC_CALLS_PER_TURN, mapLimit, yieldToEventLoop } from './concurrency.js';
import { eachLine } from './each-line.js';
import { USE_LOCK_TYPES, lockKey, parseFdinfoLocks, parseMapsLine, parseMountinfo, parseProcLocks, type ProcLock } from './proc.js';
import { directView, foreignView, locateTargets, type Target, type View } from './proc-view.js';

export interface ScanSources {
  locks: boolean;
  processes: boolean;
}

/** A holder before its command line is known. */
export interface Found {
  kind: 'lock' | 'process';
  pid?: number;
  /** What follows "pid N (cmd)" in the detail, or the whole detail when pid is unset. */
  text: string;
}

/** Processes read at once: enough to hide the latency of the asynchronous reads. */
const SCAN_CONCURRENCY = 16;

export class ProcScan {
  /** Locks on the caches' filesystems no descriptor inside a cache was seen to own yet, by key. */
  private locks = new Map<string, ProcLock[]>();
  private attributed = new Set<string>();
  private attributedLocks = 0;
  private selfNs: string | undefined;
  private readonly direct: View;
  private views = new Map<string, View>();
  private located = false;
  private sinceYield = 0;
  readonly found = new Map<Target, Found[]>();
  /** What the pass cost, for the debug log and the budget. */
  readonly stats = { processes: 0, entries: 0, namespaces: 0, exhausted: false };

  constructor(
    private readonly procRoot: string,
    private readonly selfPid: number,
    private readonly sources: ScanSources,
    private readonly targets: readonly Target[],
    private readonly budget: number,
    private readonly uninspectable: (pid: number, err: unknown) => void,
  ) {
    this.direct = directView(targets);
    for (const t of targets) this.found.set(t, []);
  }

  /** Charge `n` entries; true when the budget is spent and the pass must stop. */
  private charge(n = 1): boolean {
    this.stats.entries += n;
    if (this.stats.entries > this.budget) this.stats.exhausted = true;
    return this.stats.exhausted;
  }

  private async breathe(): Promise<void> {
    if (++this.sinceYield < SYNC_CALLS_PER_TURN) return;
    this.sinceYield = 0;
    await yieldToEventLoop();
  }

  async run(): Promise<void> {
    if (this.sources.locks) await this.readLocks();
    this.selfNs = readlinkOrUndefined(`${this.procRoot}/self/ns/mnt`);
    // The list of processes is read at once: reading /proc in pieces while processes come and go skipped
    // some of them. Its length is bounded by the kernel's limit on tasks, and charged to the budget.
    const pids = (await readdir(this.procRoot)).filter((n) => /^\d+$/.test(n)).map(Number);
    for (let i = 0; i < pids.length && !this.stats.exhausted; i += SCAN_CONCURRENCY * 4) {
      await mapLimit(pids.slice(i, i + SCAN_CONCURRENCY * 4), SCAN_CONCURRENCY, (pid) => this.scanProcess(pid));
    }
    if (this.sources.locks) this.lockedCacheDirs();
  }

  /** /proc/locks, line by line, keeping only locks on the caches' filesystems. */
  private async readLocks(): Promise<void> {
    const devs = new Set(this.targets.map((t) => t.dev));
    try {
      await eachLine(`${this.procRoot}/locks`, (line) => {
        if (this.charge()) return false;
        const [lock] = parseProcLocks(line);
        if (!lock || !USE_LOCK_TYPES.has(lock.type) || !devs.has(lock.dev)) return true;
        const key = lockKey(lock.dev, lock.ino);
        this.locks.set(key, [...(this.locks.get(key) ?? []), lock]);
        return true;
      });
    } catch {
      // No /proc/locks (a restricted /proc): descriptors still show locks.
    }
  }

  /** Locks on the caches' filesystems that no descriptor inside a cache was seen to own: only those need maps to place them. */
  private get unattributed(): number {
    return this.locks.size - this.attributedLocks;
  }

  private attribute(key: string): void {
    if (this.attributed.has(key)) return;
    this.attributed.add(key);
    if (this.locks.has(key)) this.attributedLocks++;
  }

  private add(t: Target, kind: Found['kind'], pid: number | undefined, text: string): void {
    const entry: Found = pid === undefined ? { kind, text: capitalise(text) } : { kind, pid, text };
    const list = this.found.get(t);
    if (list) list.push(entry);
    else this.found.set(t, [entry]);
  }

  /**
   * Links and fdinfo are read synchronously (procfs answers them from kernel
   * memory without the target's memory lock, and the round trip through
   * libuv's pool made the scan about 4x slower), a few hundred at a time
   * between turns of the event loop. maps is read asynchronously: it takes
   * the target's mmap lock and can stall behind a process stuck in I/O.
   */
  private async scanProcess(pid: number): Promise<void> {
    if (this.charge()) return;
    this.stats.processes++;
    const dir = `${this.procRoot}/${pid}`;
    const watchProcess = this.sources.processes && pid !== this.selfPid;
    // The caches this process is not yet known to hold: once none is left, the rest of it is not read.
    const open = new Set(this.targets);
    const hold = (t: Target, kind: Found['kind'], text: string): void => {
      open.delete(t);
      this.add(t, kind, pid, text);
    };
    try {
      const view = await this.viewOf(pid);
      if (watchProcess) {
        for (const [link, verb] of [
          ['cwd', 'working'],
          ['root', 'root'],
        ] as const) {
          const p = readlinkOrUndefined(`${dir}/${link}`);
          for (const t of p === undefined ? [] : view(p)) hold(t, 'process', `has its ${verb} directory in ${t.path}`);
        }
      }
      if (open.size === 0) return;
      const fds = opendirSync(`${dir}/fd`, { bufferSize: 128 });
      try {
        for (let entry = fds.readSync(); entry !== null && open.size > 0; entry = fds.readSync()) {
          if (this.charge()) return;
          await this.breathe();
          const p = readlinkOrUndefined(`${dir}/fd/${entry.name}`);
          const inside = p === undefined ? [] : view(p);
          if (p === undefined || inside.length === 0) continue;
          if (this.sources.locks && this.locks.size > 0) this.fdLocks(pid, entry.name, p, inside, hold);
          if (watchProcess) for (const t of inside) hold(t, 'process', `has ${p} open`);
        }
      } finally {
        fds.closeSync();
      }
      const placeLocks = this.sources.locks && this.unattributed > 0;
      if (open.size > 0 && (watchProcess || placeLocks)) await this.scanMaps(pid, view, watchProcess, hold, open);
    } catch (err) {
      this.uninspectable(pid, err);
    }
  }

  /** The locks owned through one descriptor on a file inside a cache. */
  private fdLocks(pid: number, fd: string, p: string, inside: readonly Target[], hold: (t: Target, kind: Found['kind'], text: string) => void): void {
    let info = '';
    try {
      info = readFileSync(`${this.procRoot}/${pid}/fdinfo/${fd}`, 'utf8');
    } catch {
      return; // closed meanwhile
    }
    for (const lock of parseFdinfoLocks(info)) {
      if (!USE_LOCK_TYPES.has(lock.type)) continue;
      this.attribute(lockKey(lock.dev, lock.ino));
      for (const t of inside) hold(t, 'lock', `holds ${lockWords(lock)} on ${p}`);
    }
  }

  /**
   * Mapped files inside a cache: a use of the cache, and the way to place a
   * lock kept alive only by a mapping (the descriptor closed, the open file
   * still referenced by the mapping), by the device and inode maps shows.
   */
  private async scanMaps(
    pid: number,
    view: View,
    watchProcess: boolean,
    hold: (t: Target, kind: Found['kind'], text: string) => void,
    open: Set<Target>,
  ): Promise<void> {
    await eachLine(`${this.procRoot}/${pid}/maps`, (line) => {
      if (this.charge() || open.size === 0) return false;
      const mapped = line.includes('/') ? parseMapsLine(line) : undefined;
      const inside = mapped ? view(mapped.path) : [];
      if (mapped === undefined || inside.length === 0) return true;
      for (const lock of this.attributed.has(mapped.key) ? [] : (this.locks.get(mapped.key) ?? [])) {
        for (const t of inside) hold(t, 'lock', `holds ${lockWords(lock)} on ${mapped.path} through a mapping (its descriptor is closed)`);
      }
      if (watchProcess) for (const t of inside) hold(t, 'process', `has ${mapped.path} mapped`);
      return true;
    });
  }

  /** Locks on a cache directory itself count even when no descriptor shows who holds them. */
  private lockedCacheDirs(): void {
    for (const t of this.targets) {
      if (this.attributed.has(t.key)) continue;
      for (const lock of this.locks.get(t.key) ?? []) {
        this.add(t, 'lock', undefined, `${lockWords(lock)} on ${t.path} is held by a process the agent cannot see${recorded(lock)}`);
      }
    }
  }

  /** How to place this process's paths: directly, or through its mount namespace (translated once per namespace). */
  private async viewOf(pid: number): Promise<View> {
    const ns = readlinkOrUndefined(`${this.procRoot}/${pid}/ns/mnt`);
    // No namespace to compare: the reads that follow report any problem.
    if (ns === undefined || this.selfNs === undefined || ns === this.selfNs) return this.direct;
    let view = this.views.get(ns);
    if (!view) {
      this.stats.namespaces++;
      try {
        if (!this.located) {
          locateTargets(this.targets, await this.mountinfo('self'));
          this.located = true;
        }
        view = foreignView(this.targets, await this.mountinfo(String(pid)));
      } catch (err) {
        this.uninspectable(pid, err);
        view = this.direct;
      }
      this.views.set(ns, view);
    }
    return view;
  }

  /** A mountinfo, line by line and charged to the budget: a namespace may hold many thousands of mounts. */
  private async mountinfo(pid: string): Promise<ReturnType<typeof parseMountinfo>> {
    const mounts: ReturnType<typeof parseMountinfo> = [];
    await eachLine(`${this.procRoot}/${pid}/mountinfo`, (line) => {
      if (this.charge()) return false;
      mounts.push(...parseMountinfo(line));
      return true;
    });
    return mounts;
  }
}

export function readlinkOrUndefined(link: string): string | undefined {
  try {
    return readlinkSync(link);
  } catch {
    return undefined;
  }
}

export function lockWords(lock: ProcLock): string {
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
