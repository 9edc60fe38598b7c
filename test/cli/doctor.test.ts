/**
 * `doctor` through the built CLI against the embedded purge-cache service on
 * 127.0.0.1: a good configuration passes every check (exit 0); each broken
 * one fails its own line, with the fix (exit 1).
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { mkdir } from 'node:fs/promises';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { createServer, type Server } from 'node:net';
import path from 'node:path';
import { finished, runCli, startCli, waitForOutput } from '../helpers/cli.js';
import { makeFixture, POOL, type Fixture } from '../helpers/fixture.js';
import { startService, type RunningService } from '../../src/service/index.js';
import { silentLogger } from '../../src/log.js';

const hasTools = ['flock', 'perl', 'ionice'].every((tool) => spawnSync('sh', ['-c', `command -v ${tool}`]).status === 0);

let fx: Fixture;
beforeEach(async () => {
  fx = await makeFixture();
});
afterEach(async () => {
  await fx.close();
});

/** The doctor's lines, by check name. */
function lines(stdout: string): Map<string, string> {
  const byCheck = new Map<string, string>();
  for (const line of stdout.split('\n')) {
    const match = /^(ok|warn|FAIL|skip) {2}([^:]+):/.exec(line.replace(/^ok {2}/, 'ok'));
    if (match) byCheck.set(match[2]!, line);
  }
  return byCheck;
}

const doctor = (args: string[], env: Record<string, string> = {}) => runCli(['doctor', ...args], { env });

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) =>
    server.close(() => {
      resolve();
    }),
  );
  return port;
}

describe.skipIf(!hasTools)('a good configuration', () => {
  it('passes every check, one line each, and exits 0', async () => {
    await fx.makeCache('cargo');
    const port = await freePort();
    const result = await doctor(fx.args('--listen', `127.0.0.1:${port}`));
    expect(result.code, result.stdout + result.stderr).toBe(0);
    const byCheck = lines(result.stdout);
    for (const check of [
      'configuration',
      'state directory',
      `cache root ${fx.root}`,
      'flock',
      'perl',
      'ionice',
      'service',
      'credentials and scope',
      'clock',
      'API socket',
      `API port 127.0.0.1`,
    ]) {
      const line = [...byCheck].find(([name]) => name.startsWith(check))?.[1];
      expect(line, `${check} in\n${result.stdout}`).toMatch(/^ok /);
    }
    expect(byCheck.get(`cache root ${fx.root}`)).toMatch(/1 cache, readable, purgeable by this user, on \S+ \(mounted at \//);
    expect(byCheck.get('credentials and scope')).toContain(`purge-cache:purge-requests::${POOL} is granted`);
    expect(result.stdout.trim().split('\n').at(-1)).toMatch(/^all \d+ checks passed/);
  });

  it('--json gives the same checks', async () => {
    const result = await doctor([...fx.args(), '--json']);
    expect(result.code, result.stdout).toBe(0);
    const report = JSON.parse(result.stdout);
    expect(report.passed).toBe(true);
    expect(report.checks.map((c: { check: string }) => c.check)).toContain('credentials and scope');
  });

  it('an agent running on this configuration is fine: it holds the state and the socket', async () => {
    const daemon = startCli(['run', ...fx.args()]);
    try {
      await waitForOutput(daemon, (o) => o.stderr.includes('local API listening'));
      const result = await doctor(fx.args());
      expect(result.code, result.stdout).toBe(0);
      expect(lines(result.stdout).get('state directory')).toContain(`the running agent (pid ${daemon.pid})`);
      expect(lines(result.stdout).get('API socket')).toContain(`the running agent (pid ${daemon.pid}) listens on it`);
    } finally {
      daemon.kill('SIGTERM');
      await finished(daemon);
    }
  });
});

describe('broken configurations: each failing line says the fix, exit 1', () => {
  it('a setting that does not parse', async () => {
    const result = await doctor(fx.args('--skew-margin', 'soon'));
    expect(result.code).toBe(1);
    expect(result.stdout).toMatch(/^FAIL {2}configuration: invalid skewMargin \(flag --skew-margin\): expected .* — fix: /m);
  });

  it('no worker pool, and a missing cache root', async () => {
    const missing = path.join(fx.tmp.path, 'nope');
    const result = await doctor(['--root-url', fx.service.url, '--cache-root', missing, '--state-dir', fx.stateDir]);
    expect(result.code).toBe(1);
    expect(result.stdout).toMatch(/^FAIL {2}configuration: no worker pool configured/m);
    expect(lines(result.stdout).get(`cache root ${missing}`)).toBe(
      `FAIL  cache root ${missing}: ${missing} does not exist — fix: create it (mkdir -p ${missing}), or correct --cache-root`,
    );
  });

  it('a service that does not answer', async () => {
    const result = await doctor(fx.args('--root-url', 'http://127.0.0.1:9'));
    expect(result.code).toBe(1);
    expect(lines(result.stdout).get('service')).toMatch(/^FAIL {2}service: .*127\.0\.0\.1:9.* — fix: /);
    expect(lines(result.stdout).get('credentials and scope')).toMatch(/^skip/);
  });

  describe('credentials and scopes (a service that verifies Hawk)', () => {
    let service: RunningService;
    beforeEach(async () => {
      service = await startService({
        host: '127.0.0.1',
        port: 0,
        logger: silentLogger(),
        clients: {
          'worker/good': { accessToken: 'good-access-token-0123456789', scopes: [`purge-cache:purge-requests::${POOL}`] },
          'worker/no-scope': { accessToken: 'noscope-access-token-0123456789', scopes: ['purge-cache:purge-requests::other/pool'] },
        },
      });
    });
    afterEach(async () => {
      await service.close();
    });
    const args = () => fx.args('--root-url', service.url);

    it('accepted, with the scope', async () => {
      const result = await doctor(args(), { TASKCLUSTER_CLIENT_ID: 'worker/good', TASKCLUSTER_ACCESS_TOKEN: 'good-access-token-0123456789' });
      expect(lines(result.stdout).get('credentials and scope')).toMatch(/^ok {4}credentials and scope: clientId worker\/good: purgeRequests/);
    });
    it('a wrong access token: 401, said as rejected credentials', async () => {
      const result = await doctor(args(), { TASKCLUSTER_CLIENT_ID: 'worker/good', TASKCLUSTER_ACCESS_TOKEN: 'wrong-access-token-0123456789' });
      expect(result.code).toBe(1);
      const line = lines(result.stdout).get('credentials and scope')!;
      expect(line).toMatch(/^FAIL {2}credentials and scope: the service rejected the credentials \(clientId worker\/good\)/);
      expect(line).toContain('— fix: Check TASKCLUSTER_CLIENT_ID and TASKCLUSTER_ACCESS_TOKEN');
      expect(result.stdout).not.toContain('wrong-access-token');
    });
    it('a client without the scope: 403, naming the scope', async () => {
      const result = await doctor(args(), { TASKCLUSTER_CLIENT_ID: 'worker/no-scope', TASKCLUSTER_ACCESS_TOKEN: 'noscope-access-token-0123456789' });
      expect(result.code).toBe(1);
      expect(lines(result.stdout).get('credentials and scope')).toMatch(
        new RegExp(`^FAIL {2}credentials and scope: clientId worker/no-scope lacks the scope purge-cache:purge-requests::${POOL}.* — fix: `),
      );
    });
    it('anonymous access where the service wants credentials', async () => {
      const result = await doctor(args());
      expect(result.code).toBe(1);
      expect(lines(result.stdout).get('credentials and scope')).toMatch(
        /^FAIL {2}credentials and scope: anonymous access lacks the scope .* — fix: No credentials are configured/,
      );
    });
  });

  it("a clock an hour off the service's", async () => {
    // The service's answers, with a Date header an hour ahead.
    const skewed: HttpServer = createHttpServer((req, res) => {
      fetch(`${fx.service.url}${req.url}`, { method: req.method ?? 'GET' })
        .then(async (upstream) => {
          res.writeHead(upstream.status, { 'content-type': 'application/json', date: new Date(Date.now() + 3_600_000).toUTCString() });
          res.end(await upstream.text());
        })
        .catch(() => res.destroy());
    });
    await new Promise<void>((resolve) => skewed.listen(0, '127.0.0.1', resolve));
    try {
      const url = `http://127.0.0.1:${(skewed.address() as { port: number }).port}`;
      const result = await doctor(fx.args('--root-url', url));
      expect(result.code).toBe(1);
      expect(lines(result.stdout).get('clock')).toMatch(
        /^FAIL {2}clock: the service's clock is 3\d{3}\.\ds ahead of this worker's, more than --skew-margin \(5m\).* — fix: synchronise this worker's clock/,
      );
    } finally {
      skewed.close();
    }
  });

  it('another agent holding the state directory: named by its pid', async () => {
    // Its own API socket, so this doctor does not see it as the agent of this configuration.
    const daemon = startCli(['run', ...fx.args('--api-socket', path.join(fx.tmp.path, 'other.sock'))]);
    try {
      await waitForOutput(daemon, (o) => o.stderr.includes('local API listening'));
      const result = await doctor(fx.args());
      expect(result.code).toBe(1);
      expect(lines(result.stdout).get('state directory')).toMatch(
        new RegExp(
          `^FAIL {2}state directory: .*another purge-cache-agent \\(pid ${daemon.pid}: .*run.*\\) holds its lock.* — fix: stop that agent, or give this configuration its own --state-dir`,
        ),
      );
    } finally {
      daemon.kill('SIGTERM');
      await finished(daemon);
    }
  });

  it('a busy --listen port, and an API socket path that is not a socket', async () => {
    const busy: Server = createServer();
    await new Promise<void>((resolve) => busy.listen(0, '127.0.0.1', resolve));
    const port = (busy.address() as { port: number }).port;
    const notSocket = path.join(fx.tmp.path, 'not-a-socket');
    await mkdir(notSocket);
    try {
      const result = await doctor(fx.args('--listen', `127.0.0.1:${port}`, '--api-socket', notSocket));
      expect(result.code).toBe(1);
      const byCheck = lines(result.stdout);
      expect([...byCheck.values()].find((l) => l.includes(`API port 127.0.0.1:${port}`))).toMatch(/^FAIL .*another process listens there.* — fix: /);
      expect(byCheck.get('API socket')).toMatch(
        /^FAIL {2}API socket: .*not-a-socket exists and is not a socket.* — fix: remove that file, or set --api-socket/,
      );
    } finally {
      busy.close();
    }
  });

  it('system tools missing from the PATH', async () => {
    const emptyBin = path.join(fx.tmp.path, 'bin');
    await mkdir(emptyBin);
    const result = await doctor(fx.args(), { PATH: emptyBin });
    expect(result.code).toBe(1);
    const byCheck = lines(result.stdout);
    expect(byCheck.get('flock')).toMatch(/^FAIL {2}flock: .* — fix: install util-linux/);
    expect(byCheck.get('perl')).toMatch(/^FAIL {2}perl: .* — fix: install perl/);
    expect(byCheck.get('ionice')).toMatch(/^FAIL {2}ionice: .* — fix: install util-linux, or set --delete-priority normal/);
  });
});
