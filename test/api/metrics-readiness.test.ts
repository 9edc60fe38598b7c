/**
 * /metrics parsed as Prometheus text (by a parser), with counters moving as
 * cycles run; /readyz turning 503 when the service has been down for longer
 * than three schedule intervals, and 200 again once it is back. The daemon
 * runs a 6-field schedule (every second), so three intervals are 3 s; every
 * wait below polls for a state, never for a time.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { makeFixture, exists, type Fixture } from '../helpers/fixture.js';
import { call, startDaemon, startGate, firstCycle, finishedTask, metrics, sample, type Daemon, type Gate } from '../helpers/api.js';
import path from 'node:path';
import { REQUIRED_METRICS } from '../helpers/metrics.js';
import { POOL } from '../helpers/fixture.js';
import { eventually } from '../helpers/wait.js';

let fx: Fixture;
let gate: Gate;
let d: Daemon | undefined;

beforeEach(async () => {
  fx = await makeFixture();
  gate = await startGate(fx.service.url);
});
afterEach(async () => {
  gate.release();
  const result = await d?.stop();
  d = undefined;
  await gate.close();
  await fx.close();
  if (result) expect(result.code, result.stderr).toBe(0);
});

describe('GET /metrics', () => {
  it('exposes every metric, with the right types, and the default process metrics', async () => {
    d = await startDaemon(fx, { serviceUrl: gate.url });
    const m = await metrics(d.tcp);
    for (const name of REQUIRED_METRICS) expect(m.has(name), name).toBe(true);
    expect(m.get('purge_cache_agent_cycles_total')!.type).toBe('COUNTER');
    expect(m.get('purge_cache_agent_cycle_duration_seconds')!.type).toBe('HISTOGRAM');
    expect(m.get('purge_cache_agent_deferred_purges')!.type).toBe('GAUGE');
    expect(m.get('purge_cache_agent_trash_bytes')!.type).toBe('GAUGE');
    expect(m.has('process_cpu_user_seconds_total')).toBe(true);
    expect(m.has('nodejs_eventloop_lag_seconds')).toBe(true);
    // Both outcomes are exposed from the start.
    expect(
      m
        .get('purge_cache_agent_cycles_total')!
        .metrics.map((s) => s.labels?.outcome)
        .sort(),
    ).toEqual(['failure', 'success']);
  });

  it('moves its counters as cycles run and caches are purged', async () => {
    const dir = await fx.makeCache('heavy', { 'a.bin': 'a'.repeat(10_000), 'b/c.bin': 'c'.repeat(5_000) });
    d = await startDaemon(fx, { serviceUrl: gate.url });
    await firstCycle(d);
    const before = await metrics(d.tcp);
    const successes = sample(before, 'purge_cache_agent_cycles_total', { outcome: 'success' });
    expect(successes).toBeGreaterThanOrEqual(1);
    expect(sample(before, 'purge_cache_agent_caches_purged_total')).toBe(0);
    expect(sample(before, 'purge_cache_agent_last_success_timestamp_seconds')).toBeGreaterThan(0);
    const durations = before.get('purge_cache_agent_cycle_duration_seconds')!.metrics[0]!;
    expect(Number(durations.count)).toBe(successes);

    await fx.request('heavy');
    await fx.request('not-here');
    const task = await finishedTask(d.socket, (await call(d.socket, 'POST', '/v1/sync')).json.task_id);
    expect(task.code).toBe(0);
    expect(await exists(dir)).toBe(false);

    const after = await metrics(d.tcp);
    expect(sample(after, 'purge_cache_agent_cycles_total', { outcome: 'success' })).toBe(successes + 1);
    expect(sample(after, 'purge_cache_agent_requests_seen_total')).toBe(sample(before, 'purge_cache_agent_requests_seen_total') + 2);
    expect(sample(after, 'purge_cache_agent_caches_purged_total')).toBe(1);
    expect(Number(after.get('purge_cache_agent_cycle_duration_seconds')!.metrics[0]!.count)).toBe(successes + 1);
    // The trash is emptied in the background: its bytes are reclaimed, and the backlog drains.
    await eventually(async () => (sample(await metrics(d!.tcp), 'purge_cache_agent_bytes_reclaimed_total') >= 15_000 ? true : undefined), 'bytes reclaimed');
    await eventually(async () => (sample(await metrics(d!.tcp), 'purge_cache_agent_trash_bytes') === 0 ? true : undefined), 'an empty trash');

    // A failed cycle counts as one.
    gate.mode = 'fail';
    const failed = await finishedTask(d.socket, (await call(d.socket, 'POST', '/v1/sync')).json.task_id);
    expect(failed.code).toBe(1);
    expect(sample(await metrics(d.tcp), 'purge_cache_agent_cycles_total', { outcome: 'failure' })).toBe(1);
  });

  it('names the worker pool in purge_cache_agent_info, and the worker id when one is configured', async () => {
    d = await startDaemon(fx, { serviceUrl: gate.url });
    const bare = (await metrics(d.tcp)).get('purge_cache_agent_info')!.metrics;
    expect(bare).toHaveLength(1);
    expect(bare[0]!.labels).toEqual({ version: expect.any(String), worker_pool_id: POOL });
    expect(bare[0]!.value).toBe('1');
    expect((await d.stop()).code).toBe(0);

    d = await startDaemon(fx, { serviceUrl: gate.url, env: { TASKCLUSTER_WORKER_ID: 'i-0abc123' } });
    const named = (await metrics(d.tcp)).get('purge_cache_agent_info')!.metrics;
    expect(named.map((m) => m.labels)).toEqual([{ version: expect.any(String), worker_pool_id: POOL, worker_id: 'i-0abc123' }]);
    expect((await d.stop()).code).toBe(0);

    d = await startDaemon(fx, { serviceUrl: gate.url, args: ['--worker-id', 'node-7'] });
    expect((await metrics(d.tcp)).get('purge_cache_agent_info')!.metrics[0]!.labels).toMatchObject({ worker_id: 'node-7' });
  });

  it('counts deferred purges in the gauge', async () => {
    await fx.makeCache('held');
    d = await startDaemon(fx, { serviceUrl: gate.url });
    // After the cycle at start: a sync during it would join it, and it queried before the request below.
    await firstCycle(d);
    await call(d.socket, 'PUT', '/v1/caches/held/leases/someone', { body: '{"ttlSeconds":300}' });
    await fx.request('held');
    await finishedTask(d.socket, (await call(d.socket, 'POST', '/v1/sync')).json.task_id);
    expect(sample(await metrics(d.tcp), 'purge_cache_agent_deferred_purges')).toBe(1);
    expect(await exists(path.join(fx.root, 'held'))).toBe(true);
  });
});

describe('GET /readyz', () => {
  it('turns 503 when the service is down for longer than three schedule intervals, and 200 once it is back', async () => {
    d = await startDaemon(fx, { serviceUrl: gate.url, args: ['--schedule', '*/1 * * * * *'] });
    const readyz = () => call(d!.tcp, 'GET', '/readyz');
    const ready = await eventually(async () => {
      const r = await readyz();
      return r.status === 200 ? r : undefined;
    }, 'ready');
    expect(ready.json).toMatchObject({ status: 'ready', thresholdSeconds: 3 });

    gate.mode = 'fail';
    const down = await eventually(async () => {
      const r = await readyz();
      return r.status === 503 ? r : undefined;
    }, 'not ready while the service is down');
    expect(down.json).toEqual({ code: 'NotReady', message: expect.stringMatching(/more than three schedule intervals.*unreachable/) });
    const status = (await call(d.socket, 'GET', '/v1/status')).json;
    expect(status.ready.ready).toBe(false);

    gate.mode = 'pass';
    await eventually(async () => ((await readyz()).status === 200 ? true : undefined), 'ready again once the service is back');
  });

  it('is 503 before the first successful cycle', async () => {
    gate.mode = 'fail';
    d = await startDaemon(fx, { serviceUrl: gate.url });
    const r = await call(d.socket, 'GET', '/readyz');
    expect(r.status).toBe(503);
    expect(r.json).toEqual({ code: 'NotReady', message: expect.stringContaining('no successful cycle yet') });
  });
});
