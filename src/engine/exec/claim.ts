/**
 * Claiming a cache for a command (`exec`): the command must never start on a
 * condemned cache, and no purge may pull a cache out from under it.
 *
 * The order matters:
 * 1. Take a shared flock on the cache directory, then check that the path
 *    still names the directory we locked: the agent may have renamed it into
 *    the trash between our open and our lock (it renames under an exclusive
 *    flock, so once we hold ours, it can't).
 * 2. With the lock held, ask whether a purge of this very directory (same
 *    device and inode) is pending. If so, let go, have it carried out, and
 *    start over on the fresh, empty directory.
 * 3. Otherwise, in the same look at the agent's state, take a lease, so the
 *    agent — and an operator reading /v1/status — knows who holds it even
 *    where flock is invisible (another host's view, NFS).
 * The lock and the lease are held until the command ends.
 */
import { lstat, mkdir } from 'node:fs/promises';
import path from 'node:path';
import { acquireSharedLock, inodeKey, type DirLock } from '../../edges/caches/inuse.js';
import { encodeCacheName } from '../../core/names.js';
import { sleep } from '../../edges/clock.js';
import type { CacheSources } from '../../edges/caches/inventory.js';
import { UsageError, errnoCode, ClaimTimeoutError } from '../../errors.js';
import type { Logger } from '../../log.js';

export interface Target {
  name: string;
  path: string;
}

/** What a claim needs from the agent (through its API, or the state file when no agent runs). */
export interface Coordinator {
  /**
   * Lease the cache to `lease.owner` and resolve true, unless a purge of this
   * directory (path and key) is pending: then resolve false, leasing nothing.
   * Both in one look at the agent's state: without an agent, each look takes
   * the state lock, and each lock costs a process spawn.
   */
  leaseUnlessPending(target: Target, key: string, lease: Lease): Promise<boolean>;
  /** Carry out a pending purge of `name` now; resolves with who still holds it if it had to be deferred. */
  purge(name: string): Promise<{ deferredBy: string | null }>;
}

/** Where a named cache lives: its single-cache path, else its encoded name in the first cache root. */
export function locate(name: string, sources: CacheSources): Target {
  const single = sources.singles.find((s) => s.name === name);
  if (single) return { name, path: single.path };
  const root = sources.roots[0];
  if (!root)
    throw new UsageError(`no cache root to put cache ${JSON.stringify(name)} in; configure --cache-root, or map it with a single cache in the config file`);
  const dirName = encodeCacheName(name);
  if (dirName === null)
    throw new UsageError(`cache name ${JSON.stringify(name.slice(0, 80))} cannot exist on disk (empty, not valid Unicode, or over 255 bytes encoded)`);
  return { name, path: path.join(root, dirName) };
}

/** Who holds the lease a claim takes, and for how long (extended while the command runs). */
export interface Lease {
  owner: string;
  ttlMs: number;
}

export interface ClaimOptions {
  coordinator: Coordinator;
  lease: Lease;
  logger: Logger;
  /** Give up (ClaimTimeoutError) at this time (ms since the epoch). */
  deadline: number;
  say: (line: string) => void;
}

export async function claim(target: Target, opts: ClaimOptions): Promise<DirLock> {
  let lastWaitNotice = '';
  for (let attempt = 0; ; attempt++) {
    if (Date.now() > opts.deadline) {
      throw new ClaimTimeoutError(
        `gave up waiting for cache ${JSON.stringify(target.name)} (${target.path}): ${lastWaitNotice || 'it kept changing under us'}; raise --wait-timeout, or find its holder with \`purge-cache-agent status\``,
      );
    }
    await mkdir(target.path, { recursive: true });
    const signal = AbortSignal.timeout(Math.max(1, opts.deadline - Date.now()));
    let lock: DirLock;
    try {
      lock = await acquireSharedLock(target.path, { logger: opts.logger, signal });
    } catch (err) {
      if (errnoCode(err) === 'ENOENT') continue; // renamed away between mkdir and open: start over
      if (signal.aborted) continue;
      throw err;
    }
    const now = await lstat(target.path, { bigint: true }).then(inodeKey, () => null);
    if (now !== lock.key) {
      // We locked a directory that is no longer at the path (purged meanwhile): start over.
      await lock.release();
      continue;
    }
    if (await opts.coordinator.leaseUnlessPending(target, lock.key, opts.lease)) return lock;
    await lock.release();
    opts.say(`cache ${JSON.stringify(target.name)} is condemned by a purge request: purging it before the command starts`);
    const { deferredBy } = await opts.coordinator.purge(target.name);
    if (deferredBy) {
      const notice = `waiting for ${deferredBy} to let go of ${target.path}`;
      if (notice !== lastWaitNotice) opts.say(notice);
      lastWaitNotice = notice;
      await sleep(Math.min(2000, 200 * (attempt + 1)));
    }
  }
}
