/**
 * The purge rule: does a purge request condemn a cache directory?
 *
 * Three clocks meet here. `before` is on the purge-cache service's clock; a
 * directory's creation time and the moment the agent received the request are
 * on the worker's. The rule compares like with like wherever it can, and errs
 * on the side of purging where it cannot.
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

/**
 * A cache's creation time: its birth time when the filesystem reports one,
 * else when the agent first saw it. Null when neither is known — the cache
 * appeared since the last look, so nothing says it is newer than a request.
 */
export function createdAt(cache: Pick<ObservedCache, 'birthtimeMs' | 'key'>, firstSeen: Readonly<Record<string, number>>): number | null {
  return cache.birthtimeMs ?? firstSeen[cache.key] ?? null;
}

/**
 * The margin rule. A worker clock running up to `skewMarginMs` behind the
 * service's would make a cache created just before the request look newer
 * than it, so the margin errs on the side of purging (as generic-worker
 * does). A cache whose creation time is unknown is treated as older than the
 * request: keeping a possibly-bad cache is the failure users can't see; an
 * extra purge only costs a rebuild.
 */
export function isCondemned(createdMs: number | null, beforeMs: number, skewMarginMs: number): boolean {
  return createdMs === null || createdMs < beforeMs + skewMarginMs;
}

/**
 * The margin rule, bounded by what the agent knew. A directory created after
 * the agent received a request was made after the request existed — typically
 * the next task warming the cache the request just purged — so that request
 * does not condemn it, even inside the skew margin. Both times are on the
 * worker's clock, so no margin is needed between them; but a birth time later
 * than `nowMs` was stamped by a clock that has since been set back, and says
 * nothing about the order of the two, so it earns no such exemption.
 */
export function requestCondemns(createdMs: number | null, request: { beforeMs: number; receivedAt: number }, skewMarginMs: number, nowMs: number): boolean {
  if (!isCondemned(createdMs, request.beforeMs, skewMarginMs)) return false;
  return createdMs === null || createdMs <= request.receivedAt || createdMs > nowMs;
}
