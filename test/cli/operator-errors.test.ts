/**
 * Errors an operator can cause, through the built CLI: each names what is
 * wrong and the fix, with the right exit code — never "unexpected error".
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { chmod, mkdir } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import path from 'node:path';
import { CLI_PATH, makeTempDir, type TempDir } from '../helpers/tmp.js';
import { cleanEnv, finished, logLines, runCli, startCli, waitForOutput } from '../helpers/cli.js';
import { makeFixture, type Fixture } from '../helpers/fixture.js';

const NOBODY = 65534;
// Root, setpriv, and a checkout nobody can run the CLI from (a clone in a private directory is not one).
const canSetpriv =
  process.getuid?.() === 0 &&
  spawnSync('setpriv', ['--reuid', String(NOBODY), '--regid', String(NOBODY), '--clear-groups', process.execPath, CLI_PATH, '--version'], {
    cwd: '/',
    env: cleanEnv(),
  }).status === 0;

/** The built CLI as an unprivileged user (nobody), with a clean environment. */
function runAsNobody(args: string[], cwd: string): { code: number | null; stderr: string } {
  const result = spawnSync('setpriv', ['--reuid', String(NOBODY), '--regid', String(NOBODY), '--clear-groups', process.execPath, CLI_PATH, ...args], {
    cwd,
    env: cleanEnv(),
    encoding: 'utf8',
    timeout: 60_000,
  });
  return { code: result.status, stderr: result.stderr };
}

/** A port something else listens on, on loopback. */
async function busyPort(): Promise<{ port: number; server: Server }> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { port: (server.address() as { port: number }).port, server };
}

let tmp: TempDir;
beforeEach(async () => {
  tmp = await makeTempDir('pca-operr-');
});
afterEach(async () => {
  await tmp.cleanup();
});

describe.skipIf(!canSetpriv)('an unusable state directory (as an unprivileged user)', () => {
  beforeEach(async () => {
    // nobody must reach the temp dir and the caches, so that the state directory is the only problem.
    await chmod(tmp.path, 0o755);
    await mkdir(path.join(tmp.path, 'caches'), { mode: 0o777 });
  });
  const agentArgs = () => ['--root-url', 'http://127.0.0.1:9', '--worker-pool-id', 'a/b', '--cache-root', path.join(tmp.path, 'caches')];

  it.each(['once', 'run'])('%s with the default /var/lib/purge-cache-agent: exit 2, naming --state-dir, the path and the reason', (command) => {
    const result = runAsNobody([command, ...agentArgs()], tmp.path);
    expect(result.code, result.stderr).toBe(2);
    const line = logLines(result.stderr).find((l) => l.code === 'PCA_STATE_DIR');
    expect(line, result.stderr).toBeDefined();
    expect(line!.msg).toMatch(/cannot use the state directory \/var\/lib\/purge-cache-agent \(--state-dir\): /);
    expect(line!.msg).toMatch(/this user \(uid 65534\) cannot (create|write) it/);
    expect(line!.msg).toMatch(/run as root .* or give a directory this user owns with --state-dir/);
    expect(result.stderr).not.toContain('unexpected error');
  });

  it('a root-owned state directory: exit 2, with its owner and mode', async () => {
    const stateDir = path.join(tmp.path, 'state');
    await mkdir(stateDir, { mode: 0o755 });
    await chmod(stateDir, 0o755);
    const result = runAsNobody(['once', ...agentArgs(), '--state-dir', stateDir], tmp.path);
    expect(result.code, result.stderr).toBe(2);
    expect(result.stderr).toContain(
      `cannot use the state directory ${stateDir} (--state-dir): this user (uid 65534) cannot write it (owned by uid 0, mode 0755)`,
    );
    expect(result.stderr).not.toContain('unexpected error');
  });
});

describe('a host error on a path', () => {
  it('is said as what failed where, never as "unexpected error"', async () => {
    const notADir = path.join(tmp.path, 'file');
    await (await import('node:fs/promises')).writeFile(notADir, 'a file, not a state directory');
    const result = await runCli(['caches', '--cache-root', tmp.path, '--state-dir', notADir]);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain(`cannot open ${notADir}/state.json: a part of the path is not a directory (ENOTDIR)`);
    expect(result.stderr).not.toContain('unexpected error');
  });
});

describe('busy ports', () => {
  it('serve --port: names the setting and the port', async () => {
    const { port, server } = await busyPort();
    try {
      const result = await runCli(['serve', '--port', String(port)]);
      expect(result.code).toBe(1);
      expect(result.stderr).toContain(`cannot listen on 127.0.0.1:${port} (--port): another process is listening there`);
      expect(result.stderr).not.toContain('unexpected error');
    } finally {
      server.close();
    }
  });

  it('run --listen: names the setting and the port', async () => {
    const fx: Fixture = await makeFixture();
    const { port, server } = await busyPort();
    try {
      const result = await runCli(['run', ...fx.args('--listen', `127.0.0.1:${port}`)]);
      expect(result.code).toBe(1);
      expect(result.stderr).toContain(`cannot listen on 127.0.0.1:${port} (--listen)`);
      expect(result.stderr).not.toContain('unexpected error');
    } finally {
      server.close();
      await fx.close();
    }
  });
});

describe('serve is not opened to the network by accident', () => {
  it('refuses a non-loopback --host without --clients, saying to pass --clients', async () => {
    const result = await runCli(['serve', '--host', '0.0.0.0', '--port', '0']);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('refusing to serve open access on 0.0.0.0 (--host)');
    expect(result.stderr).toContain('Pass --clients FILE');
    expect(result.stdout).toBe('');
  });

  it('serves with --allow-anonymous, and warns at start', async () => {
    const child = startCli(['serve', '--host', '0.0.0.0', '--port', '0', '--allow-anonymous']);
    try {
      await waitForOutput(child, (o) => o.stdout.includes('http://'));
      const warning = logLines(child.output.stderr).find((l) => l.level === 'warn');
      expect(warning?.msg).toMatch(/open access on a non-loopback address \(--allow-anonymous\)/);
    } finally {
      child.kill('SIGTERM');
      expect((await finished(child)).code).toBe(0);
    }
  });

  it('serves a loopback --host without --clients, as before', async () => {
    const child = startCli(['serve', '--host', '127.0.0.1', '--port', '0']);
    try {
      await waitForOutput(child, (o) => o.stdout.includes('http://127.0.0.1:'));
      expect(logLines(child.output.stderr).some((l) => l.level === 'warn')).toBe(false);
    } finally {
      child.kill('SIGTERM');
      await finished(child);
    }
  });
});
