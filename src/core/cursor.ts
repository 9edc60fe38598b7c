/**
 * Where the next query starts (`since`), and what the cursor was taken for.
 *
 * The service compares `before >= since` on its own clock and keeps a request
 * for a day or two after its last POST, so the cursor's only job is to keep
 * answers short: a full query (no `since`) always finds every request that
 * still matters. Every rule here therefore errs towards asking for more.
 */

/** What a cursor was taken for: the service, the worker pool and the cache locations. */
export interface CursorIdentity {
  /** The root URL, or `proxy:<url>` when queries go through the taskcluster-proxy. */
  service: string;
  workerPool: string;
  /** Location ids (see locationId), sorted. */
  locations: string[];
}

/** The id of a cache location: a root's resolved path, or `name=path` for a single cache. */
export function locationId(cache: { root: string | null; name: string; path: string }): string {
  return cache.root ?? singleLocationId(cache.name, cache.path);
}

export function singleLocationId(name: string, cachePath: string): string {
  return `${name}=${cachePath}`;
}

/** Which parts of the identity differ, in words for the log; empty when the cursor still applies. */
export function identityChanges(stored: CursorIdentity | null, current: CursorIdentity): string[] {
  if (stored === null) return ['no record of what the cursor was taken for (a new state, or one written by an older version)'];
  const changes: string[] = [];
  if (stored.service !== current.service) changes.push(`the service changed from ${stored.service} to ${current.service}`);
  if (stored.workerPool !== current.workerPool) changes.push(`the worker pool changed from ${stored.workerPool} to ${current.workerPool}`);
  const before = new Set(stored.locations);
  const now = new Set(current.locations);
  const added = current.locations.filter((l) => !before.has(l));
  const removed = stored.locations.filter((l) => !now.has(l));
  if (added.length > 0) changes.push(`cache locations added: ${added.join(', ')}`);
  if (removed.length > 0) changes.push(`cache locations removed: ${removed.join(', ')}`);
  return changes;
}

/**
 * `since` for the next query: the start of the last successful query, minus
 * the skew margin. Reaching back by the margin covers a worker clock that runs
 * ahead of the service's, so a request filed just before our last query is
 * not skipped. Null asks for everything the service still keeps.
 */
export function sinceFor(cursorMs: number | null, skewMarginMs: number, nowMs?: number): number | null {
  if (cursorMs === null) return null;
  // A cursor ahead of the wall clock was set while the clock ran fast, and
  // queries made then asked for the service's future: requests filed meanwhile
  // were never returned. Only a full query is sure to see them again.
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
  // The estimate is good to about a second (the header's resolution, plus the round trip), so a clock ahead by
  // just under the margin may really be just over it: trust the service's time from a little before the margin.
  return clockOffsetMs !== null && clockOffsetMs < -(skewMarginMs - OFFSET_ERROR_MS) ? queryStartMs + clockOffsetMs : queryStartMs;
}

/** How far the Date-header estimate of the clock offset can be off: a second of resolution, and the round trip. */
const OFFSET_ERROR_MS = 2_000;

/**
 * The cursor after a successful query. It never moves backwards: if the wall
 * clock jumped back, the older cursor still marks what was seen.
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
