import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { planEviction, minFreeBytes, minFreeCrossed, HYSTERESIS, type EvictableCache, type FilesystemUsage } from '../../src/core/eviction-plan.js';

const NOW = 1_800_000_000_000;
const HOUR = 3_600_000;
const GB = 1024 ** 3;

const cache = (name: string, sizeGb: number, ageHours: number, extra: Partial<EvictableCache> = {}): EvictableCache => ({
  name,
  path: `/r/${name}`,
  root: '/r',
  fs: '8:1',
  sizeBytes: sizeGb * GB,
  lastUsedMs: NOW - ageHours * HOUR,
  inUse: false,
  ...extra,
});
const fsUsage = (freeGb: number, totalGb = 100, trashGb = 0): FilesystemUsage => ({
  fs: '8:1',
  totalBytes: totalGb * GB,
  freeBytes: freeGb * GB,
  trashBytes: trashGb * GB,
});
const names = (plan: ReturnType<typeof planEviction>) => plan.evict.map((e) => e.cache.name);

describe('max-unused', () => {
  it('evicts exactly the caches unused for longer than the limit', () => {
    const plan = planEviction({
      caches: [cache('a', 1, 49), cache('b', 1, 47), cache('c', 1, 100)],
      filesystems: [],
      limits: { maxUnusedMs: 48 * HOUR },
      nowMs: NOW,
    });
    expect(names(plan).sort()).toEqual(['a', 'c']);
    expect(plan.evict.every((e) => e.reason === 'max-unused')).toBe(true);
  });
  it('never evicts a cache in use, however stale', () => {
    const plan = planEviction({ caches: [cache('a', 1, 1000, { inUse: true })], filesystems: [], limits: { maxUnusedMs: HOUR }, nowMs: NOW });
    expect(plan.evict).toEqual([]);
  });
});

describe('max-size', () => {
  it('does nothing under the limit', () => {
    const plan = planEviction({ caches: [cache('a', 4, 1), cache('b', 5, 2)], filesystems: [], limits: { maxSizeBytes: 10 * GB }, nowMs: NOW });
    expect(plan.evict).toEqual([]);
  });
  it('evicts least recently used first until 10% below the limit', () => {
    const caches = [cache('new', 4, 1), cache('mid', 4, 5), cache('old', 4, 10)];
    // 12 GB > 10 GB; target 9 GB: evicting 'old' leaves 8 GB.
    const plan = planEviction({ caches, filesystems: [], limits: { maxSizeBytes: 10 * GB }, nowMs: NOW });
    expect(names(plan)).toEqual(['old']);
  });
  it('goes past the limit to the hysteresis target, not just under the limit', () => {
    const caches = [cache('a', 5, 1), cache('b', 0.6, 2), cache('c', 5, 3)];
    // 10.6 GB > 10 GB. Evicting c leaves 5.6 GB (below the 9 GB target).
    const plan = planEviction({ caches, filesystems: [], limits: { maxSizeBytes: 10 * GB }, nowMs: NOW });
    expect(names(plan)).toEqual(['c']);
    const tight = planEviction({
      caches: [cache('a', 9.5, 1), cache('b', 0.3, 2), cache('c', 0.3, 3)],
      filesystems: [],
      limits: { maxSizeBytes: 10 * GB },
      nowMs: NOW,
    });
    // 10.1 GB: evicting c (10 → 9.8) is not enough for the 9 GB target; b goes too; a is newest but still needed.
    expect(names(tight)).toEqual(['c', 'b', 'a']);
  });
  it('skips caches in use and reports an unmet limit', () => {
    const plan = planEviction({
      caches: [cache('a', 20, 10, { inUse: true }), cache('b', 1, 1)],
      filesystems: [],
      limits: { maxSizeBytes: 10 * GB },
      nowMs: NOW,
    });
    expect(names(plan)).toEqual(['b']);
    expect(plan.unmet.map((u) => u.reason)).toEqual(['max-size']);
  });
});

describe('min-free', () => {
  it('reads bytes or a percentage of the filesystem', () => {
    expect(minFreeBytes({ bytes: 5 }, 100)).toBe(5);
    expect(minFreeBytes({ percent: 15 }, 200)).toBe(30);
  });
  it('evicts LRU until free space is 10% above the limit', () => {
    const caches = [cache('a', 3, 1), cache('b', 3, 2), cache('c', 3, 3)];
    // Need 10 GB free, have 6: target 11 GB → evict c (9), then b (12).
    const plan = planEviction({ caches, filesystems: [fsUsage(6)], limits: { minFree: { bytes: 10 * GB } }, nowMs: NOW });
    expect(names(plan)).toEqual(['c', 'b']);
    expect(plan.evict.every((e) => e.reason === 'min-free')).toBe(true);
  });
  it('counts bytes in the trash as free: they are on their way out', () => {
    const plan = planEviction({ caches: [cache('a', 3, 1)], filesystems: [fsUsage(6, 100, 5)], limits: { minFree: { bytes: 10 * GB } }, nowMs: NOW });
    expect(plan.evict).toEqual([]);
  });
  it('only evicts caches on the filesystem that is short', () => {
    const other = cache('elsewhere', 50, 100, { fs: '8:2', path: '/s/elsewhere', root: '/s' });
    const plan = planEviction({
      caches: [other, cache('here', 5, 1)],
      filesystems: [fsUsage(6), { fs: '8:2', totalBytes: 100 * GB, freeBytes: 90 * GB, trashBytes: 0 }],
      limits: { minFree: { bytes: 10 * GB } },
      nowMs: NOW,
    });
    expect(names(plan)).toEqual(['here']);
  });
  it('the cheap check sees the crossing', () => {
    expect(minFreeCrossed([fsUsage(6)], { percent: 10 })).toBe(true);
    expect(minFreeCrossed([fsUsage(11)], { percent: 10 })).toBe(false);
    expect(minFreeCrossed([fsUsage(6)], undefined)).toBe(false);
  });
});

describe('properties', () => {
  const arbCaches = fc.uniqueArray(
    fc.record({
      name: fc.string({ minLength: 1, maxLength: 6 }),
      size: fc.integer({ min: 0, max: 50 }),
      age: fc.integer({ min: 0, max: 500 }),
      inUse: fc.boolean(),
    }),
    { selector: (c) => c.name, maxLength: 12 },
  );
  it('never evicts a cache in use; evicts idle ones in LRU order per reason; meets the limit when enough idle bytes exist', () => {
    fc.assert(
      fc.property(arbCaches, fc.integer({ min: 1, max: 200 }), (spec, maxGb) => {
        const caches = spec.map((c) => cache(c.name, c.size, c.age, { inUse: c.inUse }));
        const plan = planEviction({ caches, filesystems: [], limits: { maxSizeBytes: maxGb * GB }, nowMs: NOW });
        for (const e of plan.evict) expect(e.cache.inUse).toBe(false);
        const ages = plan.evict.map((e) => e.cache.lastUsedMs);
        expect(ages).toEqual([...ages].sort((a, b) => a - b));
        const total = caches.reduce((s, c) => s + c.sizeBytes!, 0);
        const left = total - plan.evict.reduce((s, e) => s + e.bytes, 0);
        if (total <= maxGb * GB) expect(plan.evict).toEqual([]);
        else if (plan.unmet.length === 0) expect(left).toBeLessThanOrEqual(maxGb * GB);
        // Every evicted cache was needed: without the last one, the total would still be above the target.
        if (plan.evict.length > 0 && total > maxGb * GB) {
          const last = plan.evict[plan.evict.length - 1]!;
          expect(left + last.bytes).toBeGreaterThan(Math.floor(maxGb * GB * (1 - HYSTERESIS)));
        }
      }),
    );
  });
});
