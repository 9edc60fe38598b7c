/**
 * One sync: fetch → record → look → persist.
 *
 * Ordering is what makes the agent never miss a purge and never repeat one:
 * 1. The query's start time is taken before its first attempt, so retries
 *    don't move it and the next `since` covers everything filed meanwhile.
 * 2. New requests are recorded, with the time their answer arrived, and saved
 *    before anything acts on them: after a crash they are not received anew,
 *    so a cache created after they arrived is never purged for them.
 * 3. Requests are applied — purged, recorded as pending, or left owed by a
 *    location that could not be read — before the state is saved with the new
 *    cursor. A crash anywhere before that save leaves the old cursor, and the
 *    next cycle asks again.
 * 4. Renames happen before the state save; trash deletion after it. A crash
 *    after a rename leaves the cache in the trash, which the next start empties.
 */
import type { Settings } from '../config/index.js';
import type { Clock } from '../edges/clock.js';
import type { Logger } from '../log.js';
import { workerPoolId, type WorkerPool } from '../core/model.js';
import { errorMessage } from '../errors.js';
import { faultPoint } from '../fault.js';
import type { StateStore, AgentState } from '../edges/state.js';
import { sinceFor, queryMark, gapExceeded, clockOffsetMs, singleLocationId, type CursorIdentity } from '../core/cursor.js';
import { receiveAnswer, reconcileIdentity, recordViews } from '../core/contract.js';
import { recordKey, type LocationRead, type ValidRequest } from '../core/records.js';
import type { CacheSources } from '../edges/caches/inventory.js';
import type { PurgeCacheClient } from '../edges/upstream/client.js';
import type { UsageProbe } from '../edges/caches/inuse.js';
import { formatDuration } from '../core/duration.js';
import { evict } from './eviction.js';
import { executorFor } from './executor.js';
import { applyLook } from './look.js';
import { localReport, type CycleReport } from '../core/report.js';

export type { CycleReport, PurgedEntry, FailedEntry, DeferredEntry } from '../core/report.js';

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
  progress?: ((line: string) => void) | undefined;
  /** Filled in by cycles, read by status and metrics. */
  observed: Observations;
  /** The state write in progress (changeState): writes never overlap. */
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
  /** How each cache location read at the last look; empty before the first. */
  locations: LocationRead[];
}

export function newObservations(): Observations {
  return { clockOffsetMs: null, loggedDeferrals: new Set(), loggedUnrepresentable: new Set(), locations: [] };
}

/** What the cursor is taken for, from the configuration: the service, the pool, the locations. */
export function cursorIdentity(settings: Settings, pool: WorkerPool, sources: CacheSources): CursorIdentity {
  // The proxy decides which service answers, so it is the service's identity when set (the client prefers it too).
  const service = settings.proxyUrl ? `proxy:${settings.proxyUrl}` : (settings.rootUrl ?? '');
  const locations = [...sources.roots, ...sources.singles.map((s) => singleLocationId(s.name, s.path))].sort();
  return { service, workerPool: workerPoolId(pool), locations };
}

/** Bind the state's cursor to this configuration at start: a cursor taken for something else is dropped, loudly. */
export function adoptIdentity(ctx: CycleContext): void {
  const { state, changes } = reconcileIdentity(ctx.state, cursorIdentity(ctx.settings, ctx.pool, ctx.sources));
  ctx.state = state;
  if (changes.length > 0) {
    ctx.logger.warn(
      { changes },
      `the cursor was taken for another configuration (${changes.join('; ')}): the next query asks for every open purge request (no since)`,
    );
  }
}

/** The location ids of the configuration, for reporting what a request still waits for. */
export function locationIds(sources: CacheSources): string[] {
  return [...sources.roots, ...sources.singles.map((s) => singleLocationId(s.name, s.path))];
}

/** One full cycle against the service. Resolves with the report; the report's `error` is set when the query failed. */
export async function runCycle(ctx: CycleContext): Promise<CycleReport> {
  const { settings, clock, logger } = ctx;
  const executor = executorFor(settings);
  const queryStart = clock.now();
  const sinceMs = sinceFor(ctx.state.cursor, settings.skewMargin, queryStart);
  const report: CycleReport = { ...localReport(queryStart, executor.dryRun), since: sinceMs === null ? null : new Date(sinceMs).toISOString() };
  noteClockJump(ctx, queryStart);

  const cursor = ctx.state.cursor;
  const purgeAll = cursor !== null && gapExceeded(cursor, queryStart, settings.maxGap) && reportGap(ctx, cursor, queryStart);

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
    logger.error(
      { err: report.error, since: report.since },
      'purge-cache query failed; nothing purged on new data, and the cursor holds so no request is missed',
    );
    ctx.progress?.(`query failed: ${report.error}`);
    return report;
  }
  const receivedAt = clock.now();
  ctx.progress?.(`queried purge requests since ${report.since ?? '(beginning)'}: ${requests.length} for ${ctx.pool.provisionerId}/${ctx.pool.workerType}`);
  await faultPoint('after-query');

  const received = receiveAnswer(ctx.state, requests, receivedAt);
  report.newRequests = received.added.length;
  if (received.added.length > 0) {
    await executor.commit(ctx, (current) => receiveAnswer(current, requests, receivedAt).state);
    await faultPoint('after-record');
  }
  const working = executor.dryRun ? received.state : ctx.state;
  // The cursor moves only with the look's save: every request of this query is then purged, pending, or owed.
  // On the service's clock when ours runs ahead of it (queryMark).
  const cursorMark = queryMark(queryStart, offset, settings.skewMargin);
  await applyLook(ctx, { working, requests: [], purgeAll, cursorMark }, report);

  // What an operator wants from a cycle's records: what arrived now, and what a location still owes.
  const final = executor.dryRun ? received.state : ctx.state;
  const fresh = new Set(received.added.map(recordKey));
  const shown = final.records.filter((r) => r.appliedAt === null || fresh.has(recordKey(r)));
  report.records = recordViews({ records: shown, pending: final.pending }, locationIds(ctx.sources));
  // Eviction comes after the purges: space a purge already frees is not evicted for.
  await evict(ctx, report);
  return report;
}

/**
 * Purge the named local caches now, without asking the service (the local
 * API's DELETE /v1/caches/{name}). The same safety rules as a purge request:
 * it is planned as a request for each name with `before` = now, received now,
 * in-use caches are deferred (and recorded as pending), and pending purges and
 * owed requests are applied on the way, as a recheck does.
 */
export async function runPurgeNow(ctx: LocalContext, names: readonly string[]): Promise<CycleReport> {
  const now = ctx.clock.now();
  const report = localReport(now, ctx.settings.dryRun);
  await applyLook(ctx, { working: ctx.state, requests: names.map((cacheName) => ({ cacheName, beforeMs: now })), purgeAll: false, cursorMark: null }, report);
  for (const name of names) {
    const touched = [...report.purged, ...report.failed, ...report.deferred].some((e) => e.name === name);
    if (!touched) ctx.progress?.(`nothing to purge: no cache named ${JSON.stringify(name)} is on this worker now`);
  }
  return report;
}

/**
 * Retry pending purges, and apply requests a location owes since it could
 * not be read, without asking the service (the daemon does this every
 * --recheck): a deferred cache is purged soon after its user lets go, and a
 * disk mounted late is caught up within seconds.
 */
export async function runRecheck(ctx: LocalContext): Promise<CycleReport> {
  const report = localReport(ctx.clock.now(), ctx.settings.dryRun);
  await applyLook(ctx, { working: ctx.state, requests: [], purgeAll: false, cursorMark: null }, report);
  return report;
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
    ctx.logger.warn(
      { now: new Date(now).toISOString(), latestSeen: new Date(latest).toISOString() },
      `the wall clock jumped back by ${formatDuration(Math.round((latest - now) / 1000) * 1000)}; the cursor stays where it was`,
    );
  }
  const cursor = ctx.state.cursor;
  if (cursor !== null && now < cursor) {
    // sinceFor: queries made while the clock ran ahead may have skipped requests.
    ctx.logger.warn(
      { now: new Date(now).toISOString(), cursor: new Date(cursor).toISOString() },
      'the cursor is ahead of the wall clock (it ran fast): asking for every open purge request (no since) so none is missed',
    );
  }
}

function reportGap(ctx: CycleContext, cursor: number, now: number): boolean {
  const last = new Date(cursor).toISOString();
  const purgeAll = ctx.settings.onGap === 'purge-all';
  ctx.logger.warn(
    { lastSuccessfulQuery: last, maxGap: formatDuration(ctx.settings.maxGap), onGap: ctx.settings.onGap, now: new Date(now).toISOString() },
    purgeAll
      ? 'no successful query for longer than --max-gap: purge requests may have expired unseen, so every cache is purged once (--on-gap purge-all)'
      : 'no successful query for longer than --max-gap: purge requests may have expired unseen (use --on-gap purge-all to purge every cache once in this case)',
  );
  return purgeAll;
}
