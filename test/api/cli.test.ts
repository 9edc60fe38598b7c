/**
 * The CLI on top of the API — status, sync, purge, lease — as child processes
 * against a running `run` daemon (and without one), plus how `run` sets up
 * and refuses its API.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { makeFixture, exists, readState, type Fixture } from '../helpers/fixture.js';
import { runCli, logLines, finished } from '../helpers/cli.js';
import { call, startDaemon, startGate, tokenFile, firstCycle, TOKEN, type Daemon } from '../helpers/api.js';
import { eventually } from '../helpers/wait.js';

let fx: Fixture;
let d: Daemon | undefined;

beforeEach(async () => {
  fx = await makeFixture();
});
afterEach(async () => {
  const result = await d?.stop();
  d = undefined;
  await fx.close();
  if (result) expect(result.code, result.stderr).toBe(0);
});

/** Client flags: the same state dir as the daemon, so the default socket location is found. */
const client = (...args: string[]) => runCli([...args, '--state-dir', fx.stateDir]);
const lastLog = (stderr: string) => logLines(stderr).at(-1) ?? {};

describe('status', () => {
  it('prints the running agent state, as text and as JSON', async () => {
    d = await startDaemon(fx, { listen: false });
    await firstCycle(d);
    const text = await client('status');
    expect(text.code, text.stderr).toBe(0);
    expect(text.stdout).toMatch(/^purge-cache-agent \d+\.\d+\.\d+, pid \d+/);
    expect(text.stdout).toContain(`api:          ${path.join(fx.stateDir, 'api.sock')}`);
    expect(text.stdout).toMatch(/last cycle: .* success/);
    const json = await client('status', '--json');
    expect(json.code).toBe(0);
    expect(JSON.parse(json.stdout)).toMatchObject({ config: { workerPoolId: 'test-prov/test-worker' }, lastCycle: { outcome: 'success' } });
  });

  it('exits 1 when no agent answers, saying where it looked', async () => {
    const result = await client('status');
    expect(result.code).toBe(1);
    const line = lastLog(result.stderr);
    expect(line.code).toBe('PCA_AGENT_UNREACHABLE');
    expect(String(line.msg)).toContain(path.join(fx.stateDir, 'api.sock'));
    expect(String(line.msg)).toContain('no socket there');
  });

  it('finds the agent through --api-socket, and through RUNTIME_DIRECTORY like systemd sets it', async () => {
    const runtime = path.join(fx.tmp.path, 'run');
    d = await startDaemon(fx, { listen: false, env: { RUNTIME_DIRECTORY: runtime } });
    expect(d.socket.socketPath).toBe(path.join(runtime, 'api.sock'));
    const viaEnv = await runCli(['status', '--state-dir', fx.stateDir], { env: { RUNTIME_DIRECTORY: runtime } });
    expect(viaEnv.code, viaEnv.stderr).toBe(0);
    const viaFlag = await runCli(['status', '--api-socket', d.socket.socketPath]);
    expect(viaFlag.code, viaFlag.stderr).toBe(0);
  });

  it('talks TCP with --api and --api-token-file, and says so when the token is wrong', async () => {
    const file = await tokenFile(fx);
    d = await startDaemon(fx, { args: ['--api-token-file', file] });
    const ok = await runCli(['status', '--json', '--api', d.tcpUrl, '--api-token-file', file]);
    expect(ok.code, ok.stderr).toBe(0);
    const viaEnv = await runCli(['status', '--json', '--api', d.tcpUrl], { env: { PURGE_CACHE_AGENT_API_TOKEN: TOKEN } });
    expect(viaEnv.code, viaEnv.stderr).toBe(0);
    const wrong = await runCli(['status', '--api', d.tcpUrl], { env: { PURGE_CACHE_AGENT_API_TOKEN: 'a-wrong-token-of-some-length' } });
    expect(wrong.code).toBe(1);
    expect(String(lastLog(wrong.stderr).msg)).toMatch(/missing or wrong API token/);
    expect(wrong.stderr).not.toContain('a-wrong-token-of-some-length');
    const none = await runCli(['status', '--api', d.tcpUrl]);
    expect(none.code).toBe(1);
  });
});

describe('sync', () => {
  it('starts a cycle; with --wait follows its output and exits 0', async () => {
    d = await startDaemon(fx, { listen: false });
    await firstCycle(d);
    await fx.makeCache('synced');
    await fx.request('synced');
    const result = await client('sync', '--wait');
    expect(result.code, result.stderr).toBe(0);
    const lines = result.stdout.trim().split('\n');
    expect(lines[0]).toMatch(/^sync: task [0-9a-f-]{36}$/);
    expect(lines).toContain('cycle started');
    expect(lines.some((l) => l.startsWith('purged synced'))).toBe(true);
    expect(lines.at(-1)).toMatch(/^cycle finished: 1 request\(s\), purged 1/);
    expect(await exists(path.join(fx.root, 'synced'))).toBe(false);

    const noWait = await client('sync');
    expect(noWait.code).toBe(0);
    expect(noWait.stdout).toMatch(/^sync started: task /);
  });

  it('exits 1 with the reason when the cycle fails', async () => {
    const gate = await startGate(fx.service.url);
    try {
      d = await startDaemon(fx, { listen: false, serviceUrl: gate.url });
      await firstCycle(d);
      gate.mode = 'fail';
      const result = await client('sync', '--wait');
      expect(result.code).toBe(1);
      expect(result.stdout).toMatch(/cycle failed/);
      const line = lastLog(result.stderr);
      expect(line.code).toBe('PCA_TASK_FAILED');
      expect(String(line.msg)).toMatch(/could not be queried/);
    } finally {
      gate.release();
      await gate.close();
    }
  });
});

describe('purge', () => {
  it('--dry-run lists what would go; --wait purges and follows; an unknown cache exits 1', async () => {
    const dir = await fx.makeCache('cargo registry');
    d = await startDaemon(fx, { listen: false });
    const dry = await client('purge', 'cargo registry', '--dry-run');
    expect(dry.code, dry.stderr).toBe(0);
    expect(dry.stdout.trim()).toBe(`would purge "cargo registry": ${dir}`);
    expect(await exists(dir)).toBe(true);

    const real = await client('purge', 'cargo registry', '--wait');
    expect(real.code, real.stderr).toBe(0);
    expect(real.stdout).toContain(`purged cargo registry (${dir})`);
    expect(real.stdout.trim().split('\n').at(-1)).toBe('purge finished: purged 1, deferred 0, failed 0');
    expect(await exists(dir)).toBe(false);

    const unknown = await client('purge', 'cargo registry');
    expect(unknown.code).toBe(1);
    expect(String(lastLog(unknown.stderr).msg)).toContain('no cache named "cargo registry" on this worker');
  });

  it('reports a deferral (the cache is leased) and exits 0', async () => {
    await fx.makeCache('busy');
    d = await startDaemon(fx, { listen: false });
    expect((await client('lease', 'acquire', 'busy', '--owner', 'job-7')).code).toBe(0);
    const result = await client('purge', 'busy', '--wait');
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toMatch(/deferred busy: lease held by job-7/);
    expect(await exists(path.join(fx.root, 'busy'))).toBe(true);
  });
});

describe('lease', () => {
  it('acquires and releases through the running agent', async () => {
    d = await startDaemon(fx, { listen: false });
    const acquired = await client('lease', 'acquire', 'a/b', '--owner', 'slot 3', '--ttl', '90s', '--json');
    expect(acquired.code, acquired.stderr).toBe(0);
    expect(JSON.parse(acquired.stdout)).toEqual({ cacheName: 'a/b', owner: 'slot 3', expiresAt: expect.any(String), ttlSeconds: 90 });
    const status = await call(d.socket, 'GET', '/v1/status');
    expect(status.json.leases).toEqual([expect.objectContaining({ cacheName: 'a/b', owner: 'slot 3' })]);

    const released = await client('lease', 'release', 'a/b', '--owner', 'slot 3');
    expect(released.code).toBe(0);
    expect(released.stdout).toContain('released the lease of "slot 3" on "a/b"');
    const again = await client('lease', 'release', 'a/b', '--owner', 'slot 3');
    expect(again.code).toBe(0);
    expect(again.stdout).toContain('held no live lease');
  });

  it('without a running agent, changes the state file under the state lock', async () => {
    const acquired = await client('lease', 'acquire', 'offline', '--owner', 'me', '--ttl', '5m');
    expect(acquired.code, acquired.stderr).toBe(0);
    expect(acquired.stdout).toContain('no agent running');
    expect((await readState(fx.stateDir)).leases).toEqual([expect.objectContaining({ cacheName: 'offline', owner: 'me', ttlSeconds: 300 })]);
    // The agent started afterwards keeps it.
    d = await startDaemon(fx, { listen: false });
    expect((await call(d.socket, 'GET', '/v1/status')).json.leases).toEqual([expect.objectContaining({ cacheName: 'offline', owner: 'me' })]);
    await d.stop();
    d = undefined;
    const released = await client('lease', 'release', 'offline', '--owner', 'me');
    expect(released.code, released.stderr).toBe(0);
    expect((await readState(fx.stateDir)).leases).toEqual([]);
  });

  it('refuses a bad owner or TTL (exit 2)', async () => {
    expect((await client('lease', 'acquire', 'x', '--owner', 'me', '--ttl', 'forever')).code).toBe(2);
    expect((await client('lease', 'acquire', 'x', '--owner', 'me', '--ttl', '0')).code).toBe(2);
    expect((await client('lease', 'acquire', 'x', '--owner', ' padded ')).code).toBe(2);
    expect((await client('lease', 'acquire', 'x')).code).toBe(2);
  });
});

describe('run and its API', () => {
  it('refuses to listen on a non-loopback address without a token (exit 2), before touching the state', async () => {
    const result = await runCli(['run', ...fx.args('--listen', '0.0.0.0:0')]);
    expect(result.code).toBe(2);
    expect(String(lastLog(result.stderr).msg)).toMatch(/refusing to serve the local API on 0\.0\.0\.0:0 without a token/);
    expect(await exists(path.join(fx.stateDir, 'lock'))).toBe(false);
  });

  it('fails to start (exit 1, not a configuration error) when the socket cannot be made, naming its path', async () => {
    // A regular file where the socket's directory should be: the machine's state, not a setting to fix.
    const blocker = path.join(fx.tmp.path, 'not-a-dir');
    await writeFile(blocker, '');
    const socket = path.join(blocker, 'api.sock');
    const result = await runCli(['run', ...fx.args('--api-socket', socket)]);
    expect(result.code).toBe(1);
    const last = lastLog(result.stderr);
    expect(last.code).toBe('PCA_API_START');
    expect(String(last.msg)).toContain(socket);
  });

  it('refuses a token shorter than 16 characters (exit 2)', async () => {
    const result = await runCli(['run', ...fx.args('--listen', '127.0.0.1:0')], { env: { PURGE_CACHE_AGENT_API_TOKEN: 'short' } });
    expect(result.code).toBe(2);
    expect(String(lastLog(result.stderr).msg)).toMatch(/at least 16 characters/);
  });

  it('on loopback without a token, serves the probes over TCP and refuses /v1 there', async () => {
    d = await startDaemon(fx);
    expect((await call(d.tcp, 'GET', '/healthz')).status).toBe(200);
    const v1 = await call(d.tcp, 'GET', '/v1/status');
    expect(v1.status).toBe(401);
    expect(v1.json.message).toMatch(/no API token is configured/);
    expect((await call(d.socket, 'GET', '/v1/status')).status).toBe(200);
  });

  it('replaces a stale socket, never a live one nor a file that is not a socket, and removes its own at exit', async () => {
    const socketPath = path.join(fx.stateDir, 'api.sock');
    // A process that dies without cleaning up leaves its socket file behind.
    const script = `require('net').createServer().listen(${JSON.stringify(socketPath)}, () => { console.log('up'); });`;
    await import('node:fs/promises').then((fs) => fs.mkdir(fx.stateDir, { recursive: true }));
    const holder = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
    await new Promise<void>((resolve) =>
      holder.stdout.once('data', () => {
        resolve();
      }),
    );

    // Live: the agent refuses to take it over.
    const refused = await runCli(['run', ...fx.args()]);
    expect(refused.code).toBe(1);
    expect(String(lastLog(refused.stderr).msg)).toMatch(/answers on the API socket/);

    holder.kill('SIGKILL');
    await new Promise((resolve) => holder.once('exit', resolve));
    expect((await stat(socketPath)).isSocket()).toBe(true);
    d = await startDaemon(fx, { listen: false });
    expect((await call(d.socket, 'GET', '/healthz')).status).toBe(200);
    await d.stop();
    d = undefined;
    expect(await exists(socketPath)).toBe(false);

    await writeFile(socketPath, 'not a socket');
    const notSocket = await runCli(['run', ...fx.args()]);
    expect(notSocket.code).toBe(2);
    expect(String(lastLog(notSocket.stderr).msg)).toMatch(/is not a socket/);
  });

  it('stops cleanly with a long poll open: the poll ends, the cycle in flight finishes, the socket goes', async () => {
    const gate = await startGate(fx.service.url);
    try {
      gate.mode = 'hold';
      d = await startDaemon(fx, { listen: false, serviceUrl: gate.url });
      await eventually(() => (gate.held() > 0 ? true : undefined), 'the cycle at start to reach the gate');
      const id = (await call(d.socket, 'POST', '/v1/sync')).json.task_id;
      const poll = call(d.socket, 'GET', `/v1/tasks/${id}?first=1&wait=60`).then(
        (reply) => reply.status,
        (err: unknown) => (err instanceof Error ? err.message : String(err)),
      );
      d.child.kill('SIGTERM');
      // The poll ends when the API closes (its connection is closed), long before its 60 s.
      expect(await poll).toBeDefined();
      gate.release();
      // Already told to stop: wait for it, without the second SIGTERM d.stop() would send.
      const result = await finished(d.child);
      d = undefined;
      expect(result.code, result.stderr).toBe(0);
      expect(logLines(result.stderr).some((l) => l.msg === 'stopped')).toBe(true);
      expect(await exists(path.join(fx.stateDir, 'api.sock'))).toBe(false);
    } finally {
      gate.release();
      await gate.close();
    }
  });
});
