/**
 * Taking and dropping leases on a real state file: what is written when, and
 * a cache's last use marked only by a lease actually released.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { silentLogger } from '../../src/log.js';
import { StateStore } from '../../src/edges/state.js';
import { acquireLeaseIn, releaseLeaseIn, type LeaseContext } from '../../src/engine/leases.js';
import { makeTempDir, type TempDir } from '../helpers/tmp.js';

const logger = silentLogger();
const MINUTE = 60_000;

let tmp: TempDir;
let store: StateStore;
let now: number;
let ctx: LeaseContext;

beforeEach(async () => {
  tmp = await makeTempDir('pca-leases-');
  store = await StateStore.open(tmp.path, { logger });
  now = Date.UTC(2030, 0, 1);
  ctx = { store, state: store.state, clock: { now: () => now, monotonic: () => 0 } };
});
afterEach(async () => {
  await store.close();
  await tmp.cleanup();
});

const onDisk = () => StateStore.peek(tmp.path, logger);

describe('acquireLeaseIn', () => {
  it('writes a new lease at once', async () => {
    const lease = await acquireLeaseIn(ctx, 'npm', 'task-1', 10 * MINUTE, { deferRenewals: true });
    expect(lease).toMatchObject({ cacheName: 'npm', owner: 'task-1', expiresAt: now + 10 * MINUTE, acquiredAt: now });
    expect((await onDisk()).leases).toEqual([lease]);
    expect(ctx.state.leases).toEqual([lease]);
  });

  it('with deferred renewals, keeps an early renewal in memory only; without, writes it', async () => {
    await acquireLeaseIn(ctx, 'npm', 'task-1', 10 * MINUTE, { deferRenewals: true });
    now += MINUTE;
    const renewed = await acquireLeaseIn(ctx, 'npm', 'task-1', 10 * MINUTE, { deferRenewals: true });
    expect(renewed.expiresAt).toBe(now + 10 * MINUTE);
    expect(ctx.state.leases).toEqual([renewed]);
    expect((await onDisk()).leases[0]?.expiresAt).toBe(now - MINUTE + 10 * MINUTE);

    now += MINUTE;
    const written = await acquireLeaseIn(ctx, 'npm', 'task-1', 10 * MINUTE, { deferRenewals: false });
    expect((await onDisk()).leases).toEqual([written]);
  });

  it('forgets expired leases on the way', async () => {
    await acquireLeaseIn(ctx, 'old', 'gone', MINUTE, { deferRenewals: false });
    now += 2 * MINUTE;
    await acquireLeaseIn(ctx, 'npm', 'task-1', MINUTE, { deferRenewals: false });
    expect((await onDisk()).leases.map((l) => l.cacheName)).toEqual(['npm']);
  });
});

describe('releaseLeaseIn', () => {
  it('drops the lease and marks the cache last used now', async () => {
    await acquireLeaseIn(ctx, 'npm', 'task-1', 10 * MINUTE, { deferRenewals: true });
    now += MINUTE;
    expect(await releaseLeaseIn(ctx, 'npm', 'task-1')).toBe(true);
    const state = await onDisk();
    expect(state.leases).toEqual([]);
    expect(state.lastUsed).toEqual({ npm: now });
  });

  it('releasing a lease nobody holds changes no last use', async () => {
    await acquireLeaseIn(ctx, 'npm', 'task-1', 10 * MINUTE, { deferRenewals: true });
    now += MINUTE;
    expect(await releaseLeaseIn(ctx, 'npm', 'someone-else')).toBe(false);
    expect(await releaseLeaseIn(ctx, 'cargo', 'task-1')).toBe(false);
    const state = await onDisk();
    expect(state.lastUsed).toEqual({});
    expect(state.leases.map((l) => l.owner)).toEqual(['task-1']);
  });

  it('an expired lease is no lease to release', async () => {
    await acquireLeaseIn(ctx, 'npm', 'task-1', MINUTE, { deferRenewals: true });
    now += 2 * MINUTE;
    expect(await releaseLeaseIn(ctx, 'npm', 'task-1')).toBe(false);
    expect((await onDisk()).lastUsed).toEqual({});
  });

  it('without a store (a dry run) changes the state in memory only', async () => {
    const memory: LeaseContext = { store: null, state: ctx.state, clock: ctx.clock };
    await acquireLeaseIn(memory, 'npm', 'task-1', MINUTE, { deferRenewals: true });
    expect(await releaseLeaseIn(memory, 'npm', 'task-1')).toBe(true);
    expect(memory.state.lastUsed).toEqual({ npm: now });
    expect((await onDisk()).lastUsed).toEqual({});
  });
});
