/** What one operation on the caches did: `once --json` prints it, task results and the local API carry it. */
import type { Candidate } from './judge.js';
import type { RecordView } from './contract.js';
import type { EvictedEntry } from './eviction-plan.js';

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

export interface CycleReport {
  since: string | null;
  queriedAt: string;
  /** Requests the service returned. */
  requests: number;
  /** Of those, the ones the agent had no record of: each request is counted once however often it is returned. */
  newRequests?: number;
  purged: PurgedEntry[];
  /** Purges that failed, and cache locations that could not be read (name `(location)`): either fails the operation. */
  failed: FailedEntry[];
  deferred: DeferredEntry[];
  /** Caches evicted for space or age after the purges (src/engine/eviction.ts); with --dry-run, what would be. */
  evicted: EvictedEntry[];
  /** After a cycle: the requests it received, and those a location still owes. */
  records?: RecordView[];
  dryRun?: boolean;
  /** Set when the service could not be queried; nothing was purged on new data and the cursor held. */
  error?: string;
}

/** The report of work that asks the service nothing (a recheck, a local purge, an eviction pass). */
export function localReport(nowMs: number, dryRun = false): CycleReport {
  return {
    since: null,
    queriedAt: new Date(nowMs).toISOString(),
    requests: 0,
    purged: [],
    failed: [],
    deferred: [],
    evicted: [],
    ...(dryRun ? { dryRun } : {}),
  };
}

export function purgedEntry(candidate: Candidate): PurgedEntry {
  return {
    name: candidate.cache.name,
    path: candidate.cache.path,
    created: candidate.createdMs === null ? null : new Date(candidate.createdMs).toISOString(),
    before: new Date(candidate.beforeMs).toISOString(),
  };
}
