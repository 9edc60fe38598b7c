import { describe, expect, it } from 'vitest';
import { type Candidate } from '../../src/core/judge.js';
import { recordViews, settleLook } from '../../src/core/contract.js';
import { MARGIN, T, record, emptyContract } from '../helpers/core.js';

describe('settling a look', () => {
  const cache = { name: 'x', path: '/a/x', root: '/a', key: '1:9', birthtimeMs: T - 1 };
  const candidate: Candidate = { cache, createdMs: T - 1, beforeMs: T, since: T + 5 };

  it('marks records judged by the readable locations only, credits purges, and applies when every location judged', () => {
    const state = { ...emptyContract(), records: [record('x', T)] };
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
    const state = { ...emptyContract(), records: [record('x', T), record('y', T)] };
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
    const next = settleLook(emptyContract(), {
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
