/** What carries over from one look at the disk to the next: deferred purges and first-seen times. */
import type { ObservedCache } from './rule.js';
import type { Outcome, PendingPurge } from './judge.js';

/**
 * The pending list after a look: every deferred or failed purge stays (keyed
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
    if (outcome.candidate.locationTag !== undefined) entry.location = outcome.candidate.locationTag;
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
export function nextFirstSeen(previous: Readonly<Record<string, number>>, caches: readonly ObservedCache[], nowMs: number): Record<string, number> {
  const next: Record<string, number> = {};
  for (const cache of caches) {
    if (cache.birthtimeMs !== null) continue;
    next[cache.key] = previous[cache.key] ?? nowMs;
  }
  return next;
}

/** The caches still on disk after the outcomes: purged and vanished ones are gone. */
export function survivors<C extends ObservedCache>(caches: readonly C[], outcomes: readonly Outcome[]): C[] {
  const removed = new Set(outcomes.filter((o) => o.kind === 'purged' || o.kind === 'gone').map((o) => o.candidate.cache.path));
  return removed.size === 0 ? [...caches] : caches.filter((c) => !removed.has(c.path));
}
