/**
 * Is a cache in use? The imperative shell around src/edges/caches/proc.ts: one
 * bounded pass over /proc (src/edges/caches/proc-scan.ts) per call, for all the
 * caches asked about, saying who holds each.
 *
 * How a holder is found:
 * - Every process's cwd, root, open files (fd/*) and mapped files (maps) are
 *   read with readlink and text reads only — no link is ever followed into a
 *   cache — and tested for exact containment in each cache.
 * - A lock is placed through the descriptor that holds it: for each open file
 *   inside a cache, /proc/<pid>/fdinfo/<fd> lists the locks owned through that
 *   open file. This names the real holder even when /proc/locks records a pid
 *   that has exited (flock(1) locking on our behalf, a fork that inherited the
 *   descriptor). A lock kept alive only by a mapping is placed by the device
 *   and inode that maps shows. A lock on the cache directory itself is also
 *   matched directly by device:inode in /proc/locks, so it counts even if no
 *   holder is visible.
 * - A lock on a file inside a cache whose holder cannot be seen at all (a
 *   descriptor in flight in a unix socket, a process in another pid
 *   namespace) is not looked for: finding its inode would mean walking the
 *   cache at every decision, which any user could make as slow as they like.
 *   Users who want their use respected lock the cache directory (as exec
 *   does), which the rename lock always honours.
 * - A process in another mount namespace (a container with the cache
 *   bind-mounted elsewhere) sees other paths: those are translated through its
 *   mountinfo to device + path within the filesystem and compared that way.
 * - The pass has a budget of entries read; a pass that runs out of it reports
 *   the caches it could not judge as held by 'unknown', and for a while after
 *   answers the same without scanning, so a held cache rechecked every few
 *   seconds does not make every recheck pay for a full budget again.
 *
 * Known limits: threads that unshared their cwd or fd table are seen through
 * their thread-group leader only; a file hard-linked from outside a cache is
 * judged by the path its holder opened; on btrfs, a subvolume's st_dev differs
 * from the device /proc/locks prints, so there only descriptor-placed locks
 * count (tryLockForRename still catches flocks on the cache directory).
 */
import { readFile } from 'node:fs/promises';
import { lstatSync, realpathSync, type BigIntStats } from 'node:fs';
import path from 'node:path';
import { errnoCode, errorMessage } from '../../errors.js';
import type { Logger } from '../../log.js';
import { devOf, formatCmdline, lockKey } from './proc.js';
import { ProcScan, type Found } from './proc-scan.js';
import { SYNC_CALLS_PER_TURN, yieldToEventLoop } from './concurrency.js';
import type { Target } from './proc-view.js';

export { parseProcLocks, parseMaps } from './proc.js';
export { tryLockForRename, tryLockManyForRename, acquireSharedLock, type DirLock } from './dir-lock.js';
export { inodeKey } from './inode-key.js';

export type { Holder } from '../../core/judge.js';
import type { Holder } from '../../core/judge.js';

/** Each source can be switched off in the configuration; leases live in src/core/leases.ts. */
export interface UsageSources {
  locks: boolean;
  processes: boolean;
}

export interface UsageProbe {
  /** Holders for each given cache path (absolute directory paths); checks ONLY these caches. */
  holdersOf(cachePaths: string[]): Promise<Map<string, Holder[]>>;
}

/**
 * Entries one pass may read. A busy build host has a few hundred processes
 * with tens of descriptors and a few hundred mappings each (well under 100,000
 * entries); a pass of this size takes a few seconds on a loaded machine. A
 * count, not a time: the same /proc gives the same answer however loaded the
 * machine is, so purges are not deferred by chance.
 */
export const DEFAULT_SCAN_BUDGET = 250_000;
/** After a pass ran out of budget, later passes within this time answer 'unknown' at once. */
export const DEFAULT_EXHAUSTED_COOLDOWN_MS = 60_000;

export interface ProbeOptions {
  sources: UsageSources;
  logger?: Logger;
  procRoot?: string;
  /** Our own process, ignored for process checks but not for locks. */
  selfPid?: number;
  /** Entries one pass may read (DEFAULT_SCAN_BUDGET). */
  budget?: number;
  /** How long an exhausted pass's verdict stands (DEFAULT_EXHAUSTED_COOLDOWN_MS); 0 scans every time. */
  exhaustedCooldownMs?: number;
}

export function createUsageProbe(opts: ProbeOptions): UsageProbe {
  const procRoot = opts.procRoot ?? '/proc';
  const selfPid = opts.selfPid ?? process.pid;
  const budget = opts.budget ?? DEFAULT_SCAN_BUDGET;
  const cooldownMs = opts.exhaustedCooldownMs ?? DEFAULT_EXHAUSTED_COOLDOWN_MS;
  const { sources, logger } = opts;
  const reported = new Set<number>();
  let exhaustedAt: { at: number; entries: number } | null = null;

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
      const targets = await resolveTargets(cachePaths);
      if (targets.length === 0 || (!sources.locks && !sources.processes)) return result;
      if (exhaustedAt && performance.now() - exhaustedAt.at < cooldownMs) {
        for (const t of targets) result.set(t.path, [unknownHolder(exhaustedAt.entries, true)]);
        return result;
      }
      const scan = new ProcScan(procRoot, selfPid, sources, targets, budget, uninspectable);
      const started = performance.now();
      logger?.debug({ caches: targets.length, budget }, 'scanning /proc for cache use');
      await scan.run();
      const ms = Math.round(performance.now() - started);
      logger?.debug({ caches: targets.length, ...scan.stats, ms }, 'scanned /proc for cache use');
      exhaustedAt = scan.stats.exhausted ? { at: performance.now(), entries: scan.stats.entries } : null;
      if (scan.stats.exhausted) {
        logger?.warn(
          { entries: scan.stats.entries, budget, processes: scan.stats.processes, ms },
          'the in-use scan ran out of its budget: caches it could not judge are deferred, not purged',
        );
      }
      const commands = new Map<number, Promise<string | undefined>>();
      for (const t of targets) {
        const holders = await finish(scan.found.get(t) ?? [], procRoot, commands);
        if (holders.length === 0 && scan.stats.exhausted) holders.push(unknownHolder(scan.stats.entries, false));
        result.set(t.path, holders);
      }
      return result;
    },
  };
}

function unknownHolder(entries: number, earlier: boolean): Holder {
  const when = earlier ? 'a recent in-use scan ran out of its budget' : 'in-use scan budget exhausted';
  return { kind: 'unknown', detail: `${when} after ${entries} entries; deferred rather than purged on incomplete knowledge` };
}

/**
 * Each cache's identity and the forms of its path a process may show. The
 * calls are synchronous, in batches with a yield between them (as the
 * inventory's listing): for metadata the kernel has cached, a thread-pool
 * round trip per call cost more than the call. A cache's real path is its
 * parent's real path and its own name (it was just seen to be a directory,
 * not a symlink), so a root's thousand caches cost one realpath, not a
 * thousand.
 */
async function resolveTargets(given: readonly string[]): Promise<Target[]> {
  const targets: Target[] = [];
  const realParents = new Map<string, string | null>();
  for (const [index, one] of given.entries()) {
    if (index > 0 && index % SYNC_CALLS_PER_TURN === 0) await yieldToEventLoop();
    const abs = path.resolve(one);
    const parent = path.dirname(abs);
    let st: BigIntStats;
    try {
      st = lstatSync(abs, { bigint: true });
    } catch {
      continue; // gone: nothing can be using it
    }
    if (!st.isDirectory()) continue;
    let realParent = realParents.get(parent);
    if (realParent === undefined) {
      realParent = realpathOrNull(parent);
      realParents.set(parent, realParent);
    }
    if (realParent === null) continue; // its parent is gone: so is the cache
    const real = path.join(realParent, path.basename(abs));
    const dev = devOf(st.dev);
    targets.push({ path: one, forms: [...new Set([abs, real])], stDev: st.dev, dev, key: lockKey(dev, st.ino) });
  }
  return targets;
}

function realpathOrNull(dir: string): string | null {
  try {
    return realpathSync.native(dir);
  } catch {
    return null;
  }
}

/** The holders of one cache, one entry per process and kind, with command lines filled in. */
async function finish(found: readonly Found[], procRoot: string, commands: Map<number, Promise<string | undefined>>): Promise<Holder[]> {
  const seen = new Set<string>();
  const holders: Holder[] = [];
  for (const f of found) {
    const id = `${f.kind}:${f.pid ?? ''}:${f.kind === 'process' ? '' : f.text}`;
    if (seen.has(id)) continue; // one entry per process, however many files it has open
    seen.add(id);
    if (f.pid === undefined) {
      holders.push({ kind: f.kind, detail: f.text });
      continue;
    }
    const command = await commandOf(f.pid, procRoot, commands);
    const who = command ? `pid ${f.pid} (${command})` : `pid ${f.pid}`;
    holders.push({ kind: f.kind, pid: f.pid, ...(command ? { command } : {}), detail: `${who} ${f.text}` });
  }
  return holders;
}

function commandOf(pid: number, procRoot: string, commands: Map<number, Promise<string | undefined>>): Promise<string | undefined> {
  let cmd = commands.get(pid);
  if (!cmd) {
    const dir = `${procRoot}/${pid}`;
    cmd = readFile(`${dir}/cmdline`, 'utf8')
      .then(async (raw) => formatCmdline(raw.slice(0, 4096)) || `[${(await readFile(`${dir}/comm`, 'utf8')).trim()}]`)
      .catch(() => undefined);
    commands.set(pid, cmd);
  }
  return cmd;
}
