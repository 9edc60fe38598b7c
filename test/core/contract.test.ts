import { describe, expect, it } from 'vitest';
import { identityChanges, locationId, type CursorIdentity } from '../../src/core/cursor.js';
import { reconcileIdentity, receiveAnswer, recordViews, settleLook, type ContractState } from '../../src/core/contract.js';
import { ingestAnswer, instanceTag, pruneRecords, SERVICE_RETENTION_MS, tagLocation, type RequestRecord } from '../../src/core/records.js';
import { requestCondemns } from '../../src/core/rule.js';
import type { Candidate } from '../../src/core/judge.js';

const MARGIN = 5 * 60_000;
const T = Date.parse('2026-11-21T12:00:00Z');
const identity: CursorIdentity = { service: 'https://tc.example', workerPool: 'p/w', locations: ['/a', '/b'] };
const empty = (): ContractState => ({ identity, cursor: T, latestClock: T, firstSeen: {}, pending: [], records: [] });
const record = (cacheName: string, beforeMs: number, extra: Partial<RequestRecord> = {}): RequestRecord => ({
  cacheName,
  beforeMs,
  receivedAt: beforeMs + 10,
  judged: [],
  purged: 0,
  appliedAt: null,
  ...extra,
});

describe('the cursor identity', () => {
  it('names what changed, and nothing when nothing did', () => {
    expect(identityChanges(identity, identity)).toEqual([]);
    expect(identityChanges(identity, { ...identity, workerPool: 'p/x' })).toEqual(['the worker pool changed from p/w to p/x']);
    expect(identityChanges(identity, { ...identity, service: 'proxy:http://proxy' })[0]).toMatch(/service changed/);
    expect(identityChanges(identity, { ...identity, locations: ['/a', '/c'] })).toEqual(['cache locations added: /c', 'cache locations removed: /b']);
    expect(identityChanges(null, identity)[0]).toMatch(/no record/);
  });

  it('drops the cursor when anything differs, and keeps the records', () => {
    const state = { ...empty(), records: [record('x', T - 1000)] };
    const { state: next, changes } = reconcileIdentity(state, { ...identity, workerPool: 'p/x' });
    expect(changes).toHaveLength(1);
    expect(next.cursor).toBeNull();
    expect(next.identity?.workerPool).toBe('p/x');
    expect(next.records).toEqual(state.records);
    expect(reconcileIdentity(state, identity).state).toBe(state);
  });

  it('binds a fresh state silently', () => {
    const fresh: ContractState = { ...empty(), identity: null, cursor: null };
    const { state, changes } = reconcileIdentity(fresh, identity);
    expect(changes).toEqual([]);
    expect(state.identity).toEqual(identity);
  });

  it('identifies a single cache by name and path, a root by its path', () => {
    expect(locationId({ root: '/r', name: 'n', path: '/r/n' })).toBe('/r');
    expect(locationId({ root: null, name: 'n', path: '/x/n' })).toBe('n=/x/n');
  });
});

describe('request records', () => {
  it('keep the first receipt of a request seen again', () => {
    const first = ingestAnswer([], [{ cacheName: 'x', beforeMs: T }], T + 5);
    const again = ingestAnswer(
      first.records,
      [
        { cacheName: 'x', beforeMs: T },
        { cacheName: 'x', beforeMs: T + 1 },
      ],
      T + 99,
    );
    expect(again.added.map((r) => r.beforeMs)).toEqual([T + 1]);
    expect(again.records.map((r) => r.receivedAt)).toEqual([T + 5, T + 99]);
  });

  it('are never dated before the latest time the agent has seen (a clock set back)', () => {
    const state = { ...empty(), latestClock: T + 3_600_000 };
    expect(receiveAnswer(state, [{ cacheName: 'x', beforeMs: T }], T).state.records[0]!.receivedAt).toBe(T + 3_600_000);
  });

  it('are pruned once the service can no longer return them, and say which a location still owed', () => {
    const old = record('old', T - SERVICE_RETENTION_MS - MARGIN - 1);
    const owedButKept = record('kept', T - SERVICE_RETENTION_MS);
    const { records, expiredOwed } = pruneRecords([old, owedButKept], T, MARGIN);
    expect(records).toEqual([owedButKept]);
    expect(expiredOwed).toEqual([old]);
  });

  it('tag the location instance, whose id may hold any character', () => {
    const tag = instanceTag({ id: 'n=/odd@path', instance: '1:2' });
    expect(tagLocation(tag)).toBe('n=/odd@path');
  });
});

describe('the rule bounded by receipt', () => {
  const request = { beforeMs: T, receivedAt: T + 1000 };
  it('spares a directory created after the request arrived, even inside the margin', () => {
    expect(requestCondemns(T + 1001, request, MARGIN, T + 2000)).toBe(false);
    expect(requestCondemns(T + 1000, request, MARGIN, T + 2000)).toBe(true);
  });
  it('gives no exemption to a birth time in the future (the clock was set back since)', () => {
    expect(requestCondemns(T + 1001, request, MARGIN, T + 500)).toBe(true);
  });
  it('still keeps what the margin keeps, and condemns an unknown creation time', () => {
    expect(requestCondemns(T + MARGIN, request, MARGIN, T + MARGIN)).toBe(false);
    expect(requestCondemns(null, request, MARGIN, T)).toBe(true);
  });
});

describe('settling a look', () => {
  const cache = { name: 'x', path: '/a/x', root: '/a', key: '1:9', birthtimeMs: T - 1 };
  const candidate: Candidate = { cache, createdMs: T - 1, beforeMs: T, since: T + 5 };

  it('marks records judged by the readable locations only, credits purges, and applies when every location judged', () => {
    const state = { ...empty(), records: [record('x', T)] };
    const look = {
      caches: [cache],
      locations: [
        { id: '/a', instance: '1:1' },
        { id: '/b', instance: null, error: 'ENOENT' },
      ],
      outcomes: [{ kind: 'purged' as const, candidate }],
      nowMs: T + 5,
      skewMarginMs: MARGIN,
      cursorMark: T + 2,
    };
    const first = settleLook(state, look).state;
    expect(first.records[0]).toMatchObject({ judged: ['1:1@/a'], purged: 1, appliedAt: null });
    expect(first.cursor).toBe(T + 2);
    expect(recordViews(first, ['/a', '/b'])[0]).toMatchObject({ cacheName: 'x', purged: 1, pending: 0, applied: null, awaiting: ['/b'] });

    const second = settleLook(first, {
      ...look,
      caches: [],
      outcomes: [],
      locations: [look.locations[0]!, { id: '/b', instance: '2:2' }],
      nowMs: T + 9,
      cursorMark: null,
    }).state;
    expect(second.records[0]).toMatchObject({ judged: ['1:1@/a', '2:2@/b'], purged: 1, appliedAt: T + 9 });
    expect(second.cursor).toBe(T + 2);
  });

  it('leaves a name that could not be examined owed by its location', () => {
    const state = { ...empty(), records: [record('x', T), record('y', T)] };
    const next = settleLook(state, {
      caches: [],
      locations: [{ id: '/a', instance: '1:1', unreadNames: ['x'] }],
      outcomes: [],
      nowMs: T,
      skewMarginMs: MARGIN,
      cursorMark: null,
    }).state;
    expect(next.records.map((r) => r.judged)).toEqual([[], ['1:1@/a']]);
  });

  it('keeps deferred and failed purges pending, keyed by the directory', () => {
    const next = settleLook(empty(), {
      caches: [cache],
      locations: [{ id: '/a', instance: '1:1' }],
      outcomes: [{ kind: 'deferred', candidate, holders: [{ detail: 'held' }] }],
      nowMs: T,
      skewMarginMs: MARGIN,
      cursorMark: null,
    }).state;
    expect(next.pending).toEqual([{ name: 'x', path: '/a/x', key: '1:9', beforeMs: T, reason: 'in-use', since: T + 5 }]);
  });
});

describe('request standings (fleet convergence)', () => {
  it('one per name, for its latest request, by the most pressing state', async () => {
    const { requestStandings } = await import('../../src/core/convergence.js');
    const records = [
      record('a', T, { judged: ['1@/a', '2@/b'] }),
      record('a', T + 5, { judged: ['1@/a'] }),
      record('b', T + 1, { judged: ['1@/a', '2@/b'] }),
      record('c', T + 2, { judged: ['1@/a', '2@/b'] }),
      record('d', T + 3, { judged: ['1@/a', '2@/b'] }),
    ];
    const pending = [
      { name: 'b', path: '/a/b', key: 'k', beforeMs: T + 1, reason: 'in-use' as const, since: T },
      { name: 'c', path: '/a/c', key: 'k2', beforeMs: T + 2, reason: 'failed' as const, since: T },
    ];
    expect(requestStandings(records, pending, ['/a', '/b'], 10)).toEqual([
      { cacheName: 'a', beforeMs: T + 5, state: 'unreadable' },
      { cacheName: 'd', beforeMs: T + 3, state: 'applied' },
      { cacheName: 'c', beforeMs: T + 2, state: 'failed' },
      { cacheName: 'b', beforeMs: T + 1, state: 'in-use' },
    ]);
    expect(requestStandings(records, pending, ['/a', '/b'], 2).map((s) => s.cacheName)).toEqual(['a', 'd']);
  });
});
