/** Small builders for the pure core's tests: one clock origin, one margin, caches, requests and records. */
import type { ContractState } from '../../src/core/contract.js';
import type { CursorIdentity } from '../../src/core/cursor.js';
import type { ValidRequest, RequestRecord } from '../../src/core/records.js';
import type { ObservedCache } from '../../src/core/rule.js';

/** The skew margin the agent runs with by default. */
export const MARGIN = 5 * 60_000;
/** An arbitrary origin, so that times in tests read as offsets from it. */
export const T = Date.parse('2026-11-21T12:00:00Z');

export const cache = (name: string, birthtimeMs: number | null, key = `1:${name}`, path = `/root/${name}`): ObservedCache => ({
  name,
  path,
  root: '/root',
  key,
  birthtimeMs,
});

export const req = (cacheName: string, beforeMs: number): ValidRequest => ({ cacheName, beforeMs });

export const identity: CursorIdentity = { service: 'https://tc.example', workerPool: 'p/w', locations: ['/a', '/b'] };

export const emptyContract = (): ContractState => ({ identity, cursor: T, latestClock: T, firstSeen: {}, pending: [], records: [] });

export const record = (cacheName: string, beforeMs: number, extra: Partial<RequestRecord> = {}): RequestRecord => ({
  cacheName,
  beforeMs,
  receivedAt: beforeMs + 10,
  judged: [],
  purged: 0,
  appliedAt: null,
  ...extra,
});
