/**
 * Log lines as log shippers read them (level names, ISO 8601 times), the
 * start line of `once` and `run`, the daemon's heartbeat, and `once --jitter`,
 * through the built CLI. Nothing here asserts how long anything took.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { runCli, startCli, waitForOutput, finished, logLines } from '../helpers/cli.js';
import { makeFixture, POOL, type Fixture } from '../helpers/fixture.js';

const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;
const TOKEN = 'log-test-access-token-0123456789';

let fx: Fixture;
beforeEach(async () => {
  fx = await makeFixture();
});
afterEach(async () => {
  await fx.close();
});

describe('log lines', () => {
  it('carry the level as a name and the time in ISO 8601, and the start line of once names what it works on', async () => {
    const result = await runCli(['once', ...fx.args('--cache', `single=${fx.tmp.path}/single`)], {
      env: { TASKCLUSTER_CLIENT_ID: 'me', TASKCLUSTER_ACCESS_TOKEN: TOKEN },
    });
    expect(result.code, result.stderr).toBe(0);
    const lines = logLines(result.stderr);
    expect(lines.length).toBeGreaterThan(0);
    for (const line of lines) {
      expect(['trace', 'debug', 'info', 'warn', 'error', 'fatal']).toContain(line.level);
      expect(String(line.time)).toMatch(ISO);
    }
    const start = lines.find((l) => l.msg === 'purge-cache-agent once started');
    expect(start, result.stderr).toBeDefined();
    const pkg = (await import('../../package.json', { with: { type: 'json' } })).default as { version: string };
    expect(start).toMatchObject({
      level: 'info',
      version: pkg.version,
      pool: POOL,
      service: { rootUrl: fx.service.url },
      cacheRoots: [expect.stringContaining('caches')],
      caches: [`single=${fx.tmp.path}/single`],
      stateDir: fx.stateDir,
      clientId: 'me',
    });
    expect(result.stderr).not.toContain(TOKEN);
  });

  it('the daemon names the same at start, and logs a heartbeat while its cycles find nothing', async () => {
    const daemon = startCli(['run', ...fx.args('--schedule', '* * * * * *', '--jitter', '0', '--heartbeat', '500ms')]);
    try {
      await waitForOutput(daemon, (o) => logLines(o.stderr).some((l) => l.msg === 'alive: no purge to apply'), 60_000);
      const lines = logLines(daemon.output.stderr);
      const start = lines.find((l) => l.msg === 'purge-cache-agent started');
      expect(start).toMatchObject({ level: 'info', pool: POOL, service: { rootUrl: fx.service.url }, stateDir: fx.stateDir, clientId: 'anonymous' });
      const heartbeat = lines.find((l) => l.msg === 'alive: no purge to apply')!;
      expect(heartbeat.level).toBe('info');
      expect(heartbeat.cyclesRun).toEqual(expect.any(Number));
      expect(heartbeat.failedCycles).toBe(0);
      if (heartbeat.lastSuccess !== null) expect(heartbeat.lastSuccess).toMatch(ISO);
      // Quiet cycles stay at debug: the heartbeat is what shows the agent alive.
      expect(lines.some((l) => l.msg === 'cycle finished')).toBe(false);
    } finally {
      daemon.kill('SIGTERM');
      expect((await finished(daemon)).code).toBe(0);
    }
  });
});

describe('once --jitter', () => {
  it('waits a random delay up to --jitter before the cycle, and says so', async () => {
    const result = await runCli(['once', ...fx.args('--jitter', '1s')]);
    expect(result.code, result.stderr).toBe(0);
    const lines = logLines(result.stderr);
    const wait = lines.findIndex((l) => String(l.msg).includes('(--jitter)'));
    expect(wait, result.stderr).toBeGreaterThanOrEqual(0);
    expect(lines[wait]!.jitterMs).toBe(1000);
    expect(lines[wait]!.delayMs).toBeGreaterThanOrEqual(0);
    expect(lines[wait]!.delayMs).toBeLessThan(1000);
    // The wait comes before the cycle starts.
    expect(wait).toBeLessThan(lines.findIndex((l) => l.msg === 'purge-cache-agent once started'));
  });

  it('does not wait by default: a sync before each task starts at once', async () => {
    const result = await runCli(['once', ...fx.args()]);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stderr).not.toContain('(--jitter)');
  });
});

describe("once's text summary", () => {
  it('includes evictions, and a dry run shows the size each would free', async () => {
    await fx.makeCache('older', { blob: 'x'.repeat(1024 * 1024) });
    await new Promise((r) => setTimeout(r, 20));
    await fx.makeCache('newer', { blob: 'y'.repeat(1024 * 1024) });
    const dry = await runCli(['once', ...fx.args('--max-size', '1.5M', '--dry-run')]);
    expect(dry.code, dry.stderr).toBe(0);
    expect(dry.stdout).toMatch(/would evict 1\n/);
    expect(dry.stdout).toMatch(/ {2}would evict older {2}\S+older {2}\(max-size, 1\.0 MiB\)/);
  });
});
