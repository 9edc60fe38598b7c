import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { selectCandidates, decide, type PendingPurge } from '../../src/core/judge.js';
import { isCondemned, createdAt } from '../../src/core/rule.js';
import { MARGIN, T, cache, req } from '../helpers/core.js';

describe('selectCandidates', () => {
  const base = { firstSeen: {}, pending: [] as PendingPurge[], skewMarginMs: MARGIN, nowMs: T + 60_000 };

  it('selects exactly the caches whose name a request names and that are old enough', () => {
    const caches = [cache('old', T - 1000), cache('new', T + MARGIN + 1), cache('other', T - 1000)];
    const sel = selectCandidates({ ...base, caches, requests: [req('old', T), req('new', T), req('absent', T)] });
    expect(sel.candidates.map((c) => c.cache.name)).toEqual(['old']);
    expect(sel.newer.map((c) => c.name)).toEqual(['new']);
  });

  it('matches names exactly: no prefix, case or normalisation games', () => {
    const nfc = 'caf\u00e9';
    const nfd = 'cafe\u0301';
    const caches = [cache('Cache', T - 1), cache('cache-2', T - 1), cache(nfd, T - 1, 'k-nfd', '/root/nfd')];
    const sel = selectCandidates({ ...base, caches, requests: [req('cache', T), req(nfc, T)] });
    expect(sel.candidates).toEqual([]);
  });

  it('uses the latest `before` when several requests name one cache', () => {
    const caches = [cache('a', T + 1000)];
    const sel = selectCandidates({ ...base, caches, requests: [req('a', T - 3_600_000), req('a', T)] });
    expect(sel.candidates).toHaveLength(1);
    expect(sel.candidates[0]!.beforeMs).toBe(T);
  });

  it('uses first-seen times for caches without birth time, and treats never-seen ones as old', () => {
    const seen = cache('seen', null, 'k-seen');
    const unseen = cache('unseen', null, 'k-unseen');
    const sel = selectCandidates({ ...base, firstSeen: { 'k-seen': T + MARGIN + 10 }, caches: [seen, unseen], requests: [req('seen', T), req('unseen', T)] });
    expect(sel.candidates.map((c) => c.cache.name)).toEqual(['unseen']);
    expect(sel.newer.map((c) => c.name)).toEqual(['seen']);
  });

  it('keeps a pending purge only while the same directory (device:inode) is at its path', () => {
    const pending: PendingPurge[] = [
      { name: 'same', path: '/root/same', key: '1:same', beforeMs: T, reason: 'in-use', since: T - 5 },
      { name: 'replaced', path: '/root/replaced', key: '1:old-inode', beforeMs: T, reason: 'in-use', since: T - 5 },
      { name: 'gone', path: '/root/gone', key: '1:gone', beforeMs: T, reason: 'failed', since: T - 5 },
    ];
    // 'same' was born before the request, as the directory a pending purge is about always was.
    const caches = [cache('same', T - 1000), cache('replaced', T + 10 * MARGIN, '1:new-inode')];
    const sel = selectCandidates({ ...base, caches, requests: [], pending });
    expect(sel.candidates.map((c) => c.cache.name)).toEqual(['same']);
    expect(sel.candidates[0]!.since).toBe(T - 5);
    expect(sel.resolvedPending.map((p) => p.name).sort()).toEqual(['gone', 'replaced']);
  });

  it('with purgeAll, selects every cache once', () => {
    const caches = [cache('a', T + 10 * MARGIN), cache('b', null)];
    const sel = selectCandidates({ ...base, caches, requests: [], purgeAll: true });
    expect(sel.candidates.map((c) => c.cache.name).sort()).toEqual(['a', 'b']);
  });
});

describe('decide', () => {
  it('defers every cache someone holds and purges the rest', () => {
    const sel = selectCandidates({
      requests: [req('a', T), req('b', T)],
      caches: [cache('a', 0), cache('b', 0)],
      firstSeen: {},
      pending: [],
      skewMarginMs: MARGIN,
      nowMs: T,
    });
    const holders = new Map([['/root/a', [{ detail: 'pid 1 (make)' }]]]);
    const d = decide(sel.candidates, holders);
    expect(d.purge.map((c) => c.cache.name)).toEqual(['b']);
    expect(d.defer.map((x) => [x.candidate.cache.name, x.holders[0]!.detail])).toEqual([['a', 'pid 1 (make)']]);
  });
});

describe('properties of the decision', () => {
  const names = fc.constantFrom('a', 'b', 'c', 'a/b', '..', '.', '%2F', 'caf\u00e9', 'cafe\u0301', '');
  const time = fc.integer({ min: T - 10 * MARGIN, max: T + 10 * MARGIN });
  const caches = fc.uniqueArray(fc.record({ name: names, birth: fc.option(time, { nil: null }), id: fc.integer({ min: 0, max: 1_000_000 }) }), {
    selector: (c) => c.name,
    maxLength: 10,
  });
  const requests = fc.array(fc.record({ cacheName: names, beforeMs: time }), { maxLength: 10 });
  const firstSeenTimes = fc.dictionary(fc.constantFrom('1:a', '1:b', '1:c'), time);

  it('never selects a cache that no request names, and every selected cache is condemned by some request', () => {
    fc.assert(
      fc.property(caches, requests, firstSeenTimes, (cs, rs, firstSeen) => {
        const observed = cs.map((c) => cache(c.name, c.birth, `1:${c.name}`, `/root/${c.id}-${c.name}`));
        const sel = selectCandidates({ requests: rs, caches: observed, firstSeen, pending: [], skewMarginMs: MARGIN, nowMs: T });
        for (const cand of sel.candidates) {
          const matching = rs.filter((r) => r.cacheName === cand.cache.name);
          expect(matching.length).toBeGreaterThan(0);
          expect(matching.some((r) => isCondemned(createdAt(cand.cache, firstSeen), r.beforeMs, MARGIN))).toBe(true);
        }
        // And nothing condemned is missed.
        for (const c of observed) {
          const condemned = rs.some((r) => r.cacheName === c.name && isCondemned(createdAt(c, firstSeen), r.beforeMs, MARGIN));
          expect(sel.candidates.some((cand) => cand.cache.path === c.path)).toBe(condemned);
        }
      }),
    );
  });

  it('a cache with a holder is never purged; without one it always is', () => {
    fc.assert(
      fc.property(caches, requests, fc.array(fc.boolean(), { minLength: 10, maxLength: 10 }), (cs, rs, held) => {
        const observed = cs.map((c) => cache(c.name, c.birth, `1:${c.name}`, `/root/${c.id}-${c.name}`));
        const sel = selectCandidates({ requests: rs, caches: observed, firstSeen: {}, pending: [], skewMarginMs: MARGIN, nowMs: T });
        const holders = new Map(observed.filter((_, i) => held[i]).map((c) => [c.path, [{ detail: 'held' }]]));
        const d = decide(sel.candidates, holders);
        for (const p of d.purge) expect(holders.has(p.cache.path)).toBe(false);
        for (const x of d.defer) expect(holders.has(x.candidate.cache.path)).toBe(true);
        expect(d.purge.length + d.defer.length).toBe(sel.candidates.length);
      }),
    );
  });

  it('is deterministic and independent of request order', () => {
    fc.assert(
      fc.property(caches, requests, (cs, rs) => {
        const observed = cs.map((c) => cache(c.name, c.birth, `1:${c.name}`, `/root/${c.id}-${c.name}`));
        const a = selectCandidates({ requests: rs, caches: observed, firstSeen: {}, pending: [], skewMarginMs: MARGIN, nowMs: T });
        const b = selectCandidates({ requests: [...rs].reverse(), caches: observed, firstSeen: {}, pending: [], skewMarginMs: MARGIN, nowMs: T });
        const key = (s: typeof a) => s.candidates.map((c) => `${c.cache.path}@${c.beforeMs}`).sort();
        expect(key(a)).toEqual(key(b));
      }),
    );
  });
});
