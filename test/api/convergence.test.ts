/**
 * Fleet convergence: two agents (two workers' caches and states) against one
 * service. Each exposes, per cache name, its standing on the latest request;
 * summed over workers that is how many applied it and how many still hold it.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { makeFixture, type Fixture } from '../helpers/fixture.js';
import { call, finishedTask, firstCycle, metrics, sample, startDaemon, type Daemon } from '../helpers/api.js';
import { eventually } from '../helpers/wait.js';

const fixtures: Fixture[] = [];
const daemons: Daemon[] = [];
let holder: ChildProcess | undefined;
const release = (child: ChildProcess | undefined): void => {
  if (child?.pid !== undefined) {
    try {
      process.kill(-child.pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
};
afterEach(async () => {
  release(holder);
  for (const d of daemons.splice(0)) expect((await d.stop()).code).toBe(0);
  for (const fx of fixtures.splice(0)) await fx.close();
});

const SERIES = 'purge_cache_agent_purge_request_before_timestamp_seconds';

/** This worker's convergence series: state by cache name. */
async function standings(d: Daemon): Promise<Record<string, string>> {
  const family = (await metrics(d.tcp)).get(SERIES);
  return Object.fromEntries((family?.metrics ?? []).map((m) => [m.labels!.cache_name!, m.labels!.state!]));
}

describe('purge convergence across workers', () => {
  it('shows per cache name which workers applied the latest request and which still hold it, and why', async () => {
    const one = await makeFixture();
    const two = await makeFixture();
    fixtures.push(one, two);
    await one.makeCache('deps');
    const held = await two.makeCache('deps');
    await one.makeCache('tool "quoted"\nname');
    // A task on worker two holds its cache the systemd-tmpfiles way.
    // Its own process group: flock(1)'s command inherits the locked descriptor, so both must go to let go.
    holder = spawn('flock', ['--shared', held, 'sh', '-c', 'echo held; exec sleep 600'], { stdio: ['ignore', 'pipe', 'ignore'], detached: true });
    await new Promise((resolve) => holder!.stdout!.once('data', resolve));
    await one.request('deps');
    await one.request('tool "quoted"\nname');

    const d1 = await startDaemon(one, { args: ['--in-use-checks', 'locks'] });
    daemons.push(d1);
    const d2 = await startDaemon(two, { serviceUrl: one.service.url, args: ['--in-use-checks', 'locks'] });
    daemons.push(d2);
    await firstCycle(d1);
    await firstCycle(d2);

    expect(await standings(d1)).toEqual({ deps: 'applied', 'tool "quoted"\nname': 'applied' });
    expect(await standings(d2)).toEqual({ deps: 'in-use', 'tool "quoted"\nname': 'applied' });
    const status = (await call(d2.socket, 'GET', '/v1/status')).json;
    expect(status.requests.find((r: { cacheName: string }) => r.cacheName === 'deps')).toMatchObject({ purged: 0, pending: 1, applied: expect.any(String) });

    // Each request is counted once, however often the service returns it.
    const seen = sample(await metrics(d1.tcp), 'purge_cache_agent_requests_seen_total');
    expect(seen).toBe(2);
    expect((await finishedTask(d1.socket, (await call(d1.socket, 'POST', '/v1/sync')).json.task_id)).code).toBe(0);
    expect(sample(await metrics(d1.tcp), 'purge_cache_agent_requests_seen_total')).toBe(seen);

    // The task ends: worker two converges at its next recheck.
    release(holder);
    await eventually(async () => ((await standings(d2)).deps === 'applied' ? true : undefined), 'worker two to apply the purge');
    const after = (await call(d2.socket, 'GET', '/v1/status')).json;
    expect(after.requests.find((r: { cacheName: string }) => r.cacheName === 'deps')).toMatchObject({ purged: 1, pending: 0 });
  });
});
