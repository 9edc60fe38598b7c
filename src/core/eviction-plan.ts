/**
 * Eviction, as a pure decision: which idle caches to remove so the disk does
 * not fill. Purge requests remove caches that are wrong; eviction removes
 * caches that are merely old or large, with the same safety rules (the shell
 * carries evictions out through the same lock-and-rename path as purges).
 *
 * - `maxUnusedMs`: every idle cache unused for longer than this goes.
 * - `maxSizeBytes` (per cache root): when a root's caches exceed it, idle
 *   caches go least recently used first until the total is 10 % below it.
 * - `minFree` (per filesystem holding a root): when free space falls under it,
 *   idle caches on that filesystem go, least recently used first, until free
 *   space is 10 % above it.
 *
 * The 10 % hysteresis keeps eviction from flapping: without it, every small
 * write after an eviction would cross the limit again and evict one more
 * cache. Bytes already in the trash count as free (they are on their way out),
 * so the agent never evicts a second cache for space the first is about to
 * give back. A cache in use is never evicted, whatever the pressure.
 */

export type MinFree = { bytes: number } | { percent: number };

export interface EvictionLimits {
  minFree?: MinFree;
  maxSizeBytes?: number;
  maxUnusedMs?: number;
}

export interface EvictableCache {
  name: string;
  path: string;
  root: string | null;
  /** Filesystem (st_dev) holding the cache. */
  fs: string;
  /** Null when unknown (not measured): such a cache counts as size 0 but is still ordered by use. */
  sizeBytes: number | null;
  /** Latest of directory mtime, last lease or exec release, and creation. */
  lastUsedMs: number;
  inUse: boolean;
}

export interface FilesystemUsage {
  fs: string;
  totalBytes: number;
  freeBytes: number;
  /** Bytes in this filesystem's trash directories, not yet deleted. */
  trashBytes: number;
}

export type EvictionReason = 'max-unused' | 'max-size' | 'min-free';

/** A cache evicted (or, in a dry run, that would be), as reports carry it. */
export interface EvictedEntry {
  name: string;
  path: string;
  reason: EvictionReason;
  bytes: number;
}

export interface Eviction {
  cache: EvictableCache;
  reason: EvictionReason;
  bytes: number;
}

export interface EvictionPlan {
  evict: Eviction[];
  /** Limits that still do not hold after every idle cache that could go: only caches in use (or nothing) remain. */
  unmet: { reason: EvictionReason; scope: string; detail: string }[];
}

/** Go this far past a limit once it is crossed, so eviction doesn't flap. */
export const HYSTERESIS = 0.1;

export function minFreeBytes(minFree: MinFree, totalBytes: number): number {
  return 'bytes' in minFree ? minFree.bytes : Math.floor((totalBytes * minFree.percent) / 100);
}

/** Least recently used first; ties by path so the plan is deterministic. */
function lruOrder(a: EvictableCache, b: EvictableCache): number {
  return a.lastUsedMs - b.lastUsedMs || (a.path < b.path ? -1 : a.path > b.path ? 1 : 0);
}

export function planEviction(input: {
  caches: readonly EvictableCache[];
  filesystems: readonly FilesystemUsage[];
  limits: EvictionLimits;
  nowMs: number;
}): EvictionPlan {
  const { caches, filesystems, limits, nowMs } = input;
  const chosen = new Map<string, Eviction>();
  const unmet: EvictionPlan['unmet'] = [];
  const take = (cache: EvictableCache, reason: EvictionReason): void => {
    if (!chosen.has(cache.path)) chosen.set(cache.path, { cache, reason, bytes: cache.sizeBytes ?? 0 });
  };
  const idle = caches.filter((c) => !c.inUse).sort(lruOrder);

  if (limits.maxUnusedMs !== undefined && limits.maxUnusedMs > 0) {
    for (const cache of idle) if (nowMs - cache.lastUsedMs > limits.maxUnusedMs) take(cache, 'max-unused');
  }

  if (limits.maxSizeBytes !== undefined) {
    const roots = new Set(caches.map((c) => c.root).filter((r): r is string => r !== null));
    for (const root of roots) {
      const inRoot = caches.filter((c) => c.root === root);
      let total = inRoot.reduce((sum, c) => sum + (chosen.has(c.path) ? 0 : (c.sizeBytes ?? 0)), 0);
      if (total <= limits.maxSizeBytes) continue;
      const target = Math.floor(limits.maxSizeBytes * (1 - HYSTERESIS));
      for (const cache of idle) {
        if (total <= target) break;
        if (cache.root !== root || chosen.has(cache.path)) continue;
        take(cache, 'max-size');
        total -= cache.sizeBytes ?? 0;
      }
      if (total > limits.maxSizeBytes) unmet.push({ reason: 'max-size', scope: root, detail: `${total} bytes of caches remain; the rest are in use` });
    }
  }

  if (limits.minFree !== undefined) {
    for (const usage of filesystems) {
      const needed = minFreeBytes(limits.minFree, usage.totalBytes);
      const freed = [...chosen.values()].filter((e) => e.cache.fs === usage.fs).reduce((sum, e) => sum + e.bytes, 0);
      let free = usage.freeBytes + usage.trashBytes + freed;
      if (free >= needed) continue;
      const target = Math.min(usage.totalBytes, Math.ceil(needed * (1 + HYSTERESIS)));
      for (const cache of idle) {
        if (free >= target) break;
        if (cache.fs !== usage.fs || chosen.has(cache.path)) continue;
        take(cache, 'min-free');
        free += cache.sizeBytes ?? 0;
      }
      if (free < needed)
        unmet.push({ reason: 'min-free', scope: usage.fs, detail: `${free} bytes free or on their way out, ${needed} wanted; no idle cache left to evict` });
    }
  }

  return { evict: [...chosen.values()], unmet };
}

/** Whether any limit is crossed now: the cheap check the daemon runs between cycles (statfs only). */
export function minFreeCrossed(filesystems: readonly FilesystemUsage[], minFree: MinFree | undefined): boolean {
  if (!minFree) return false;
  return filesystems.some((u) => u.freeBytes + u.trashBytes < minFreeBytes(minFree, u.totalBytes));
}
