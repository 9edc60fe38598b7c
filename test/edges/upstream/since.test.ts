/** `since` end to end: the client's ISO timestamp, and serve's inclusive `before >= since`. */
import { afterEach, describe, expect, it } from 'vitest';
import type { Clock } from '../../../src/edges/clock.js';
import { startService, type RunningService } from '../../../src/service/index.js';
import { PurgeCacheClient } from '../../../src/edges/upstream/index.js';
import { POOL_PARTS } from '../../helpers/fixture.js';

let svc: RunningService | undefined;
afterEach(async () => {
  await svc?.close();
  svc = undefined;
});

function manualClock(start: number): Clock & { set(ms: number): void } {
  let now = start;
  return { now: () => now, monotonic: () => now, set: (ms) => void (now = ms) };
}

describe('since', () => {
  it('is inclusive, to the millisecond, and round-trips through the client', async () => {
    const t0 = Date.UTC(2024, 4, 1, 12, 0, 0, 250);
    const clock = manualClock(t0);
    svc = await startService({ clock });
    const client = new PurgeCacheClient({ rootUrl: svc.url });
    await client.purgeCache(POOL_PARTS, 'first');
    clock.set(t0 + 1000);
    await client.purgeCache(POOL_PARTS, 'second');

    const names = async (since?: Date) => (await client.purgeRequests(POOL_PARTS, since)).requests.map((r) => r.cacheName).sort();
    expect(await names()).toEqual(['first', 'second']);
    expect(await names(new Date(t0))).toEqual(['first', 'second']);
    expect(await names(new Date(t0 + 1))).toEqual(['second']);
    expect(await names(new Date(t0 + 1000))).toEqual(['second']);
    expect(await names(new Date(t0 + 1001))).toEqual([]);

    const { requests } = await client.purgeRequests(POOL_PARTS, new Date(t0 + 1000));
    expect(requests[0]!.before).toBe(new Date(t0 + 1000).toISOString());
  });
});
