/**
 * One sync: fetch → plan → apply → persist.
 *
 * Ordering is what makes the agent never miss a purge:
 * 1. The query's start time is taken before its first attempt, so retries
 *    don't move it and the next `since` covers everything filed meanwhile.
 * 2. Requests are applied — purged, or recorded as pending — before the state
 *    is saved with the new cursor. A crash anywhere before that save leaves the
 *    old cursor, and the next cycle asks again.
 * 3. Renames happen before the state save; trash deletion after it. A crash
 *    after a rename leaves the cache in the trash, which the next start empties.
 */
import type { Settings } from './config/index.js';
import type { Clock } from './clock.js';
import type { Logger } from './log.js';
import type { WorkerPool } from './model.js';
import { errorMessage } from './errors.js';
import { faultPoint } from './fault.js';
import type { StateStore, AgentState } from './state.js';
import {
  selectCandidates,
  decide,
  nextPending,
  nextFirstSeen,
  sinceFor,
  queryMark,
  advanceCursor,
  gapExceeded,
  clockOffsetMs,
  type Candidate,
  type Outcome,
  type ValidRequest,
  type HolderLike,
} from './plan.js';
import { listCaches, type CacheSources, type CacheDir } from './caches/inventory.js';
import { encodeCacheName } from './caches/names.js';
import { applyPurges } from './purge.js';
import type { PurgeCacheClient } from './upstream/client.js';
import type { UsageProbe, Holder } from './caches/inuse.js';
import { leaseHolders } from './leases.js';
import { formatDuration } from './duration.js';
import { evictionLimits, runEviction, type EvictedEntry } from './eviction.js';

export interface PurgedEntry {
  name: string;
  path: string;
  created: string | null;
  before: string;
}
export interface FailedEntry {
  name: string;
  path: string;
  error: string;
}
export interface DeferredEntry {
  name: string;
  path: string;
  reason: string;
}

/** The report of one cycle; `once --json` prints it, and task results carry it. */
export interface CycleReport {
  since: string | null;
  queriedAt: string;
  requests: number;
  purged: PurgedEntry[];
  failed: FailedEntry[];
  deferred: DeferredEntry[];
  /** Caches evicted for space or age after the purges (src/eviction.ts); with --dry-run, what would be. */
  evicted: EvictedEntry[];
  dryRun?: boolean;
  /** Set when the service could not be queried; nothing was purged on new data and the cursor held. */
  error?: string;
}

/** What work on the local caches needs: no service (rechecks, local purges, eviction). */
export interface LocalContext {
  settings: Settings;
  sources: CacheSources;
  usage: UsageProbe;
  clock: Clock;
  logger: Logger;
  /** Null in a dry run: the state is read, never locked or written. */
  store: StateStore | null;
  /** The state as read; in a dry run the only copy. */
  state: AgentState;
  /** Human-readable progress, for task output. */
  progress?: (line: string) => void;
  /** Filled in by cycles, read by status and metrics. */
  observed: Observations;
  /** The state write in progress (saveState): writes never overlap. */
  writes?: Promise<void>;
}

/** A cycle also asks the service. */
export interface CycleContext extends LocalContext {
  pool: WorkerPool;
  client: PurgeCacheClient;
}

export interface Observations {
  clockOffsetMs: number | null;
  /** Pending purges already logged as deferred, so each deferral is logged once. */
  loggedDeferrals: Set<string>;
  /** Request names already logged as unrepresentable on disk. */
  loggedUnrepresentable: Set<string>;
}

export function newObservations(): Observations {
  return { clockOffsetMs: null, loggedDeferrals: new Set(), loggedUnrepresentable: new Set() };
}

export class CycleFailedError extends Error {
  readonly code = 'PCA_CYCLE_FAILED';
  constructor(
    message: string,
    readonly report: CycleReport,
  ) {
    super(message);
  }
}

/** The report of work that asks the service nothing (a recheck, a local purge, an eviction pass). */
export function localReport(nowMs: number): CycleReport {
  return { since: null, queriedAt: new Date(nowMs).toISOString(), requests: 0, purged: [], failed: [], deferred: [], evicted: [] };
}

/** One full cycle against the service. Resolves with the report; the report's `error` is set when the query failed. */
export async function runCycle(ctx: CycleContext): Promise<CycleReport> {
  const { settings, clock, logger } = ctx;
  const queryStart = clock.now();
  const sinceMs = sinceFor(ctx.state.cursor, settings.skewMargin, queryStart);
  const report: CycleReport = {
    since: sinceMs === null ? null : new Date(sinceMs).toISOString(),
    queriedAt: new Date(queryStart).toISOString(),
    requests: 0,
    purged: [],
    failed: [],
    deferred: [],
    evicted: [],
  };
  if (settings.dryRun) report.dryRun = true;
  noteClockJump(ctx, queryStart);

  const purgeAll = gapExceeded(ctx.state.cursor, queryStart, settings.maxGap) && reportGap(ctx, queryStart);

  let requests: ValidRequest[];
  let offset: number | null = null;
  try {
    const monoStart = clock.monotonic();
    const result = await ctx.client.purgeRequests(ctx.pool, sinceMs === null ? undefined : new Date(sinceMs));
    const elapsed = clock.monotonic() - monoStart;
    if (result.serverDate !== null) noteClockOffset(ctx, (offset = clockOffsetMs(result.serverDate, queryStart, queryStart + elapsed)));
    requests = result.requests.map((r) => ({ cacheName: r.cacheName, beforeMs: Date.parse(r.before) }));
    report.requests = requests.length;
  } catch (err) {
    report.error = errorMessage(err);
    logger.error({ err: report.error, since: report.since }, 'purge-cache query failed; nothing purged on new data, and the cursor holds so no request is missed');
    ctx.progress?.(`query failed: ${report.error}`);
    return report;
  }
  ctx.progress?.(`queried purge requests since ${report.since ?? '(beginning)'}: ${requests.length} for ${ctx.pool.provisionerId}/${ctx.pool.workerType}`);
  await faultPoint('after-query');

  await applyRequests(ctx, requests, report, { purgeAll });

  if (!settings.dryRun && ctx.store) {
    // The cursor moves only now: every request of this query is purged or pending.
    // On the service's clock when ours runs ahead of it (queryMark).
    const state = { ...ctx.state, cursor: advanceCursor(ctx.state.cursor, queryMark(queryStart, offset, settings.skewMargin)) };
    await persist(ctx, state);
  }
  // Eviction comes after the purges: space a purge already frees is not evicted for.
  await evict(ctx, report);
  return report;
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
  for (const entry of result.evicted) ctx.progress?.(`${ctx.settings.dryRun ? 'would evict' : 'evicted'} ${entry.name} (${entry.reason}, ${entry.bytes} bytes)`);
  for (const failure of result.failed) report.failed.push({ ...failure, error: `eviction failed: ${failure.error}` });
}

/**
 * Purge the named local caches now, without asking the service (the local
 * API's DELETE /v1/caches/{name}). The same safety rules as a purge request:
 * it is planned as a request for each name with `before` = now, in-use caches
 * are deferred (and recorded as pending), and pending purges are retried on
 * the way, as a recheck does.
 */
export async function runPurgeNow(ctx: LocalContext, names: readonly string[]): Promise<CycleReport> {
  const now = ctx.clock.now();
  const report: CycleReport = localReport(now);
  if (ctx.settings.dryRun) report.dryRun = true;
  await applyRequests(ctx, names.map((cacheName) => ({ cacheName, beforeMs: now })), report, { purgeAll: false });
  for (const name of names) {
    const touched = [...report.purged, ...report.failed, ...report.deferred].some((e) => e.name === name);
    if (!touched) ctx.progress?.(`nothing to purge: no cache named ${JSON.stringify(name)} is on this worker now`);
  }
  if (!ctx.settings.dryRun && ctx.store) await persist(ctx, ctx.state);
  return report;
}

/**
 * Retry pending purges without asking the service (the daemon does this every
 * --recheck): a deferred cache is purged soon after its user lets go.
 */
export async function runRecheck(ctx: LocalContext): Promise<CycleReport> {
  const now = ctx.clock.now();
  const report: CycleReport = localReport(now);
  await applyRequests(ctx, [], report, { purgeAll: false });
  if (!ctx.settings.dryRun && ctx.store) await persist(ctx, ctx.state);
  return report;
}

async function applyRequests(ctx: LocalContext, requests: ValidRequest[], report: CycleReport, opts: { purgeAll: boolean }): Promise<void> {
  const { settings, logger, clock } = ctx;
  noteUnrepresentable(ctx, requests);

  const inventory = await listCaches(ctx.sources);
  for (const problem of inventory.problems) logger.warn(problem, 'cannot read a cache location; its caches are skipped this cycle');
  const now = clock.now();

  const selection = selectCandidates({
    requests,
    caches: inventory.caches,
    firstSeen: ctx.state.firstSeen,
    pending: ctx.state.pending,
    skewMarginMs: settings.skewMargin,
    nowMs: now,
    purgeAll: opts.purgeAll,
  });
  for (const entry of selection.resolvedPending) {
    logger.info({ cache: entry.name, path: entry.path }, 'pending purge dropped: the directory it was about is gone or was replaced');
    ctx.observed.loggedDeferrals.delete(entry.path);
  }
  for (const kept of selection.newer) {
    logger.debug({ cache: kept.name, path: kept.path, created: new Date(kept.createdMs).toISOString(), before: new Date(kept.beforeMs).toISOString() }, 'cache is newer than its purge request; kept');
  }

  const holders = await holdersFor(ctx, selection.candidates, now);
  const decision = decide<Holder>(selection.candidates, holders);

  const outcomes: Outcome[] = decision.defer.map(({ candidate, holders: h }) => ({ kind: 'deferred', candidate, holders: h }));
  if (settings.dryRun) {
    for (const candidate of decision.purge) {
      report.purged.push(purgedEntry(candidate));
      logger.info({ cache: candidate.cache.name, path: candidate.cache.path, dryRun: true }, 'would purge');
      ctx.progress?.(`would purge ${candidate.cache.name} (${candidate.cache.path})`);
    }
  } else {
    outcomes.push(...(await applyPurges(decision.purge, { logger })));
  }

  for (const outcome of outcomes) recordOutcome(ctx, outcome, report);

  if (!settings.dryRun) {
    ctx.state = {
      ...ctx.state,
      pending: nextPending(outcomes),
      firstSeen: nextFirstSeen(ctx.state.firstSeen, survivors(inventory.caches, outcomes), now),
      latestClock: Math.max(ctx.state.latestClock ?? now, now),
    };
  }
}

function survivors(caches: CacheDir[], outcomes: Outcome[]): CacheDir[] {
  const removed = new Set(outcomes.filter((o) => o.kind === 'purged' || o.kind === 'gone').map((o) => o.candidate.cache.path));
  return removed.size === 0 ? caches : caches.filter((c) => !removed.has(c.path));
}

async function holdersFor(ctx: LocalContext, candidates: Candidate[], now: number): Promise<Map<string, Holder[]>> {
  // In-use checks run only for the caches a decision names, never for every cache.
  return holdersOfCaches(ctx, candidates.map((c) => c.cache), now);
}

/** Who holds each of these caches (processes, locks, live leases), keyed by path; caches nobody holds are absent. */
export async function holdersOfCaches(ctx: LocalContext, caches: readonly { name: string; path: string }[], now: number): Promise<Map<string, Holder[]>> {
  const result = new Map<string, Holder[]>();
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

function purgedEntry(candidate: Candidate): PurgedEntry {
  return {
    name: candidate.cache.name,
    path: candidate.cache.path,
    created: candidate.createdMs === null ? null : new Date(candidate.createdMs).toISOString(),
    before: new Date(candidate.beforeMs).toISOString(),
  };
}

function recordOutcome(ctx: LocalContext, outcome: Outcome, report: CycleReport): void {
  const { logger, observed } = ctx;
  const { cache } = outcome.candidate;
  switch (outcome.kind) {
    case 'purged': {
      report.purged.push(purgedEntry(outcome.candidate));
      const waited = observed.loggedDeferrals.delete(cache.path);
      logger.info({ cache: cache.name, path: cache.path, before: new Date(outcome.candidate.beforeMs).toISOString(), afterDeferral: waited || undefined }, waited ? 'purged cache after its users let go' : 'purged cache');
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

/** A cycle's save: it owns every field but those leases change (leases, lastUsed), which may have changed meanwhile (updateState). */
async function persist(ctx: LocalContext, state: AgentState): Promise<void> {
  await saveState(ctx, (current) => ({ ...state, leases: current.leases, lastUsed: current.lastUsed }));
}

/**
 * Change and save the state, one write at a time. Leases change outside
 * cycles (the local API, `lease`, exec), so each write applies its change to
 * the latest state: a cycle's save never drops a lease taken meanwhile, and two
 * writers never race on the state file. In a dry run (no store) only memory changes.
 */
export function saveState(ctx: LocalContext, change: (current: AgentState) => AgentState): Promise<void> {
  const run = (ctx.writes ?? Promise.resolve()).then(async () => {
    const next = change(ctx.state);
    if (ctx.store) await ctx.store.save(next);
    ctx.state = next;
  });
  ctx.writes = run.catch(() => {});
  return run;
}

function noteUnrepresentable(ctx: LocalContext, requests: ValidRequest[]): void {
  const singles = new Set(ctx.sources.singles.map((s) => s.name));
  for (const { cacheName } of requests) {
    if (singles.has(cacheName) || ctx.observed.loggedUnrepresentable.has(cacheName)) continue;
    if (encodeCacheName(cacheName) === null) {
      ctx.observed.loggedUnrepresentable.add(cacheName);
      ctx.logger.warn({ cache: cacheName.slice(0, 300) }, 'purge request names a cache that cannot exist on disk (its encoded name would exceed 255 bytes or it is not valid Unicode); ignored');
    }
  }
}

function noteClockOffset(ctx: CycleContext, offset: number): void {
  ctx.observed.clockOffsetMs = offset;
  if (Math.abs(offset) > ctx.settings.skewMargin) {
    ctx.logger.warn(
      { clockOffsetMs: offset, skewMargin: formatDuration(ctx.settings.skewMargin) },
      "this worker's clock differs from the purge-cache service's by more than --skew-margin; purges may miss caches created just before a request — fix the clock (NTP) or raise --skew-margin",
    );
  }
}

/** The cursor never moves backwards (advanceCursor); a wall clock that jumps back is worth a loud line. */
function noteClockJump(ctx: CycleContext, now: number): void {
  const latest = ctx.state.latestClock;
  if (latest !== null && now < latest - 60_000) {
    ctx.logger.warn({ now: new Date(now).toISOString(), latestSeen: new Date(latest).toISOString() }, `the wall clock jumped back by ${formatDuration(Math.round((latest - now) / 1000) * 1000)}; the cursor stays where it was`);
  }
  const cursor = ctx.state.cursor;
  if (cursor !== null && now < cursor) {
    // sinceFor: queries made while the clock ran ahead may have skipped requests.
    ctx.logger.warn({ now: new Date(now).toISOString(), cursor: new Date(cursor).toISOString() }, 'the cursor is ahead of the wall clock (it ran fast): asking for every open purge request (no since) so none is missed');
  }
}

function reportGap(ctx: CycleContext, now: number): boolean {
  const last = new Date(ctx.state.cursor!).toISOString();
  const purgeAll = ctx.settings.onGap === 'purge-all';
  ctx.logger.warn(
    { lastSuccessfulQuery: last, maxGap: formatDuration(ctx.settings.maxGap), onGap: ctx.settings.onGap, now: new Date(now).toISOString() },
    purgeAll
      ? 'no successful query for longer than --max-gap: purge requests may have expired unseen, so every cache is purged once (--on-gap purge-all)'
      : 'no successful query for longer than --max-gap: purge requests may have expired unseen (use --on-gap purge-all to purge every cache once in this case)',
  );
  return purgeAll;
}

export type { HolderLike };
