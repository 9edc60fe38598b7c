import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  MAX_LEASES,
  MAX_LEASES_PER_CACHE,
  MAX_TTL_MS,
  MIN_TTL_MS,
  acquireLease,
  leaseHolders,
  leaseNeedsWrite,
  liveLeases,
  releaseLease,
  validateOwner,
  validateTtl,
  type Lease,
} from '../../src/core/leases.js';
import { LeaseLimitError } from '../../src/errors.js';

const T0 = Date.UTC(2025, 0, 1);
const names = fc.constantFrom('cargo', 'npm', 'a/b', 'sccache');
const owners = fc.constantFrom('task-1/run-0', 'task-2/run-0', 'worker exec 42', 'ci');
const ttls = fc.integer({ min: MIN_TTL_MS, max: MAX_TTL_MS });
const times = fc.integer({ min: T0, max: T0 + 7 * 86_400_000 });

/** Any lease list reachable by acquiring and releasing. */
const leaseLists = fc
  .array(fc.tuple(fc.boolean(), names, owners, ttls, times), { maxLength: 12 })
  .map((ops) =>
    ops.reduce<Lease[]>(
      (leases, [acquire, name, owner, ttl, now]) => (acquire ? acquireLease(leases, name, owner, ttl, now).leases : releaseLease(leases, name, owner).leases),
      [],
    ),
  );

describe('leases (properties)', () => {
  it('a lease is live for its whole TTL and not a moment after', () => {
    fc.assert(
      fc.property(leaseLists, names, owners, ttls, times, fc.double({ min: 0, max: 1, noNaN: true }), (leases, name, owner, ttl, now, f) => {
        const { leases: next, lease } = acquireLease(liveLeases(leases, now), name, owner, ttl, now);
        const within = now + Math.floor(f * (ttl - 1));
        expect(leaseHolders(next, name, within).map((h) => h.owner)).toContain(owner);
        expect(liveLeases([lease], lease.expiresAt)).toEqual([]);
        expect(lease.expiresAt).toBeGreaterThanOrEqual(now + ttl);
      }),
    );
  });

  it('expired leases are never live', () => {
    fc.assert(
      fc.property(leaseLists, times, (leases, now) => {
        for (const l of liveLeases(leases, now)) expect(l.expiresAt).toBeGreaterThan(now);
        for (const l of leases.filter((x) => x.expiresAt <= now)) expect(leaseHolders(leases, l.cacheName, now).map((h) => h.owner)).not.toContain(l.owner);
      }),
    );
  });

  it("release removes exactly that owner's lease on that cache", () => {
    fc.assert(
      fc.property(leaseLists, names, owners, (leases, name, owner) => {
        const { leases: next, released } = releaseLease(leases, name, owner);
        const others = leases.filter((l) => !(l.cacheName === name && l.owner === owner));
        expect(next).toEqual(others);
        expect(released).toBe(others.length < leases.length);
      }),
    );
  });

  it('acquire is idempotent and extends: never two leases per owner and cache, never an earlier expiry', () => {
    fc.assert(
      fc.property(leaseLists, names, owners, ttls, ttls, times, fc.integer({ min: 0, max: MAX_TTL_MS }), (leases, name, owner, ttl1, ttl2, now, later) => {
        const first = acquireLease(leases, name, owner, ttl1, now);
        expect(acquireLease(first.leases, name, owner, ttl1, now)).toEqual(first);
        const second = acquireLease(first.leases, name, owner, ttl2, now + later);
        expect(second.leases.filter((l) => l.cacheName === name && l.owner === owner)).toEqual([second.lease]);
        expect(second.leases).toHaveLength(first.leases.length);
        if (now + later < first.lease.expiresAt) {
          expect(second.lease.expiresAt).toBe(Math.max(first.lease.expiresAt, now + later + ttl2));
          expect(second.lease.acquiredAt).toBe(first.lease.acquiredAt);
        } else {
          expect(second.lease).toMatchObject({ acquiredAt: now + later, expiresAt: now + later + ttl2 });
        }
      }),
    );
  });

  it('many owners coexist on one cache, and each release leaves the others', () => {
    fc.assert(
      fc.property(fc.uniqueArray(owners, { minLength: 1 }), names, ttls, times, (who, name, ttl, now) => {
        let leases: Lease[] = [];
        for (const o of who) leases = acquireLease(leases, name, o, ttl, now).leases;
        expect(
          leaseHolders(leases, name, now)
            .map((h) => h.owner)
            .sort(),
        ).toEqual([...who].sort());
        leases = releaseLease(leases, name, who[0]!).leases;
        expect(
          leaseHolders(leases, name, now)
            .map((h) => h.owner)
            .sort(),
        ).toEqual(who.slice(1).sort());
      }),
    );
  });
});

describe('leases (examples)', () => {
  it('describes a holder by owner and expiry', () => {
    const { leases } = acquireLease([], 'cargo', 'task-1/run-0', 600_000, T0);
    expect(leaseHolders(leases, 'cargo', T0)).toEqual([
      { kind: 'lease', owner: 'task-1/run-0', detail: 'lease held by task-1/run-0 until 2025-01-01T00:10:00.000Z' },
    ]);
    expect(leaseHolders(leases, 'npm', T0)).toEqual([]);
    expect(leases[0]).toEqual({ cacheName: 'cargo', owner: 'task-1/run-0', expiresAt: T0 + 600_000, ttlSeconds: 600, acquiredAt: T0 });
  });

  it('a lease that is not extended expires; one released early is gone at once', () => {
    let { leases } = acquireLease([], 'cargo', 'a', 1_000, T0);
    leases = acquireLease(leases, 'cargo', 'b', 60_000, T0).leases;
    expect(leaseHolders(leases, 'cargo', T0 + 1_000).map((h) => h.owner)).toEqual(['b']);
    expect(releaseLease(leases, 'cargo', 'b')).toEqual({ leases: [leases[0]], released: true });
    expect(releaseLease(leases, 'cargo', 'nobody').released).toBe(false);
  });

  it('rejects TTLs outside 1s..24h and bad owners', () => {
    expect(validateTtl(MIN_TTL_MS)).toBeNull();
    expect(validateTtl(MAX_TTL_MS)).toBeNull();
    for (const bad of [0, 999, MAX_TTL_MS + 1, 1500.5, Number.NaN]) expect(validateTtl(bad)).toMatch(/between 1s and 24h/);
    expect(() => acquireLease([], 'c', 'o', 10, T0)).toThrow(RangeError);
    expect(() => acquireLease([], 'c', '', 10_000, T0)).toThrow(RangeError);
  });

  it('owners are 1-128 printable characters', () => {
    for (const ok of ['a', 'task-1/run-0', 'exec 1234 on worker-7', 'ünïcødé-✓', 'x'.repeat(128), '😀'.repeat(128)]) expect(validateOwner(ok)).toBeNull();
    expect(validateOwner('')).toMatch(/empty/);
    expect(validateOwner('x'.repeat(129))).toMatch(/at most 128/);
    for (const bad of ['a\nb', 'a\tb', 'a\u0000', 'a\u007f', 'a\u0085', 'a\u200b', 'a\u202e', 'a\u2028', 'a\ud800']) {
      expect(validateOwner(bad)).toMatch(/printable/);
    }
    expect(validateOwner(' padded')).toMatch(/space/);
    expect(validateOwner('padded ')).toMatch(/space/);
  });
});

describe('lease limits and writes', () => {
  const hour = 3_600_000;
  const fill = (count: number, cache: (i: number) => string): Lease[] =>
    Array.from({ length: count }, (_, i) => ({ cacheName: cache(i), owner: `o${i}`, expiresAt: T0 + hour, ttlSeconds: 3600, acquiredAt: T0 }));

  it(`refuses a new lease past ${MAX_LEASES_PER_CACHE} on one cache, with a stable code; an existing one is still extended`, () => {
    const full = fill(MAX_LEASES_PER_CACHE, () => 'c');
    expect(() => acquireLease(full, 'c', 'newcomer', hour, T0 + 1)).toThrow(
      expect.objectContaining({ code: 'PCA_LEASE_LIMIT', message: expect.stringContaining('release a lease on it') }),
    );
    expect(acquireLease(full, 'c', 'o0', hour, T0 + 1).lease.expiresAt).toBe(T0 + 1 + hour);
    expect(acquireLease(full, 'other', 'newcomer', hour, T0 + 1).leases).toHaveLength(MAX_LEASES_PER_CACHE + 1);
    // Expired leases do not count.
    expect(acquireLease(full, 'c', 'newcomer', hour, T0 + hour).leases.length).toBe(MAX_LEASES_PER_CACHE + 1);
  });

  it(`refuses a new lease past ${MAX_LEASES} in all`, () => {
    const full = fill(MAX_LEASES, (i) => `cache-${i}`);
    expect(() => acquireLease(full, 'fresh', 'newcomer', hour, T0 + 1)).toThrow(LeaseLimitError);
  });

  it('a renewal in the first third of the TTL needs no write; later, or a new lease, does', () => {
    const { lease } = acquireLease([], 'c', 'o', 30_000, T0);
    const early = acquireLease([lease], 'c', 'o', 30_000, T0 + 9_000).lease;
    expect(leaseNeedsWrite(lease, early, 30_000, T0 + 9_000)).toBe(false);
    const late = acquireLease([lease], 'c', 'o', 30_000, T0 + 11_000).lease;
    expect(leaseNeedsWrite(lease, late, 30_000, T0 + 11_000)).toBe(true);
    expect(leaseNeedsWrite(undefined, lease, 30_000, T0)).toBe(true);
    // A longer TTL asked for early is written: the stored expiry does not cover two thirds of it.
    const longer = acquireLease([lease], 'c', 'o', 3_600_000, T0 + 1_000).lease;
    expect(leaseNeedsWrite(lease, longer, 3_600_000, T0 + 1_000)).toBe(true);
  });
});
