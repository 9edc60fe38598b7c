/**
 * The decision at the heart of the agent, as pure functions: given the purge
 * requests, the caches on disk, who uses them, the persisted state and the
 * clock, what do we purge, what do we defer, and what do we leave alone?
 *
 * Nothing here reads the filesystem, the network or the clock; the cycle
 * (src/cycle.ts) gathers the facts, calls these functions, and carries out
 * the result. That keeps every rule testable exhaustively, including with
 * property-based tests.
 */

/** A cache directory as observed on disk. */
export interface ObservedCache {
  name: string;
  path: string;
  /** The cache root it lives in; null for a single cache. */
  root: string | null;
  /** `${dev}:${ino}`: identifies this directory, not merely its path. */
  key: string;
  /** Birth time, or null when the filesystem reports none. */
  birthtimeMs: number | null;
}

/** A purge request whose fields passed validation. */
export interface ValidRequest {
  cacheName: string;
  /** `before` on the service's clock, in ms. */
  beforeMs: number;
}

/** A purge decided earlier but not yet carried out. Persisted in the state. */
export interface PendingPurge {
  name: string;
  path: string;
  /**
   * The directory the decision was about. If the path now holds another
   * directory (removed and recreated meanwhile), the new one was created
   * after the decision and is not condemned by it.
   */
  key: string;
  beforeMs: number;
  reason: 'in-use' | 'failed';
  /** When the purge was first decided (ms); for reporting how long it waited. */
  since: number;
  lastError?: string;
}

export interface Candidate {
  cache: ObservedCache;
  /** Creation time used for the decision, or null when unknown. */
  createdMs: number | null;
  /** The latest `before` that condemns this cache. */
  beforeMs: number;
  /** When the purge was first decided: now, or when it was first deferred. */
  since: number;
}

export interface SelectInput {
  requests: readonly ValidRequest[];
  caches: readonly ObservedCache[];
  /** When the agent first saw each directory (by key) that has no birth time. */
  firstSeen: Readonly<Record<string, number>>;
  pending: readonly PendingPurge[];
  skewMarginMs: number;
  nowMs: number;
  /** After too long a gap without a successful query (--on-gap purge-all): purge every cache once. */
  purgeAll?: boolean;
}

export interface SkippedCache {
  name: string;
  path: string;
  createdMs: number;
  beforeMs: number;
}

export interface Selection {
  candidates: Candidate[];
  /** Caches a request names that were created after `before` + margin: they stay. */
  newer: SkippedCache[];
  /** Pending purges whose directory is gone or was replaced: dropped. */
  resolvedPending: PendingPurge[];
}

/**
 * A cache's creation time: its birth time when the filesystem reports one,
 * else when the agent first saw it. Null when neither is known — the cache
 * appeared since the last cycle, so nothing says it is newer than a request.
 */
export function createdAt(cache: ObservedCache, firstSeen: Readonly<Record<string, number>>): number | null {
  return cache.birthtimeMs ?? firstSeen[cache.key] ?? null;
}

/**
 * The purge rule. `before` is on the service's clock and creation on the
 * worker's; a worker clock running up to `skewMarginMs` behind the service's
 * would make a cache created just before the request look newer than it, so
 * the margin errs on the side of purging (as generic-worker does). A cache
 * whose creation time is unknown is treated as older than the request:
 * keeping a possibly-bad cache is the failure users can't see; an extra purge
 * only costs a rebuild.
 */
export function isCondemned(createdMs: number | null, beforeMs: number, skewMarginMs: number): boolean {
  return createdMs === null || createdMs < beforeMs + skewMarginMs;
}

export function selectCandidates(input: SelectInput): Selection {
  const { requests, caches, firstSeen, pending, skewMarginMs, nowMs } = input;

  // The latest `before` per name: a later request condemns at least as much as
  // an earlier one, so it is the only one that matters.
  const latestBefore = new Map<string, number>();
  for (const request of requests) {
    const seen = latestBefore.get(request.cacheName);
    if (seen === undefined || request.beforeMs > seen) latestBefore.set(request.cacheName, request.beforeMs);
  }

  const byPath = new Map<string, ObservedCache>();
  for (const cache of caches) byPath.set(cache.path, cache);

  const chosen = new Map<string, Candidate>();
  const choose = (cache: ObservedCache, createdMs: number | null, beforeMs: number, since: number): void => {
    const existing = chosen.get(cache.path);
    if (!existing) chosen.set(cache.path, { cache, createdMs, beforeMs, since });
    else chosen.set(cache.path, { ...existing, beforeMs: Math.max(existing.beforeMs, beforeMs), since: Math.min(existing.since, since) });
  };

  // Pending purges go first: they apply only while the same directory (same
  // device and inode) is still at that path. Inode numbers are reused once
  // freed, so a cache its user deleted and recreated while its purge was
  // deferred can come back with the same key; a birth time after before +
  // margin proves it is another directory, which this purge never condemned
  // (test/adversarial/faults-fs.test.ts purged such a fresh cache). Without a
  // birth time there is no telling, and the purge applies as before.
  const resolvedPending: PendingPurge[] = [];
  for (const entry of pending) {
    const cache = byPath.get(entry.path);
    if (cache && cache.key === entry.key && cache.name === entry.name && isCondemned(cache.birthtimeMs, entry.beforeMs, skewMarginMs)) {
      choose(cache, createdAt(cache, firstSeen), entry.beforeMs, entry.since);
    } else {
      resolvedPending.push(entry);
    }
  }

  const newer: SkippedCache[] = [];
  for (const cache of caches) {
    const createdMs = createdAt(cache, firstSeen);
    if (input.purgeAll) {
      choose(cache, createdMs, nowMs, nowMs);
      continue;
    }
    const beforeMs = latestBefore.get(cache.name);
    if (beforeMs === undefined) continue;
    if (isCondemned(createdMs, beforeMs, skewMarginMs)) choose(cache, createdMs, beforeMs, nowMs);
    else newer.push({ name: cache.name, path: cache.path, createdMs: createdMs!, beforeMs });
  }

  return { candidates: [...chosen.values()], newer, resolvedPending };
}

/** Who holds a cache: a lock, a process, or a lease (see src/caches/inuse.ts and src/leases.ts). */
export interface HolderLike {
  detail: string;
}

export interface Decision<H extends HolderLike = HolderLike> {
  purge: Candidate[];
  defer: { candidate: Candidate; holders: H[] }[];
}

/** Split candidates by use: a cache anyone holds is deferred, never pulled from under its user. */
export function decide<H extends HolderLike>(candidates: readonly Candidate[], holders: ReadonlyMap<string, readonly H[]>): Decision<H> {
  const purge: Candidate[] = [];
  const defer: { candidate: Candidate; holders: H[] }[] = [];
  for (const candidate of candidates) {
    const using = holders.get(candidate.cache.path) ?? [];
    if (using.length > 0) defer.push({ candidate, holders: [...using] });
    else purge.push(candidate);
  }
  return { purge, defer };
}

export type Outcome =
  | { kind: 'purged'; candidate: Candidate }
  | { kind: 'gone'; candidate: Candidate }
  | { kind: 'deferred'; candidate: Candidate; holders: readonly HolderLike[] }
  | { kind: 'failed'; candidate: Candidate; error: string };

/**
 * The pending list after a cycle: every deferred or failed purge stays (keyed
 * by the directory it was about) so it is retried — this is what lets the
 * cursor move on without losing a request that could not be applied yet.
 */
export function nextPending(outcomes: readonly Outcome[]): PendingPurge[] {
  const pending: PendingPurge[] = [];
  for (const outcome of outcomes) {
    if (outcome.kind !== 'deferred' && outcome.kind !== 'failed') continue;
    const { cache, beforeMs, since } = outcome.candidate;
    const entry: PendingPurge = {
      name: cache.name,
      path: cache.path,
      key: cache.key,
      beforeMs,
      reason: outcome.kind === 'deferred' ? 'in-use' : 'failed',
      since,
    };
    if (outcome.kind === 'failed') entry.lastError = outcome.error;
    pending.push(entry);
  }
  return pending;
}

/**
 * First-seen times for directories without a birth time: keep what is known
 * for directories still present, record `now` for new ones, forget the rest
 * (so the map never outgrows the caches on disk). Directories with a birth
 * time need no entry.
 */
export function nextFirstSeen(
  previous: Readonly<Record<string, number>>,
  caches: readonly ObservedCache[],
  nowMs: number,
): Record<string, number> {
  const next: Record<string, number> = {};
  for (const cache of caches) {
    if (cache.birthtimeMs !== null) continue;
    next[cache.key] = previous[cache.key] ?? nowMs;
  }
  return next;
}

/**
 * `since` for the next query: the start of the last successful query, minus
 * the skew margin. The service compares `before >= since` on its own clock;
 * reaching back by the margin covers a worker clock that runs ahead of the
 * service's, so a request filed just before our last query is not skipped.
 * Null on a first query: the service then returns everything it still keeps.
 */
export function sinceFor(cursorMs: number | null, skewMarginMs: number, nowMs?: number): number | null {
  if (cursorMs === null) return null;
  // A cursor ahead of the wall clock was set while the clock ran fast, and
  // queries made then asked for the service's future: requests filed meanwhile
  // were never returned. Only a full query is sure to see them again
  // (test/adversarial/faults-time.test.ts).
  if (nowMs !== undefined && nowMs < cursorMs) return null;
  return cursorMs - skewMarginMs;
}

/**
 * The time a successful query marks as seen. Normally its start on our clock;
 * but when the service's Date header shows our clock running ahead of the
 * service's by more than the margin, the service's time, so that the next
 * `since` (compared on the service's clock) does not skip requests filed in
 * between. Never later than our own start, so a wrong Date header can only
 * make the agent ask for more, never for less.
 */
export function queryMark(queryStartMs: number, clockOffsetMs: number | null, skewMarginMs: number): number {
  return clockOffsetMs !== null && clockOffsetMs < -skewMarginMs ? queryStartMs + clockOffsetMs : queryStartMs;
}

/**
 * The cursor after a successful, applied query. It never moves backwards: if
 * the wall clock jumped back, the older cursor still marks what was seen.
 */
export function advanceCursor(cursorMs: number | null, queryStartMs: number): number {
  return cursorMs === null ? queryStartMs : Math.max(cursorMs, queryStartMs);
}

/** True when requests may have expired unseen: the last success is older than the gap allowed (requests live ~1 day). */
export function gapExceeded(cursorMs: number | null, nowMs: number, maxGapMs: number): boolean {
  return cursorMs !== null && maxGapMs > 0 && nowMs - cursorMs > maxGapMs;
}

/**
 * The service clock's offset from ours, from its Date header. The header has
 * one-second resolution and was stamped somewhere between our request and its
 * answer, so take the midpoint; the estimate is good to about a second plus
 * the round trip, far inside the 5-minute margin it is compared with.
 */
export function clockOffsetMs(serverDateMs: number, requestStartMs: number, responseEndMs: number): number {
  const midpoint = (requestStartMs + responseEndMs) / 2;
  // The Date header truncates to the second: its true time is on average 0.5s later.
  return Math.round(serverDateMs + 500 - midpoint);
}
