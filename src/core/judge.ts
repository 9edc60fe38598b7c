/**
 * Judging the caches on disk: which to purge, which to keep, and which
 * deferred purges still apply. Pure: the cycle gathers the facts (records,
 * inventory, who holds what) and carries out the result.
 */
import { createdAt, isCondemned, requestCondemns, type ObservedCache } from './rule.js';
import { locationId, singleLocationId } from './cursor.js';
import { instanceTag, recordsByName, type LocationRead, type RequestRecord, type ValidRequest } from './records.js';

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
  /** The location instance (instanceTag) it was decided in: another instance there (a disk mounted over it) is not where it lives. */
  location?: string;
}

export interface Candidate {
  cache: ObservedCache;
  /** Creation time used for the decision, or null when unknown. */
  createdMs: number | null;
  /** The latest `before` that condemns this cache. */
  beforeMs: number;
  /** When the purge was first decided: now, or when it was first deferred. */
  since: number;
  /** The location instance it was judged in, when known. */
  locationTag?: string;
}

export interface SelectInput {
  /** Every request the agent has on record; each applies to a location instance that has not judged it yet. */
  records?: readonly RequestRecord[];
  /** Requests applied now without being recorded (a local purge): received now. */
  requests?: readonly ValidRequest[];
  caches: readonly ObservedCache[];
  /** How each location read; a cache's location missing here counts as read. */
  locations?: readonly LocationRead[];
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
  /** Caches a request names that were created after `before` + margin, or after the request arrived: they stay. */
  newer: SkippedCache[];
  /** Pending purges whose directory is gone or was replaced: dropped. */
  resolvedPending: PendingPurge[];
  /** Pending purges whose location was not read this time (unreadable, or not configured now): kept as they are. */
  keptPending: PendingPurge[];
}

/** The location a pending purge's directory belongs to: its root (the path's parent), or the single cache itself. */
function pendingLocations(entry: PendingPurge): string[] {
  return [entry.path.slice(0, entry.path.lastIndexOf('/')) || '/', singleLocationId(entry.name, entry.path)];
}

type Applicable = Pick<RequestRecord, 'beforeMs' | 'receivedAt'>;

export function selectCandidates(input: SelectInput): Selection {
  const { caches, firstSeen, pending, skewMarginMs, nowMs } = input;
  const byName = recordsByName(input.records ?? []);
  // Requests applied now are received now: every directory there is older.
  for (const request of input.requests ?? []) {
    // Fields named one by one: spreading a request and adding fields to it made
    // V8 build each record the slow way (about 10 µs each, 100 ms at 10,000).
    const record: RequestRecord = { cacheName: request.cacheName, beforeMs: request.beforeMs, receivedAt: nowMs, judged: [], purged: 0, appliedAt: null };
    const list = byName.get(request.cacheName);
    if (list) list.push(record);
    else byName.set(request.cacheName, [record]);
  }
  const tagOf = new Map<string, string>();
  for (const location of input.locations ?? []) tagOf.set(location.id, instanceTag(location));

  const byPath = new Map<string, ObservedCache>();
  for (const cache of caches) byPath.set(cache.path, cache);

  const chosen = new Map<string, Candidate>();
  const choose = (cache: ObservedCache, createdMs: number | null, beforeMs: number, since: number): void => {
    const existing = chosen.get(cache.path);
    const locationTag = tagOf.get(locationId(cache));
    if (!existing) chosen.set(cache.path, { cache, createdMs, beforeMs, since, ...(locationTag !== undefined ? { locationTag } : {}) });
    else chosen.set(cache.path, { ...existing, beforeMs: Math.max(existing.beforeMs, beforeMs), since: Math.min(existing.since, since) });
  };

  // Pending purges go first: they apply only while the same directory (same
  // device and inode) is still at that path. Inode numbers are reused once
  // freed, so a cache its user deleted and recreated while its purge was
  // deferred can come back with the same key; a birth time after before +
  // margin proves it is another directory, which this purge never condemned.
  // Without a birth time there is no telling, and the purge applies as before.
  // A pending purge is only judged where its location was read: a directory not listed because its disk
  // could not be read (or its location is not configured now) is not gone, and its purge must not be forgotten.
  const readable = input.locations ? new Map(input.locations.filter((l) => l.instance !== null).map((l) => [l.id, l])) : null;
  const wasRead = (entry: PendingPurge): boolean =>
    readable === null ||
    pendingLocations(entry).some((id) => {
      const location = readable.get(id);
      if (!location || (location.unreadNames ?? []).includes(entry.name)) return false;
      // Read as another instance (an empty mount point where its disk was): the directory is not gone, just not here.
      return entry.location === undefined || entry.location === instanceTag(location);
    });
  const resolvedPending: PendingPurge[] = [];
  const keptPending: PendingPurge[] = [];
  for (const entry of pending) {
    if (!wasRead(entry)) {
      keptPending.push(entry);
      continue;
    }
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
    const tag = tagOf.get(locationId(cache));
    // A location instance judges each request once: what it purged then, or
    // kept pending, is never judged again by that request.
    const applicable: Applicable[] = (byName.get(cache.name) ?? []).filter((r) => tag === undefined || !r.judged.includes(tag));
    if (applicable.length === 0) continue;
    let condemnedBy: number | null = null;
    for (const request of applicable) {
      if (requestCondemns(createdMs, request, skewMarginMs, nowMs) && (condemnedBy === null || request.beforeMs > condemnedBy)) condemnedBy = request.beforeMs;
    }
    // A cache with no known creation time is condemned by every request, so only a dated one can be newer.
    if (condemnedBy !== null) choose(cache, createdMs, condemnedBy, nowMs);
    else if (createdMs !== null) newer.push({ name: cache.name, path: cache.path, createdMs, beforeMs: Math.max(...applicable.map((r) => r.beforeMs)) });
  }

  return { candidates: [...chosen.values()], newer, resolvedPending, keptPending };
}

/** Who holds a cache: a lock, a process, or a lease. */
export interface HolderLike {
  detail: string;
}

/** A holder as the in-use probe and the leases report it. */
export interface Holder extends HolderLike {
  /** 'unknown': the scan ran out of budget before it could say; the cache counts as in use. */
  kind: 'lock' | 'process' | 'lease' | 'unknown';
  pid?: number;
  command?: string;
  owner?: string;
  /** Human text: "pid 1234 (cargo build) holds a shared flock on /caches/x". */
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
