/**
 * The purge contract as transitions over plain data: never miss a purge,
 * never repeat one. Each function takes the persisted state and one event —
 * the configuration at start, a service answer, the outcome of a look at the
 * disk — and returns the next state. The engine (src/engine/cycle.ts) gathers the
 * events and persists the states, in this order:
 *
 * 1. start: reconcileIdentity — a cursor taken for another service, pool or
 *    set of locations is dropped, so the next query is a full one.
 * 2. answer: receiveAnswer — new requests are recorded with their receipt
 *    time and saved before anything acts on them, so a crash cannot make a
 *    request look newer than the caches created after it arrived.
 * 3. look: settleLook — after judging (src/core/judge.ts) and renaming, the
 *    records are marked judged by each location that could be read, pending
 *    purges and first-seen times carried over, and only then does the cursor
 *    move: every request of the answer is applied, pending, or owed.
 */
import { advanceCursor, identityChanges, type CursorIdentity } from './cursor.js';
import {
  recordKey,
  ingestAnswer,
  instanceTag,
  judgedIn,
  pruneRecords,
  tagLocation,
  type LocationRead,
  type RequestRecord,
  type ValidRequest,
} from './records.js';
import { nextFirstSeen, nextPending, survivors } from './pending.js';
import type { Outcome, PendingPurge } from './judge.js';
import type { ObservedCache } from './rule.js';

/** The part of the agent's state the contract owns. */
export interface ContractState {
  identity: CursorIdentity | null;
  /** Start (local ms) of the last successful query; null asks for everything. */
  cursor: number | null;
  /** The latest wall-clock time the agent has seen: detects the clock jumping back. */
  latestClock: number | null;
  firstSeen: Record<string, number>;
  pending: PendingPurge[];
  records: RequestRecord[];
}

/**
 * The cursor belongs to what it was taken for. When the service, the pool or
 * the locations differ from the configuration, the cursor is dropped (the
 * service keeps requests about a day, so a full query finds every one that
 * still matters). The records stay: a request is its cache name and its
 * `before` to the millisecond, which another pool's or service's requests
 * will not share, while the same service under another URL returns the same
 * requests — forgetting them would purge again what they already purged. A
 * location added since owes them all.
 */
export function reconcileIdentity<S extends ContractState>(state: S, identity: CursorIdentity): { state: S; changes: string[] } {
  const changes = identityChanges(state.identity, identity);
  if (changes.length === 0) return { state, changes };
  const next: S = { ...state, identity, cursor: null };
  // A fresh state has nothing a change could invalidate: nothing worth a log line.
  const fresh = state.identity === null && state.cursor === null && state.records.length === 0;
  return { state: next, changes: fresh ? [] : changes };
}

/**
 * A service answer arrived at `nowMs` (worker clock): record what is new. A
 * wall clock set back since the agent last looked would date the receipt
 * before caches created earlier, so the receipt is never dated before the
 * latest time the agent has seen.
 */
export function receiveAnswer<S extends ContractState>(state: S, requests: readonly ValidRequest[], nowMs: number): { state: S; added: RequestRecord[] } {
  const { records, added } = ingestAnswer(state.records, requests, Math.max(nowMs, state.latestClock ?? nowMs));
  return { state: added.length === 0 ? state : { ...state, records }, added };
}

export interface Look {
  /** What the inventory listed. */
  caches: readonly ObservedCache[];
  /** How each configured location read. */
  locations: readonly LocationRead[];
  /** What became of each candidate. */
  outcomes: readonly Outcome[];
  /** Pending purges whose location was not read: carried over untouched. */
  keptPending?: readonly PendingPurge[];
  nowMs: number;
  skewMarginMs: number;
  /** Where a successful query of this operation moves the cursor (queryMark); null when there was none. */
  cursorMark: number | null;
}

/** The state after a look at the disk, and the records that expired while a location still owed them. */
export function settleLook<S extends ContractState>(state: S, look: Look): { state: S; expiredOwed: RequestRecord[] } {
  const readable = look.locations.filter((l) => l.instance !== null);
  // Purges per (name, before), counted once: asking every purge about every
  // record cost ten million comparisons at 10,000 records and 1,000 purges.
  const purgedBy = new Map<string, number>();
  for (const o of look.outcomes) {
    if (o.kind !== 'purged') continue;
    const key = recordKey({ cacheName: o.candidate.cache.name, beforeMs: o.candidate.beforeMs });
    purgedBy.set(key, (purgedBy.get(key) ?? 0) + 1);
  }
  const records = state.records.map((record) => {
    let judged = record.judged;
    for (const location of readable) {
      const tag = instanceTag(location);
      if (judgedIn(location, record) && !judged.includes(tag)) judged = [...judged, tag];
    }
    // A purge credits the records that condemned it: the same name and the same `before`.
    const credited = purgedBy.get(recordKey(record)) ?? 0;
    const everywhere = look.locations.every((l) => judged.some((tag) => tagLocation(tag) === l.id));
    const appliedAt = record.appliedAt ?? (everywhere ? look.nowMs : null);
    if (judged === record.judged && credited === 0 && appliedAt === record.appliedAt) return record;
    return { ...record, judged, purged: record.purged + credited, appliedAt };
  });
  const pruned = pruneRecords(records, look.nowMs, look.skewMarginMs);
  const next: S = {
    ...state,
    records: pruned.records,
    pending: [...nextPending(look.outcomes), ...(look.keptPending ?? [])],
    firstSeen: nextFirstSeen(state.firstSeen, survivors(look.caches, look.outcomes), look.nowMs),
    latestClock: Math.max(state.latestClock ?? look.nowMs, look.nowMs),
    cursor: look.cursorMark === null ? state.cursor : advanceCursor(state.cursor, look.cursorMark),
  };
  return { state: next, expiredOwed: pruned.expiredOwed };
}

/** A record as an operator sees it (the local API's status, `once --json`). */
export interface RecordView {
  cacheName: string;
  before: string;
  received: string;
  /** When every configured location had judged it; null while one still owes it. */
  applied: string | null;
  purged: number;
  /** Directories it condemned that wait for their users, or for a failed rename to be retried. */
  pending: number;
  /** Locations that have not judged it yet (unreadable so far). */
  awaiting: string[];
}

export function recordViews(state: Pick<ContractState, 'records' | 'pending'>, locationIds: readonly string[]): RecordView[] {
  return state.records.map((record) => ({
    cacheName: record.cacheName,
    before: new Date(record.beforeMs).toISOString(),
    received: new Date(record.receivedAt).toISOString(),
    applied: record.appliedAt === null ? null : new Date(record.appliedAt).toISOString(),
    purged: record.purged,
    pending: state.pending.filter((p) => p.name === record.cacheName && p.beforeMs === record.beforeMs).length,
    awaiting: locationIds.filter((id) => !record.judged.some((tag) => tagLocation(tag) === id)),
  }));
}
