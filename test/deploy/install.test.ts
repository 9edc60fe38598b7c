/**
 * scripts/install-systemd.sh, run into a temporary root (--root / DESTDIR):
 * the units land unchanged, this host's settings go in a drop-in, the example
 * configuration and the credentials file get their owners and modes and are
 * never overwritten, and the installed result passes `systemd-analyze verify`.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { chmod, lstat, mkdir, readFile, readlink, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { loadSettings } from '../../src/config/index.js';
import { makeTempDir, type TempDir, CLI_PATH } from '../helpers/tmp.js';
import { exists } from '../helpers/fixture.js';
import { hasCommand, makeVerifyRoot, parseUnit, readRepoFile, repoFile, unitList, unitValue, verify } from './helpers.js';

const SCRIPT = repoFile('scripts/install-systemd.sh');
const UNITS = ['purge-cache-agent.service', 'purge-cache-agent-once.service', 'purge-cache-agent-once.timer'];
const isRoot = process.getuid?.() === 0;
const analyze = hasCommand('systemd-analyze');

interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

async function install(args: string[], env: Record<string, string> = {}): Promise<Result> {
  return promisify(execFile)('bash', [SCRIPT, ...args], { env: { ...process.env, ...env } }).then(
    ({ stdout, stderr }) => ({ code: 0, stdout, stderr }),
    (err: unknown) => {
      // execFile rejects with the exit code and both outputs on the error.
      const failed = err as { code: number; stdout: string; stderr: string };
      return { code: failed.code, stdout: failed.stdout, stderr: failed.stderr };
    },
  );
}

const mode = async (p: string): Promise<number> => (await stat(p)).mode & 0o7777;
const owner = async (p: string): Promise<[number, number]> => {
  const st = await stat(p);
  return [st.uid, st.gid];
};

let tmp: TempDir;
let root: string;
const at = (p: string): string => path.join(root, p);
beforeEach(async () => {
  tmp = await makeTempDir('pca-install-');
  root = tmp.path;
});
afterEach(async () => {
  await tmp.cleanup();
});

/** An executable where npm puts a global install with prefix /usr/local, inside the root. */
async function fakeBin(dir = '/usr/local/bin'): Promise<string> {
  await mkdir(at(dir), { recursive: true });
  const bin = path.join(dir, 'purge-cache-agent');
  await writeFile(at(bin), `#!/bin/sh\nexec ${JSON.stringify(process.execPath)} ${JSON.stringify(CLI_PATH)} "$@"\n`, { mode: 0o755 });
  return bin;
}

describe('install-systemd.sh', () => {
  it('writes the units unchanged, a drop-in for the cache roots, the config and the credentials file with their modes', async () => {
    await fakeBin();
    const result = await install([
      '--root',
      root,
      '--cache-root',
      '/srv/caches',
      '--cache-root',
      '/var/cache/more',
      '--root-url',
      'https://tc.example.net',
      '--worker-pool-id',
      'fleet/linux-large',
      '--enable',
      'timer',
    ]);
    expect(result.code, result.stderr).toBe(0);

    for (const unit of UNITS) {
      expect(await readFile(at(`/etc/systemd/system/${unit}`), 'utf8')).toBe(readRepoFile(`systemd/${unit}`));
      expect(await mode(at(`/etc/systemd/system/${unit}`))).toBe(0o644);
    }
    for (const service of UNITS.slice(0, 2)) {
      const dropin = parseUnit(await readFile(at(`/etc/systemd/system/${service}.d/10-install.conf`), 'utf8'));
      expect(unitList(dropin, 'Service', 'ReadWritePaths')).toEqual(['/srv/caches', '/var/cache/more']);
      // The binary is where systemd's search path finds it: the units' bare ExecStart= stands.
      expect(dropin.get('Service')?.has('ExecStart')).toBe(false);
    }

    const confDir = at('/etc/purge-cache-agent');
    expect(await mode(confDir)).toBe(0o750);
    expect(await mode(path.join(confDir, 'agent.yaml'))).toBe(0o640);
    expect(await mode(path.join(confDir, 'agent.env'))).toBe(0o600);
    if (isRoot) {
      for (const p of [confDir, path.join(confDir, 'agent.yaml'), path.join(confDir, 'agent.env'), at('/etc/systemd/system/purge-cache-agent.service')]) {
        expect(await owner(p), p).toEqual([0, 0]);
      }
    }
    expect(await readFile(path.join(confDir, 'agent.env'), 'utf8')).toBe(readRepoFile('systemd/purge-cache-agent.env.example'));
    // The new agent.yaml: the commented example, with what was given filled in.
    const settings = await loadSettings({ flags: { config: path.join(confDir, 'agent.yaml') }, env: {}, cwd: '/' });
    expect(settings.rootUrl).toBe('https://tc.example.net');
    expect(settings.workerPoolId).toBe('fleet/linux-large');
    expect(settings.cacheRoots).toEqual(['/srv/caches', '/var/cache/more']);
    expect(await readFile(path.join(confDir, 'agent.yaml'), 'utf8')).toContain('# schedule:');

    // --enable timer, offline: the symlink systemctl makes.
    const wants = at('/etc/systemd/system/timers.target.wants/purge-cache-agent-once.timer');
    if (hasCommand('systemctl')) expect(await readlink(wants)).toBe('/etc/systemd/system/purge-cache-agent-once.timer');
  });

  it("never overwrites the configuration or the credentials, but restores the credentials file's mode", async () => {
    await fakeBin();
    expect((await install(['--root', root])).code).toBe(0);
    const env = at('/etc/purge-cache-agent/agent.env');
    const yaml = at('/etc/purge-cache-agent/agent.yaml');
    await writeFile(env, 'TASKCLUSTER_CLIENT_ID=mine\nTASKCLUSTER_ACCESS_TOKEN=secret\n');
    await writeFile(yaml, 'workerPoolId: mine/edited\n');
    await chmod(env, 0o644);
    const again = await install(['--root', root, '--root-url', 'https://ignored.example']);
    expect(again.code, again.stderr).toBe(0);
    expect(again.stdout).toContain('kept');
    expect(await readFile(env, 'utf8')).toBe('TASKCLUSTER_CLIENT_ID=mine\nTASKCLUSTER_ACCESS_TOKEN=secret\n');
    expect(await readFile(yaml, 'utf8')).toBe('workerPoolId: mine/edited\n');
    expect(await mode(env)).toBe(0o600);
    // No overrides asked for: no drop-in.
    expect(await exists(at('/etc/systemd/system/purge-cache-agent.service.d/10-install.conf'))).toBe(false);
  });

  it('honours DESTDIR like --root', async () => {
    await fakeBin();
    const result = await install([], { DESTDIR: root });
    expect(result.code, result.stderr).toBe(0);
    expect(await exists(at('/etc/systemd/system/purge-cache-agent.service'))).toBe(true);
    expect(await mode(at('/etc/purge-cache-agent/agent.env'))).toBe(0o600);
  });

  it("names a binary outside systemd's search path in the drop-in", async () => {
    const bin = await fakeBin('/opt/node-v20/bin');
    const result = await install(['--root', root, '--bin', bin]);
    expect(result.code, result.stderr).toBe(0);
    for (const [service, mode] of [
      ['purge-cache-agent.service', 'run'],
      ['purge-cache-agent-once.service', 'once'],
    ]) {
      const dropin = parseUnit(await readFile(at(`/etc/systemd/system/${service}.d/10-install.conf`), 'utf8'));
      // An empty ExecStart= first resets the unit's own.
      expect(dropin.get('Service')?.get('ExecStart')).toEqual(['', `${bin} ${mode} --config /etc/purge-cache-agent/agent.yaml`]);
    }
  });

  it.skipIf(!isRoot)("--user runs the agent as the caches' owner, with no capabilities", async () => {
    await fakeBin();
    const group = (await promisify(execFile)('id', ['-gn', 'nobody'])).stdout.trim();
    const gid = Number((await promisify(execFile)('id', ['-g', 'nobody'])).stdout.trim());
    const result = await install(['--root', root, '--user', 'nobody']);
    expect(result.code, result.stderr).toBe(0);
    const dropin = parseUnit(await readFile(at('/etc/systemd/system/purge-cache-agent.service.d/10-install.conf'), 'utf8'));
    expect(unitValue(dropin, 'Service', 'User')).toBe('nobody');
    expect(unitValue(dropin, 'Service', 'Group')).toBe(group);
    expect(unitList(dropin, 'Service', 'CapabilityBoundingSet')).toEqual([]);
    // The agent's group may read its configuration; the credentials stay root's.
    expect(await owner(at('/etc/purge-cache-agent/agent.yaml'))).toEqual([0, gid]);
    expect(await owner(at('/etc/purge-cache-agent'))).toEqual([0, gid]);
    expect(await owner(at('/etc/purge-cache-agent/agent.env'))).toEqual([0, 0]);
  });

  it('refuses bad options with exit code 2', async () => {
    expect((await install(['--root', root, '--no-such-option'])).code).toBe(2);
    expect((await install(['--root', root, '--enable', 'both'])).code).toBe(2);
    expect((await install(['--root', root, '--cache-root', 'relative/path'])).code).toBe(2);
    expect(await exists(at('/etc/systemd/system/purge-cache-agent.service'))).toBe(false);
  });

  it.skipIf(!analyze)('its result, drop-ins included, passes systemd-analyze verify with no warnings', async () => {
    await makeVerifyRoot(root);
    const bin = await fakeBin('/opt/node-v20/bin');
    // (`daemon`, not `nobody`: systemd rightly warns about running services as nobody.)
    const asUser = isRoot ? ['--user', 'daemon'] : [];
    const result = await install(['--root', root, '--bin', bin, '--cache-root', '/srv/caches', ...asUser, '--enable', 'service']);
    expect(result.code, result.stderr).toBe(0);
    expect((await lstat(at('/etc/systemd/system/multi-user.target.wants/purge-cache-agent.service'))).isSymbolicLink()).toBe(true);
    const { stdout, stderr } = await verify(root, UNITS);
    expect(stdout + stderr).toBe('');
  });
});
