/** The daemon through the built CLI: schedule, SIGHUP, SIGTERM, and state on exit. */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import path from 'node:path';
import { startCli, waitForOutput, finished, logLines } from '../helpers/cli.js';
import { makeFixture, exists, readState, type Fixture } from '../helpers/fixture.js';
import { eventually } from '../helpers/wait.js';

let fx: Fixture;
beforeEach(async () => {
  fx = await makeFixture();
});
afterEach(async () => {
  await fx.close();
});

const cycles = (stderr: string) => logLines(stderr).filter((l) => typeof l.msg === 'string' && l.msg.startsWith('cycle finished')).length;

describe('run', () => {
  it('purges on its schedule, runs a cycle on SIGHUP, and saves its state on SIGTERM', async () => {
    const dir = await fx.makeCache('doomed');
    // A schedule far away: only the start cycle and SIGHUP run cycles here.
    const daemon = startCli(['run', ...fx.args('--schedule', '0 0 1 1 *', '--jitter', '0', '--log-level', 'debug')]);
    try {
      await waitForOutput(daemon, (o) => cycles(o.stderr) >= 1);
      await fx.request('doomed');
      daemon.kill('SIGHUP');
      await waitForOutput(daemon, (o) => cycles(o.stderr) >= 2);
      expect(await exists(dir)).toBe(false);
      const before = (await readState(fx.stateDir)).cursor;
      daemon.kill('SIGTERM');
      const result = await finished(daemon);
      expect(result.code).toBe(0);
      expect(logLines(result.stderr).some((l) => l.msg === 'stopped')).toBe(true);
      expect((await readState(fx.stateDir)).cursor).toBe(before);
    } finally {
      daemon.kill('SIGKILL');
    }
  });

  it('runs cycles on a seconds schedule and stops on SIGINT', async () => {
    const daemon = startCli(['run', ...fx.args('--schedule', '* * * * * *', '--jitter', '0', '--log-level', 'debug')]);
    try {
      await waitForOutput(daemon, (o) => cycles(o.stderr) >= 3);
      await fx.makeCache('later');
      await fx.request('later');
      await eventually(async () => !(await exists(path.join(fx.root, 'later'))), 'a scheduled cycle to purge the requested cache');
      daemon.kill('SIGINT');
      expect((await finished(daemon)).code).toBe(0);
    } finally {
      daemon.kill('SIGKILL');
    }
  });

  it('stops promptly on SIGTERM even while its query hangs on a service that never answers', async () => {
    const { createServer } = await import('node:http');
    const silent = createServer(() => {});
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    const { port } = silent.address() as { port: number };
    const daemon = startCli(['run', ...fx.args('--log-level', 'debug'), '--root-url', `http://127.0.0.1:${port}`]);
    try {
      await waitForOutput(daemon, (o) => o.stderr.includes('purge-cache-agent started'));
      await new Promise((r) => setTimeout(r, 300));
      daemon.kill('SIGTERM');
      // Each attempt of the query may take 30 s, with 5 retries: finishing well inside their 150 s proves it was abandoned.
      const result = await finished(daemon, 120_000);
      expect(result.code).toBe(0);
      expect(result.stderr).toContain('abandoned: the agent is stopping');
    } finally {
      daemon.kill('SIGKILL');
      silent.closeAllConnections();
      silent.close();
    }
  });
});
