/**
 * Eviction's imperative shell: gather the facts src/core/eviction-plan.ts decides on —
 * free space, cache sizes, last use, who holds what — then evict through the
 * same lock-and-rename path as a purge (src/engine/purge.ts), so every safety rule of
 * purging holds for eviction too.
 *
 * Costs are paid only when needed: free space is one statfs per filesystem
 * (cheap enough to check every few seconds); cache sizes are walked only when
 * a limit that needs them is set and crossed; in-use checks run only for the
 * caches the plan picks.
 */
import { statfs, lstat } from 'node:fs/promises';
import path from 'node:path';
import type { Settings } from '../config/index.js';
import type { Logger } from '../log.js';
import type { Clock } from '../edges/clock.js';
import { listCaches, type CacheDir, type CacheSources } from '../edges/caches/inventory.js';
import { trashDirsFor } from '../edges/caches/trash.js';
import type { UsageProbe } from '../edges/caches/inuse.js';
import { measureTree } from '../edges/caches/size.js';
import { leaseHolders } from '../core/leases.js';
import { applyPurges } from './purge.js';
import { createdAt } from '../core/rule.js';
import type { Candidate } from '../core/judge.js';
import { planEviction, minFreeCrossed, type EvictableCache, type EvictionLimits, type FilesystemUsage, type EvictedEntry } from '../core/eviction-plan.js';
export type { EvictedEntry };
import type { AgentState } from '../edges/state.js';
import { localReport, type CycleReport } from '../core/report.js';
import type { LocalContext } from './cycle.js';

export interface EvictionContext {
  settings: Settings;
  sources: CacheSources;
  usage: UsageProbe;
  state: AgentState;
  logger: Logger;
  clock: Clock;
}

export interface EvictionResult {
  evicted: EvictedEntry[];
  failed: { name: string; path: string; error: string }[];
}

/** How long sizing caches may take in one eviction pass before it goes on with what it measured. */
const SIZE_BUDGET_MS = 60_000;
/** Rounds of plan → check use → re-plan without the caches found in use. */
const MAX_ROUNDS = 4;

export function evictionLimits(settings: Settings): EvictionLimits | null {
  const limits: EvictionLimits = {};
  if (settings.minFree) limits.minFree = settings.minFree;
  if (settings.maxSize !== undefined) limits.maxSizeBytes = settings.maxSize;
  if (settings.maxUnused) limits.maxUnusedMs = settings.maxUnused;
  return Object.keys(limits).length > 0 ? limits : null;
}

/** Free space (and trash backlog) of each filesystem holding a cache root or single cache. */
export async function filesystemUsage(sources: CacheSources, opts: { withTrash: boolean }): Promise<FilesystemUsage[]> {
  const byFs = new Map<string, { usage: FilesystemUsage; trashes: string[] }>();
  for (const trash of trashDirsFor(sources)) {
    const parent = path.dirname(trash);
    let dev: string;
    try {
      dev = String((await lstat(parent, { bigint: true })).dev);
    } catch {
      continue; // a root that doesn't exist holds nothing
    }
    let fs = byFs.get(dev);
    if (!fs) {
      const st = await statfs(parent, { bigint: true });
      fs = { usage: { fs: dev, totalBytes: Number(st.blocks * st.bsize), freeBytes: Number(st.bavail * st.bsize), trashBytes: 0 }, trashes: [] };
      byFs.set(dev, fs);
    }
    fs.trashes.push(trash);
  }
  if (opts.withTrash) {
    for (const { usage, trashes } of byFs.values()) {
      for (const trash of trashes) usage.trashBytes += (await measureTree(trash, performance.now() + 5_000)).bytes;
    }
  }
  return [...byFs.values()].map((fs) => fs.usage);
}

/** The filesystem part of a cache's `${dev}:${ino}` key. */
function devOf(cache: CacheDir): string {
  const colon = cache.key.indexOf(':');
  return colon < 0 ? cache.key : cache.key.slice(0, colon);
}

/** The cheap check the daemon runs between cycles: has free space fallen below --min-free? */
export async function minFreeCrossedNow(settings: Settings, sources: CacheSources): Promise<boolean> {
  if (!settings.minFree) return false;
  return minFreeCrossed(await filesystemUsage(sources, { withTrash: false }), settings.minFree);
}

function lastUsedOf(cache: CacheDir, state: AgentState): number {
  const created = createdAt(cache, state.firstSeen) ?? 0;
  return Math.max(cache.mtimeMs, state.lastUsed[cache.name] ?? 0, created);
}

/**
 * One eviction pass. With `dryRun`, returns what would be evicted and why, and
 * changes nothing.
 */
export async function runEviction(ctx: EvictionContext, opts: { dryRun: boolean }): Promise<EvictionResult> {
  const result: EvictionResult = { evicted: [], failed: [] };
  const limits = evictionLimits(ctx.settings);
  if (!limits) return result;
  const { caches } = await listCaches(ctx.sources);
  if (caches.length === 0) return result;
  const now = ctx.clock.now();
  const filesystems = await filesystemUsage(ctx.sources, { withTrash: true });
  const needSizes = limits.maxSizeBytes !== undefined || (limits.minFree !== undefined && minFreeCrossed(filesystems, limits.minFree));

  const sizes = new Map<string, number | null>();
  if (needSizes) {
    const deadline = performance.now() + SIZE_BUDGET_MS;
    for (const cache of caches) {
      const measured = await measureTree(cache.path, deadline);
      sizes.set(cache.path, measured.bytes);
      if (measured.error) {
        // A tree that cannot be measured (a looping symlink swapped in, a directory we may not read) is
        // reported and counted as far as it was measured; the pass goes on with the other caches.
        const error = `cannot measure ${cache.path} for eviction: ${measured.error.path}: ${measured.error.reason}`;
        ctx.logger.error(
          { cache: cache.name, path: measured.error.path, err: measured.error.reason },
          'cannot measure a cache for eviction; counted as far as it was measured',
        );
        result.failed.push({ name: cache.name, path: cache.path, error });
      }
    }
  }

  const heldByLease = (cache: CacheDir): boolean => ctx.settings.inUseChecks.includes('leases') && leaseHolders(ctx.state.leases, cache.name, now).length > 0;
  const inUse = new Set(caches.filter(heldByLease).map((c) => c.path));
  const checked = new Set<string>();
  let plan = null;
  for (let round = 0; round < MAX_ROUNDS; round++) {
    const evictable: EvictableCache[] = caches.map((c) => ({
      name: c.name,
      path: c.path,
      root: c.root,
      fs: devOf(c),
      sizeBytes: sizes.get(c.path) ?? null,
      lastUsedMs: lastUsedOf(c, ctx.state),
      inUse: inUse.has(c.path),
    }));
    plan = planEviction({ caches: evictable, filesystems, limits, nowMs: now });
    // In-use checks only for what the plan picked, and each cache once.
    const toCheck = plan.evict.map((e) => e.cache.path).filter((p) => !checked.has(p));
    if (toCheck.length === 0) break;
    const holders = await ctx.usage.holdersOf(toCheck);
    for (const p of toCheck) {
      checked.add(p);
      if ((holders.get(p) ?? []).length > 0) inUse.add(p);
    }
    if (!toCheck.some((p) => inUse.has(p))) break;
  }
  if (!plan) return result;
  for (const unmet of plan.unmet) ctx.logger.warn(unmet, 'eviction limit still crossed: every remaining cache is in use');

  const byPath = new Map(caches.map((c) => [c.path, c]));
  const chosen = plan.evict.filter((e) => !inUse.has(e.cache.path));
  // A limit that needs no sizes (--max-unused) leaves them unmeasured: measure what goes, so the report says what it frees.
  for (const e of chosen) if (!sizes.has(e.cache.path)) e.bytes = (await measureTree(e.cache.path, performance.now() + SIZE_BUDGET_MS)).bytes;
  if (opts.dryRun) {
    for (const e of chosen) {
      const entry = { name: e.cache.name, path: e.cache.path, reason: e.reason, bytes: e.bytes };
      ctx.logger.info({ ...entry, dryRun: true }, 'would evict');
      result.evicted.push(entry);
    }
    return result;
  }
  const evicting = chosen.flatMap((e) => {
    const cache = byPath.get(e.cache.path);
    if (!cache) return [];
    const candidate: Candidate = { cache, createdMs: createdAt(cache, ctx.state.firstSeen), beforeMs: now, since: now };
    return [{ candidate, entry: { name: e.cache.name, path: e.cache.path, reason: e.reason, bytes: e.bytes } }];
  });
  const outcomes = await applyPurges(
    evicting.map((x) => x.candidate),
    { logger: ctx.logger },
  );
  // applyPurges answers one outcome per candidate, in order.
  for (const [i, { entry }] of evicting.entries()) {
    const outcome = outcomes[i];
    if (!outcome) continue;
    if (outcome.kind === 'purged') {
      ctx.logger.info(entry, 'evicted cache');
      result.evicted.push(entry);
    } else if (outcome.kind === 'failed') {
      ctx.logger.error({ ...entry, err: outcome.error }, 'eviction failed; retried at the next pass');
      result.failed.push({ name: entry.name, path: entry.path, error: outcome.error });
    } else if (outcome.kind === 'deferred') {
      // A lock taken between the check and the rename: this cache is in use after all.
      ctx.logger.info(entry, 'eviction skipped: the cache was locked just now');
    }
  }
  return result;
}

/**
 * Evict idle caches when a limit (--min-free, --max-size, --max-unused) is
 * crossed, through the same lock-and-rename path as purges. Runs after every
 * cycle, and when the daemon sees free space fall between cycles.
 */
export async function evict(ctx: LocalContext, report: CycleReport): Promise<void> {
  if (!evictionLimits(ctx.settings)) return;
  const result = await runEviction(ctx, { dryRun: ctx.settings.dryRun });
  report.evicted.push(...result.evicted);
  for (const entry of result.evicted)
    ctx.progress?.(`${ctx.settings.dryRun ? 'would evict' : 'evicted'} ${entry.name} (${entry.reason}, ${entry.bytes} bytes)`);
  for (const failure of result.failed) report.failed.push({ ...failure, error: `eviction failed: ${failure.error}` });
}

/** An eviction pass on its own, outside a cycle (free space fell below --min-free between cycles). */
export async function runEvictionPass(ctx: LocalContext): Promise<CycleReport> {
  const report = localReport(ctx.clock.now(), ctx.settings.dryRun);
  await evict(ctx, report);
  return report;
}
