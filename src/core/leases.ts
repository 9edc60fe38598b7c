/**
 * Leases: an owner declares "I am using cache N" for a TTL and heartbeats by
 * acquiring again; a lease not extended in time expires, so a crashed owner
 * never pins a cache forever. Pure functions over the list kept in the state:
 * the callers (local API, `lease` command, exec) do the I/O and the locking.
 */
import type { Holder } from './judge.js';
import { LeaseLimitError } from '../errors.js';

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

/** The TTL of a lease whose caller names none: the local API's default, and `lease acquire --ttl`'s. */
export const DEFAULT_LEASE_TTL_SECONDS = 600;

export const OWNER_MAX_CHARS = 128;

/**
 * Live leases allowed on one cache, and in all. Leases are kept in the state
 * file and checked at every decision, so their number must not be up to
 * whoever may call the API. 64 owners of one cache is far beyond any real
 * concurrency on a worker; 4096 in all allows 64 on each of 64 caches.
 */
export const MAX_LEASES_PER_CACHE = 64;
export const MAX_LEASES = 4096;

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
  // Counted in code points, as a person reads them, not UTF-16 units.
  const chars = Array.from(owner).length;
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
export function acquireLease(leases: readonly Lease[], cacheName: string, owner: string, ttlMs: number, now: number): { leases: Lease[]; lease: Lease } {
  const problem = validateOwner(owner) ?? validateTtl(ttlMs);
  if (problem) throw new RangeError(problem);
  const index = leases.findIndex((l) => same(l, cacheName, owner));
  const old = index >= 0 ? leases[index] : undefined;
  if (!old || !isLive(old, now)) refuseOverLimit(leases, cacheName, now);
  const lease: Lease =
    old && isLive(old, now)
      ? { ...old, expiresAt: Math.max(old.expiresAt, now + ttlMs), ttlSeconds: ttlMs / 1000 }
      : { cacheName, owner, expiresAt: now + ttlMs, ttlSeconds: ttlMs / 1000, acquiredAt: now };
  const next = [...leases];
  if (index >= 0) next[index] = lease;
  else next.push(lease);
  return { leases: next, lease };
}

/** A new lease must not take the live leases past either limit; extending one never counts. */
function refuseOverLimit(leases: readonly Lease[], cacheName: string, now: number): void {
  const live = liveLeases(leases, now);
  const onCache = live.filter((l) => l.cacheName === cacheName).length;
  if (onCache >= MAX_LEASES_PER_CACHE) {
    throw new LeaseLimitError(
      `cache ${JSON.stringify(cacheName)} already has ${onCache} live leases, the most one cache may have (${MAX_LEASES_PER_CACHE}); release a lease on it, or let one expire, then try again`,
    );
  }
  if (live.length >= MAX_LEASES) {
    throw new LeaseLimitError(
      `the agent already holds ${live.length} live leases, the most it keeps (${MAX_LEASES}); release leases, or let some expire, then try again`,
    );
  }
}

/**
 * Whether extending `old` to `next` needs the state file rewritten. Not while
 * the stored expiry still covers two thirds of the TTL asked for (a renewal
 * in the first third of it): the agent keeps the later expiry in memory, and
 * saves it with its next write. Should the agent restart before then, the
 * lease still lasts at least two thirds of its TTL from the last renewal
 * written, which an owner renewing at least that often never notices; heart
 * beats no longer cost a file write each.
 */
export function leaseNeedsWrite(old: Lease | undefined, next: Lease, ttlMs: number, now: number): boolean {
  if (!old || !isLive(old, now) || old.acquiredAt !== next.acquiredAt) return true;
  return old.expiresAt < now + (2 * ttlMs) / 3;
}

/** The owner's live lease on a cache, if any. */
export function findLease(leases: readonly Lease[], cacheName: string, owner: string, now: number): Lease | undefined {
  return leases.find((l) => same(l, cacheName, owner) && isLive(l, now));
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
