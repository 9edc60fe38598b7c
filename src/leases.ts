/**
 * Leases: an owner declares "I am using cache N" for a TTL and heartbeats by
 * acquiring again; a lease not extended in time expires, so a crashed owner
 * never pins a cache forever. Pure functions over the list kept in the state:
 * the callers (local API, `lease` command, exec) do the I/O and the locking.
 */
import type { Holder } from './caches/inuse.js';

export interface Lease {
  cacheName: string;
  owner: string;
  /** Epoch ms; the lease is live while now < expiresAt. */
  expiresAt: number;
  /** The TTL most recently asked for, in seconds. */
  ttlSeconds: number;
  /** Epoch ms of the acquisition that started this lease (extensions keep it). */
  acquiredAt: number;
}

/**
 * TTL bounds. At least 1s: a shorter lease would lapse between two heartbeats
 * of any realistic owner. At most 24h: a crashed owner should not pin a cache
 * for longer than the service keeps a purge request (about a day), or the
 * request could expire unapplied. The default (10m) is configuration's.
 */
export const MIN_TTL_MS = 1_000;
export const MAX_TTL_MS = 24 * 60 * 60 * 1_000;

export const OWNER_MAX_CHARS = 128;

/** Error text for a TTL outside the bounds, or null. */
export function validateTtl(ttlMs: number): string | null {
  if (!Number.isInteger(ttlMs) || ttlMs < MIN_TTL_MS || ttlMs > MAX_TTL_MS) {
    return `a lease TTL must be between 1s and 24h (got ${ttlMs}ms)`;
  }
  return null;
}

/**
 * Error text for an owner id that is not a short printable id, or null.
 * 1–128 characters, no control or invisible formatting characters (they would
 * garble logs and `once --json`), no whitespace but plain inner spaces.
 */
export function validateOwner(owner: string): string | null {
  const chars = [...owner].length;
  if (chars === 0) return 'a lease owner must not be empty';
  if (chars > OWNER_MAX_CHARS) return `a lease owner must be at most ${OWNER_MAX_CHARS} characters (got ${chars})`;
  if (/[\p{C}\p{Zl}\p{Zp}]|[^\S ]/u.test(owner)) {
    return 'a lease owner must be printable: no control characters, line breaks or tabs';
  }
  if (owner !== owner.trim()) return 'a lease owner must not begin or end with a space';
  return null;
}

function isLive(lease: Lease, now: number): boolean {
  return now < lease.expiresAt;
}

function same(lease: Lease, cacheName: string, owner: string): boolean {
  return lease.cacheName === cacheName && lease.owner === owner;
}

/**
 * Create the owner's lease on a cache, or extend it. Extending never shortens:
 * the lease lasts until the later of its current expiry and now + TTL, so a
 * heartbeat with a smaller TTL cannot retract what was promised (release and
 * acquire again to shorten). An expired lease is replaced by a fresh one.
 * Throws RangeError on a bad owner or TTL: callers validate input first.
 */
export function acquireLease(
  leases: readonly Lease[],
  cacheName: string,
  owner: string,
  ttlMs: number,
  now: number,
): { leases: Lease[]; lease: Lease } {
  const problem = validateOwner(owner) ?? validateTtl(ttlMs);
  if (problem) throw new RangeError(problem);
  const index = leases.findIndex((l) => same(l, cacheName, owner));
  const old = index >= 0 ? leases[index]! : undefined;
  const lease: Lease =
    old && isLive(old, now)
      ? { ...old, expiresAt: Math.max(old.expiresAt, now + ttlMs), ttlSeconds: ttlMs / 1000 }
      : { cacheName, owner, expiresAt: now + ttlMs, ttlSeconds: ttlMs / 1000, acquiredAt: now };
  const next = [...leases];
  if (index >= 0) next[index] = lease;
  else next.push(lease);
  return { leases: next, lease };
}

/** Drop the owner's lease on a cache; `released` says whether there was one. Other owners keep theirs. */
export function releaseLease(leases: readonly Lease[], cacheName: string, owner: string): { leases: Lease[]; released: boolean } {
  const next = leases.filter((l) => !same(l, cacheName, owner));
  return { leases: next, released: next.length !== leases.length };
}

/** The leases still live at `now`; callers save this to forget expired ones. */
export function liveLeases(leases: readonly Lease[], now: number): Lease[] {
  return leases.filter((l) => isLive(l, now));
}

/** The live leases on a cache, as in-use holders. */
export function leaseHolders(leases: readonly Lease[], cacheName: string, now: number): Holder[] {
  return liveLeases(leases, now)
    .filter((l) => l.cacheName === cacheName)
    .map((l) => ({ kind: 'lease', owner: l.owner, detail: `lease held by ${l.owner} until ${new Date(l.expiresAt).toISOString()}` }));
}
