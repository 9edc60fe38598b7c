/**
 * Taking and dropping leases on the state: the one place that writes them,
 * for the running agent (its local API) and for `lease` and `exec` when no
 * agent runs (then on the state file, under the state lock). The rules
 * themselves are src/core/leases.ts's.
 */
import type { Clock } from '../edges/clock.js';
import { acquireLease, findLease, leaseNeedsWrite, liveLeases, releaseLease, type Lease } from '../core/leases.js';
import { changeState, type StateHolder } from './executor.js';

export interface LeaseContext extends StateHolder {
  clock: Clock;
}

export interface AcquireOptions {
  /**
   * True where the state in memory outlives this call (the agent): a renewal
   * early in its TTL is then saved with the next write rather than now
   * (leaseNeedsWrite). A command that closes the state after the call must
   * write every change.
   */
  deferRenewals: boolean;
}

/** Create or extend `owner`'s lease on a cache; expired leases are forgotten on the way. */
export function acquireLeaseIn(ctx: LeaseContext, cacheName: string, owner: string, ttlMs: number, options: AcquireOptions): Promise<Lease> {
  return changeState(ctx, (state) => {
    const now = ctx.clock.now();
    const next = acquireLease(liveLeases(state.leases, now), cacheName, owner, ttlMs, now);
    const write = !options.deferRenewals || leaseNeedsWrite(findLease(state.leases, cacheName, owner, now), next.lease, ttlMs, now);
    return { state: { ...state, leases: next.leases }, write, value: next.lease };
  });
}

/**
 * Drop `owner`'s lease on a cache; false when it held none (or it had
 * expired). A lease actually released marks the cache's last use, which
 * eviction reads; a release of nothing leaves it alone.
 */
export function releaseLeaseIn(ctx: LeaseContext, cacheName: string, owner: string): Promise<boolean> {
  return changeState(ctx, (state) => {
    const now = ctx.clock.now();
    const next = releaseLease(liveLeases(state.leases, now), cacheName, owner);
    const lastUsed = next.released ? { ...state.lastUsed, [cacheName]: now } : state.lastUsed;
    return { state: { ...state, leases: next.leases, lastUsed }, write: true, value: next.released };
  });
}
