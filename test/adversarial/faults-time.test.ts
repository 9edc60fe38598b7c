/**
 * Faults in time ("Faults"): the purge-cache service down for a
 * while and then back (the daemon keeps running, backs off with jitter,
 * /readyz turns 503 then 200, and the cursor holds so no request is missed),
 * and the worker's wall clock jumping backwards and forwards (the cursor never
 * moves backwards, a big jump is logged, and no request is missed). The
 * agent's clock is injected in-process for the jumps; the service keeps the
 * real one.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { createServer, request as httpRequest, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { startCli, finished, logLines } from '../helpers/cli.js';
import { makeFixture, exists, readState, POOL, type Fixture } from '../helpers/fixture.js';
import { call } from '../helpers/api.js';
import { captureLogger } from '../helpers/servers.js';
import { loadSettings } from '../../src/config/index.js';
import { Agent } from '../../src/engine/agent.js';
import { encodeCacheName } from '../../src/core/names.js';
import { isRunning, record } from './support.js';
import { eventually } from '../helpers/wait.js';

let fx: Fixture;
let gateServer: Server | undefined;
afterEach(async () => {
  if (gateServer) {
    gateServer.closeAllConnections();
    await new Promise<void>((r) =>
      gateServer!.close(() => {
        r();
      }),
    );
    gateServer = undefined;
  }
  // Unset when a test failed before making its fixture.
  await (fx as Fixture | undefined)?.close();
});

/** A gate in front of the service that records each query's URL and can play dead (503). */
async function gate(target: string) {
  const g = { mode: 'pass' as 'pass' | 'fail', urls: [] as { url: string; mode: string }[], url: '' };
  const t = new URL(target);
  gateServer = createServer((req, res) => {
    g.urls.push({ url: req.url ?? '', mode: g.mode });
    if (g.mode === 'fail') {
      req.resume();
      res.writeHead(503, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ code: 'ServiceUnavailable', message: 'down for maintenance' }));
      return;
    }
    const up = httpRequest({ host: t.hostname, port: t.port, method: req.method, path: req.url, headers: req.headers, agent: false }, (answer) => {
      res.writeHead(answer.statusCode ?? 502, answer.headers);
      answer.pipe(res);
    });
    up.on('error', () => res.destroy());
    req.pipe(up);
  });
  await new Promise<void>((r) => gateServer!.listen(0, '127.0.0.1', r));
  g.url = `http://127.0.0.1:${(gateServer.address() as AddressInfo).port}`;
  return g;
}

describe('the service down for a while, then back', () => {
  it('the daemon keeps running, backs off with jitter, /readyz goes 503 then 200, and the cursor holds', async (ctx) => {
    fx = await makeFixture();
    const g = await gate(fx.service.url);
    const daemon = startCli([
      'run',
      '--root-url',
      g.url,
      '--worker-pool-id',
      POOL,
      '--cache-root',
      fx.root,
      '--state-dir',
      fx.stateDir,
      '--schedule',
      '* * * * * *',
      '--jitter',
      '300ms',
      '--in-use-checks',
      'locks',
      '--log-level',
      'debug',
    ]);
    const done = finished(daemon, 240_000);
    const socket = { socketPath: path.join(fx.stateDir, 'api.sock') };
    const readyz = async () => (await call(socket, 'GET', '/readyz').catch(() => ({ status: 0 }))).status;
    const failedCycles = () => logLines(daemon.output.stderr).filter((l) => l.msg === 'cycle finished' && l.error !== undefined).length;
    let failed = 0;
    try {
      const tail = () =>
        `daemon ${isRunning(daemon) ? 'running' : `exited ${daemon.exitCode ?? daemon.signalCode}`}; stderr:\n${daemon.output.stderr.slice(-4000)}`;
      await eventually(async () => (await readyz()) === 200, 'the daemon to be ready', { timeoutMs: 30_000, explain: tail });
      g.mode = 'fail';
      const downAt = g.urls.length;
      // Once a cycle has failed, no successful one is still in flight: the cursor is the one that must hold.
      await eventually(() => failedCycles() >= 1, 'the first failed cycle', { timeoutMs: 60_000, explain: tail });
      const cursor = (await readState(fx.stateDir)).cursor as number;
      await fx.makeCache('filed during the outage');
      await fx.request('filed during the outage');
      await eventually(async () => (await readyz()) === 503, '/readyz to turn 503', { timeoutMs: 60_000, explain: tail });
      await eventually(() => failedCycles() >= 2, 'two failed cycles', { timeoutMs: 60_000, explain: tail });
      failed = failedCycles();
      expect(isRunning(daemon)).toBe(true);
      expect((await readState(fx.stateDir)).cursor).toBe(cursor);
      expect(await exists(path.join(fx.root, encodeCacheName('filed during the outage')!))).toBe(true);

      g.mode = 'pass';
      await eventually(async () => (await readyz()) === 200, '/readyz to turn 200 again', { timeoutMs: 60_000, explain: tail });
      await eventually(async () => !(await exists(path.join(fx.root, encodeCacheName('filed during the outage')!))), 'the purge filed during the outage');
      expect((await readState(fx.stateDir)).cursor).toBeGreaterThan(cursor);
      // The first query that got through asked from the cursor that held, minus the margin.
      const firstBack = g.urls.slice(downAt).find((u) => u.mode === 'pass' && u.url.includes('/purge-cache/test-prov/test-worker'))!;
      expect(Date.parse(new URL(firstBack.url, 'http://x').searchParams.get('since')!)).toBe(cursor - 5 * 60_000);

      // Backoff: 100 ms × 2^attempt, each within ±25 %, and not in lockstep (jittered).
      const retries = logLines(daemon.output.stderr).filter((l) => String(l.msg).startsWith('retrying GET'));
      expect(retries.length).toBeGreaterThanOrEqual(10);
      for (const r of retries) {
        const nominal = 100 * 2 ** Number(r.attempt);
        expect(Number(r.delayMs)).toBeGreaterThanOrEqual(nominal * 0.75 - 1);
        expect(Number(r.delayMs)).toBeLessThanOrEqual(nominal * 1.25 + 1);
      }
      const firstRetries = retries.filter((r) => r.attempt === 1).map((r) => r.delayMs);
      expect(new Set(firstRetries).size).toBeGreaterThan(1);
      expect(retries.some((r) => Math.abs(Number(r.delayMs) - 100 * 2 ** Number(r.attempt)) > 1)).toBe(true);
    } finally {
      daemon.kill('SIGTERM');
    }
    const result = await done;
    expect(result.code, result.stderr.slice(-2000)).toBe(0);
    record(ctx, {
      cases: failed,
      unit: 'failed cycles during the outage',
      detail: `each retried 5 times with jittered backoff; /readyz 200 → 503 → 200; the request filed during the outage purged once the service was back; first query back sent since = held cursor − margin`,
    });
  }, 1_200_000);
});

describe('the wall clock jumps', () => {
  it('backwards and forwards: the cursor never moves back, big jumps are logged, no request is missed', async (ctx) => {
    fx = await makeFixture();
    const clock = { offsetMs: 0, now: () => Date.now() + clock.offsetMs, monotonic: () => performance.now() };
    const log = captureLogger();
    const settings = await loadSettings({
      flags: { rootUrl: fx.service.url, workerPoolId: POOL, cacheRoot: [fx.root], stateDir: fx.stateDir, inUseChecks: 'locks' },
      env: {},
      cwd: fx.tmp.path,
    });
    const agent = await Agent.start(settings, { logger: log.logger, clock });
    const cursors: number[] = [];
    const steps: string[] = [];
    const cycle = async (label: string) => {
      const report = await agent.sync({ join: false });
      expect(report.error, `${label}: ${report.error}`).toBeUndefined();
      const c = agent.state.cursor!;
      if (cursors.length > 0) expect(c, `${label}: the cursor moved backwards`).toBeGreaterThanOrEqual(cursors.at(-1)!);
      cursors.push(c);
      steps.push(label);
      return report;
    };
    const purgedNow = async (name: string) => !(await exists(path.join(fx.root, encodeCacheName(name)!)));
    try {
      await cycle('on time');

      clock.offsetMs = -2 * 3_600_000;
      await fx.makeCache('filed-while-behind');
      await fx.request('filed-while-behind');
      await cycle('2 h behind');
      expect(await purgedNow('filed-while-behind')).toBe(true);
      expect(log.lines().some((l) => l.level === 'warn' && /wall clock jumped back/.test(l.msg))).toBe(true);

      clock.offsetMs = 3_600_000;
      await cycle('1 h ahead');
      expect(log.lines().some((l) => l.level === 'warn' && /clock differs from the purge-cache service's/.test(l.msg))).toBe(true);
      await fx.makeCache('filed-while-ahead');
      await fx.request('filed-while-ahead');
      await cycle('still 1 h ahead');
      expect(await purgedNow('filed-while-ahead'), 'a request filed while the worker clock ran ahead').toBe(true);

      clock.offsetMs = 0;
      await fx.makeCache('filed-after-fix');
      await fx.request('filed-after-fix');
      await cycle('on time again');
      expect(await purgedNow('filed-after-fix')).toBe(true);
    } finally {
      await agent.close();
    }

    // A cursor persisted in the future (a clock that ran days ahead, then was fixed): a full query, logged.
    await writeFile(
      path.join(fx.stateDir, 'state.json'),
      JSON.stringify({ ...(await readState(fx.stateDir)), cursor: Date.now() + 86_400_000, latestClock: Date.now() + 86_400_000 }),
    );
    await fx.makeCache('filed-under-future-cursor');
    await fx.request('filed-under-future-cursor');
    const log2 = captureLogger();
    const agent2 = await Agent.start(settings, { logger: log2.logger });
    try {
      const report = await agent2.sync();
      expect(report.since).toBeNull();
      expect(report.purged.map((p) => p.name)).toEqual(['filed-under-future-cursor']);
      expect(agent2.state.cursor).toBeGreaterThanOrEqual(Date.now() + 86_000_000);
      expect(log2.lines().some((l) => l.level === 'warn' && /wall clock jumped back/.test(l.msg))).toBe(true);
      steps.push('cursor a day in the future');
    } finally {
      await agent2.close();
    }
    record(ctx, { cases: steps.length, unit: 'cycles', detail: `${steps.join(' → ')}; a request filed at each step purged; cursor non-decreasing throughout` });
  }, 1_200_000);
});
