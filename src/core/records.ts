/**
 * Request records: what the agent knows of each purge request it received.
 *
 * A record is kept per request (cache name and `before`) from the answer that
 * first carried it until the service can no longer return it. It carries the
 * two facts that make a purge happen exactly once per directory:
 * - `receivedAt`: a directory created after it was made after the request
 *   existed, so the request does not condemn it (src/core/rule.ts);
 * - `judged`: the location instances whose caches were judged against it.
 *   A location that could not be read keeps the request owed: it is judged
 *   when the location can be read again, however far the cursor has moved.
 *
 * Why records rather than holding the cursor while a location is unreadable:
 * a disk that stays away (removed for good, a mount that fails for days)
 * would hold the cursor for every other location too, until --max-gap fired
 * and purged everything. Records keep each location's debt to itself.
 */

const HOUR = 3_600_000;

/**
 * How long the service may still return a request after its `before`: its
 * daily expiry job forgets a request 25 to 49 hours after its last POST, and a
 * repeated POST moves `before` to that POST. Past this (plus the skew margin,
 * for a worker clock that runs ahead) no answer can carry it again, so its
 * record can go without the request ever looking new.
 */
export const SERVICE_RETENTION_MS = 49 * HOUR;

/** A purge request whose fields passed validation. */
export interface ValidRequest {
  cacheName: string;
  /** `before` on the service's clock, in ms. */
  beforeMs: number;
}

export interface RequestRecord extends ValidRequest {
  /** When the answer that first carried it arrived, on the worker's clock. */
  receivedAt: number;
  /** Location instances (instanceTag) whose caches were judged against it. */
  judged: string[];
  /** Directories it purged. */
  purged: number;
  /** When every configured location had judged it; null until then. */
  appliedAt: number | null;
}

/** How a cache location read in one look at the disk. */
export interface LocationRead {
  /** locationId: a root's path, or `name=path` for a single cache. */
  id: string;
  /** `${dev}:${ino}` of the directory read (the root, or a single cache's parent); null when unreadable. */
  instance: string | null;
  /** Why it could not be read. */
  error?: string;
  /** Cache names whose entries could not be examined: their requests stay owed here. */
  unreadNames?: string[];
}

/**
 * The tag a location instance leaves on the records it judged. The instance is
 * part of it: an empty mount point judged while its disk was missing is not
 * the disk mounted there later, whose caches still owe every request.
 */
export function instanceTag(location: Pick<LocationRead, 'id' | 'instance'>): string {
  return `${location.instance ?? '?'}@${location.id}`;
}

/** The location id a tag names (instances are `dev:ino`, which holds no `@`). */
export function tagLocation(tag: string): string {
  return tag.slice(tag.indexOf('@') + 1);
}

export function recordKey(request: ValidRequest): string {
  return `${request.beforeMs} ${request.cacheName}`;
}

/** Add the requests of an answer received at `receivedAt`; a request already recorded keeps its first receipt. */
export function ingestAnswer(
  records: readonly RequestRecord[],
  requests: readonly ValidRequest[],
  receivedAt: number,
): { records: RequestRecord[]; added: RequestRecord[] } {
  const known = new Set(records.map(recordKey));
  const added: RequestRecord[] = [];
  for (const request of requests) {
    const key = recordKey(request);
    if (known.has(key)) continue;
    known.add(key);
    added.push({ cacheName: request.cacheName, beforeMs: request.beforeMs, receivedAt, judged: [], purged: 0, appliedAt: null });
  }
  return { records: added.length === 0 ? [...records] : [...records, ...added], added };
}

/** Records the service can no longer return are dropped; those some location still owed are returned for a log line. */
export function pruneRecords(
  records: readonly RequestRecord[],
  nowMs: number,
  skewMarginMs: number,
): { records: RequestRecord[]; expiredOwed: RequestRecord[] } {
  const kept: RequestRecord[] = [];
  const expiredOwed: RequestRecord[] = [];
  for (const record of records) {
    if (nowMs - record.beforeMs <= SERVICE_RETENTION_MS + skewMarginMs) kept.push(record);
    else if (record.appliedAt === null) expiredOwed.push(record);
  }
  return { records: kept, expiredOwed };
}

/** Records grouped by cache name, for judging many caches. */
export function recordsByName(records: readonly RequestRecord[]): Map<string, RequestRecord[]> {
  const byName = new Map<string, RequestRecord[]>();
  for (const record of records) {
    const list = byName.get(record.cacheName);
    if (list) list.push(record);
    else byName.set(record.cacheName, [record]);
  }
  return byName;
}

/** Whether `location` judged `record` in a look where it could be read and the record's name examined. */
export function judgedIn(location: LocationRead, record: ValidRequest): boolean {
  return location.instance !== null && !(location.unreadNames ?? []).includes(record.cacheName);
}
