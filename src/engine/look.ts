/**
 * One look at the disk: list the caches, judge them against the requests on
 * record (src/core/judge.ts), ask who holds the condemned ones, rename the
 * free ones into the trash, and settle the state (src/core/contract.ts).
 * Cycles, rechecks and local purges all end in a look.
 */
import { selectCandidates, decide, type Candidate, type Outcome } from '../core/judge.js';
import { settleLook } from '../core/contract.js';
import type { LocationRead, ValidRequest } from '../core/records.js';
import { locationId } from '../core/cursor.js';
import { listCaches } from '../edges/caches/inventory.js';
import { encodeCacheName } from '../core/names.js';
import type { Holder } from '../edges/caches/inuse.js';
import { leaseHolders } from '../core/leases.js';
import { executorFor } from './executor.js';
import { purgedEntry, type CycleReport } from '../core/report.js';
import type { LocalContext } from './cycle.js';
import type { AgentState } from '../edges/state.js';

export interface LookWork {
  /** The state the look starts from: ctx.state, or in a dry run a copy holding what was just received. */
  working: AgentState;
  /** Requests applied now without being recorded (a local purge). */
  requests: readonly ValidRequest[];
  purgeAll: boolean;
  /** Where this operation's successful query moves the cursor; null when it made none. */
  cursorMark: number | null;
}

export async function applyLook(ctx: LocalContext, work: LookWork, report: CycleReport): Promise<void> {
  const { settings, logger, clock } = ctx;
  const executor = executorFor(settings);
  noteUnrepresentable(ctx, work);

  const inventory = await listCaches(ctx.sources);
  const unreadable = reportLocations(ctx, inventory.locations, report);
  for (const problem of inventory.problems) {
    if (!unreadable.has(problem.path)) logger.warn(problem, 'not used as a cache, or could not be examined; requests for it stay owed until it can be');
  }
  const now = clock.now();

  const selection = selectCandidates({
    records: work.working.records,
    requests: work.requests,
    caches: inventory.caches,
    locations: inventory.locations,
    firstSeen: work.working.firstSeen,
    pending: work.working.pending,
    skewMarginMs: settings.skewMargin,
    nowMs: now,
    purgeAll: work.purgeAll,
  });
  for (const entry of selection.resolvedPending) {
    logger.info({ cache: entry.name, path: entry.path }, 'pending purge dropped: the directory it was about is gone or was replaced');
    ctx.observed.loggedDeferrals.delete(entry.path);
  }
  for (const kept of selection.newer) {
    logger.debug(
      { cache: kept.name, path: kept.path, created: new Date(kept.createdMs).toISOString(), before: new Date(kept.beforeMs).toISOString() },
      'cache is newer than its purge request; kept',
    );
  }

  const holders = await holdersOfCaches(
    ctx,
    selection.candidates.map((c) => c.cache),
    now,
  );
  const decision = decide<Holder>(selection.candidates, holders);
  const outcomes: Outcome[] = decision.defer.map(({ candidate, holders: h }) => ({ kind: 'deferred', candidate, holders: h }));
  outcomes.push(...(await executor.purge(decision.purge, logger)));
  for (const outcome of outcomes) recordOutcome(ctx, outcome, report, executor.dryRun);

  const settled = settleLook(work.working, {
    caches: inventory.caches,
    locations: inventory.locations,
    outcomes,
    keptPending: selection.keptPending,
    nowMs: now,
    skewMarginMs: settings.skewMargin,
    cursorMark: work.cursorMark,
  });
  for (const record of settled.expiredOwed) {
    logger.warn(
      { cache: record.cacheName, before: new Date(record.beforeMs).toISOString() },
      'a purge request expired at the service while a cache location still could not be read; that location never applied it',
    );
  }
  // The cycle owns every field but those leases change (leases, lastUsed), which may have changed meanwhile.
  await executor.commit(ctx, (current) => ({ ...settled.state, leases: current.leases, lastUsed: current.lastUsed }));
}

/**
 * An unreadable location fails the operation and is listed under `failed`
 * every time; the log says so when it goes away and when it comes back, not
 * on every recheck in between. Returns the paths reported.
 */
function reportLocations(ctx: LocalContext, locations: readonly LocationRead[], report: CycleReport): Set<string> {
  const before = new Map(ctx.observed.locations.map((l) => [l.id, l.instance !== null]));
  const paths = new Set<string>();
  for (const location of locations) {
    const single = ctx.sources.singles.find((s) => locationId({ root: null, ...s }) === location.id);
    const where = single ? single.path : location.id;
    const wasReadable = before.get(location.id);
    if (location.instance === null) {
      paths.add(where);
      report.failed.push({ name: single ? single.name : '(location)', path: where, error: location.error ?? 'cannot be read' });
      if (wasReadable !== false)
        ctx.logger.warn(
          { location: location.id, err: location.error },
          'cannot read a cache location: its caches keep every purge request they owe until it can be read, and each look fails until then',
        );
    } else if (wasReadable === false) {
      ctx.logger.info({ location: location.id }, 'cache location readable again: applying the purge requests it owes');
    }
  }
  ctx.observed.locations = [...locations];
  return paths;
}

/** Who holds each of these caches (processes, locks, live leases), keyed by path; caches nobody holds are absent. */
export async function holdersOfCaches(ctx: LocalContext, caches: readonly { name: string; path: string }[], now: number): Promise<Map<string, Holder[]>> {
  const result = new Map<string, Holder[]>();
  // In-use checks run only for the caches a decision names, never for every cache.
  if (caches.length === 0) return result;
  const probed = await ctx.usage.holdersOf(caches.map((c) => c.path));
  const useLeases = ctx.settings.inUseChecks.includes('leases');
  for (const cache of caches) {
    const list = [...(probed.get(cache.path) ?? [])];
    if (useLeases) list.push(...leaseHolders(ctx.state.leases, cache.name, now));
    if (list.length > 0) result.set(cache.path, list);
  }
  return result;
}

function recordOutcome(ctx: LocalContext, outcome: Outcome, report: CycleReport, dryRun: boolean): void {
  const { logger, observed } = ctx;
  const { cache } = outcome.candidate;
  switch (outcome.kind) {
    case 'purged': {
      report.purged.push(purgedEntry(outcome.candidate));
      if (dryRun) {
        ctx.progress?.(`would purge ${cache.name} (${cache.path})`);
        break;
      }
      const waited = observed.loggedDeferrals.delete(cache.path);
      logger.info(
        { cache: cache.name, path: cache.path, before: new Date(outcome.candidate.beforeMs).toISOString(), afterDeferral: waited || undefined },
        waited ? 'purged cache after its users let go' : 'purged cache',
      );
      ctx.progress?.(`purged ${cache.name} (${cache.path})`);
      break;
    }
    case 'gone':
      observed.loggedDeferrals.delete(cache.path);
      logger.info({ cache: cache.name, path: cache.path }, 'cache disappeared or was replaced before its purge; nothing to do');
      break;
    case 'deferred': {
      const reason = outcome.holders.map((h) => h.detail).join('; ');
      report.deferred.push({ name: cache.name, path: cache.path, reason });
      if (!observed.loggedDeferrals.has(cache.path)) {
        observed.loggedDeferrals.add(cache.path);
        logger.info({ cache: cache.name, path: cache.path, holders: outcome.holders }, `purge deferred: cache in use (${reason})`);
      }
      ctx.progress?.(`deferred ${cache.name}: ${reason}`);
      break;
    }
    case 'failed':
      report.failed.push({ name: cache.name, path: cache.path, error: outcome.error });
      logger.error({ cache: cache.name, path: cache.path, err: outcome.error }, 'purge failed; it will be retried next cycle');
      ctx.progress?.(`failed ${cache.name}: ${outcome.error}`);
      break;
  }
}

function noteUnrepresentable(ctx: LocalContext, work: LookWork): void {
  const singles = new Set(ctx.sources.singles.map((s) => s.name));
  const names = [...work.requests.map((r) => r.cacheName), ...work.working.records.filter((r) => r.appliedAt === null).map((r) => r.cacheName)];
  for (const cacheName of names) {
    if (singles.has(cacheName) || ctx.observed.loggedUnrepresentable.has(cacheName)) continue;
    if (encodeCacheName(cacheName) === null) {
      ctx.observed.loggedUnrepresentable.add(cacheName);
      ctx.logger.warn(
        { cache: cacheName.slice(0, 300) },
        'purge request names a cache that cannot exist on disk (its encoded name would exceed 255 bytes or it is not valid Unicode); ignored',
      );
    }
  }
}

export type { Candidate };
