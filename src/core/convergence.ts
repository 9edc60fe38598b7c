/**
 * Where this worker stands on each cache name's latest purge request: the
 * per-worker half of fleet convergence. Summed over workers (PromQL in the
 * README), an operator who files a purge sees how many workers applied it
 * and how many still hold it pending, and why.
 */
import type { PendingPurge } from './judge.js';
import type { RequestRecord } from './records.js';
import { tagLocation } from './records.js';

export type RequestState = 'applied' | 'in-use' | 'failed' | 'unreadable';

export interface RequestStanding {
  cacheName: string;
  beforeMs: number;
  state: RequestState;
}

/**
 * Series are few by construction: one per cache name, for its latest request
 * only, and only while the service can still return it (records are pruned
 * after that). `limit` bounds them further against a flood of names: the
 * latest requests win, since those are the ones an operator is watching.
 */
export function requestStandings(
  records: readonly RequestRecord[],
  pending: readonly PendingPurge[],
  locationIds: readonly string[],
  limit: number,
): RequestStanding[] {
  const latest = new Map<string, RequestRecord>();
  for (const record of records) {
    const seen = latest.get(record.cacheName);
    if (!seen || record.beforeMs > seen.beforeMs) latest.set(record.cacheName, record);
  }
  const standings: RequestStanding[] = [];
  for (const record of latest.values()) {
    // A deferred purge of an older request for the name is still this name's purge waiting.
    const waiting = pending.filter((p) => p.name === record.cacheName);
    const awaiting = locationIds.some((id) => !record.judged.some((tag) => tagLocation(tag) === id));
    const state: RequestState = waiting.some((p) => p.reason === 'in-use') ? 'in-use' : waiting.length > 0 ? 'failed' : awaiting ? 'unreadable' : 'applied';
    standings.push({ cacheName: record.cacheName, beforeMs: record.beforeMs, state });
  }
  standings.sort((a, b) => b.beforeMs - a.beforeMs || (a.cacheName < b.cacheName ? -1 : 1));
  return standings.slice(0, limit);
}
