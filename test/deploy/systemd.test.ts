/**
 * The systemd units (systemd/): what they declare, and — the point — that
 * each unit's exact ExecStart= command line, with the environment systemd
 * would give it, works against a purge-cache service: the one-shot unit
 * purges a requested cache, the daemon syncs, answers on its socket, syncs
 * again on SIGHUP and stops cleanly on SIGTERM. `systemd-analyze verify`
 * checks every unit offline (with the binary resolvable under a pretend root).
 */
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { spawn, spawnSync } from 'node:child_process';
import { chmod, chown, cp, mkdir, readFile, realpath, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { SETTINGS, loadSettings } from '../../src/config/index.js';
import { CLI_PATH, makeTempDir, type TempDir } from '../helpers/tmp.js';
import {
  HOST_PATHS,
  hasCommand,
  httpGet,
  loadUnit,
  makeVerifyRoot,
  parseEnvFile,
  readRepoFile,
  repoFile,
  splitExec,
  timespanSeconds,
  unitList,
  unitValue,
  verify,
} from './helpers.js';
import { exited, makeHost, startCommand, unitCommand, type Host } from './host.js';
import { exists } from '../helpers/fixture.js';
import { eventually } from '../helpers/wait.js';

const DAEMON = 'purge-cache-agent.service';
const ONCE = 'purge-cache-agent-once.service';
const TIMER = 'purge-cache-agent-once.timer';
const SERVICES = [DAEMON, ONCE];
const settingKeys = new Set<string>(SETTINGS.map((s) => s.key));
/** The local API's socket: `run` serves /healthz on it once the setting exists. */
const HAS_API = settingKeys.has('apiSocket');

describe('the units declare', () => {
  it.each(SERVICES)('%s: config, credentials, state, journal', (name) => {
    const unit = loadUnit(name);
    const exec = splitExec(unitValue(unit, 'Service', 'ExecStart')!);
    expect(exec[0]).toBe('purge-cache-agent');
    expect(exec.slice(1)).toEqual([name === DAEMON ? 'run' : 'once', '--config', HOST_PATHS.config]);
    expect(unitValue(unit, 'Service', 'EnvironmentFile')).toBe(HOST_PATHS.envFile);
    expect(unitValue(unit, 'Service', 'StateDirectory')).toBe('purge-cache-agent');
    expect(unitValue(unit, 'Service', 'Type')).toBe(name === DAEMON ? 'exec' : 'oneshot');
    // Logs go to the journal: nothing redirects stdout or stderr elsewhere.
    expect(unitValue(unit, 'Service', 'StandardOutput')).toBeUndefined();
    expect(unitValue(unit, 'Service', 'StandardError')).toBeUndefined();
    expect(unitValue(unit, 'Unit', 'After')).toContain('network-online.target');
  });

  it('the daemon: restart on failure with a back-off, not for configuration errors; a runtime directory for its socket', () => {
    const unit = loadUnit(DAEMON);
    expect(unitValue(unit, 'Service', 'Restart')).toBe('on-failure');
    expect(timespanSeconds(unitValue(unit, 'Service', 'RestartSec')!)).toBeGreaterThanOrEqual(5);
    expect(unitValue(unit, 'Service', 'RestartPreventExitStatus')).toBe('2');
    expect(unitValue(unit, 'Service', 'RuntimeDirectory')).toBe('purge-cache-agent');
    expect(unitValue(unit, 'Install', 'WantedBy')).toBe('multi-user.target');
  });

  it.each(SERVICES)('%s: hardened as far as the job allows', (name) => {
    const unit = loadUnit(name);
    const yes = [
      'NoNewPrivileges',
      'ProtectHome',
      'PrivateTmp',
      'ProtectKernelTunables',
      'ProtectKernelModules',
      'ProtectKernelLogs',
      'ProtectControlGroups',
      'LockPersonality',
    ];
    for (const key of yes) expect(unitValue(unit, 'Service', key), key).toBe('yes');
    expect(unitValue(unit, 'Service', 'ProtectSystem')).toBe('strict');
    expect(unitList(unit, 'Service', 'ReadWritePaths')).toEqual(['/var/cache/tasks']);
    expect(unitList(unit, 'Service', 'RestrictAddressFamilies').sort()).toEqual(['AF_INET', 'AF_INET6', 'AF_UNIX']);
    expect(unitValue(unit, 'Service', 'SystemCallFilter')).toBe('@system-service');
    // Only what deleting other users' files and reading their /proc entries takes.
    expect(unitList(unit, 'Service', 'CapabilityBoundingSet').sort()).toEqual(['CAP_DAC_OVERRIDE', 'CAP_FOWNER', 'CAP_SYS_PTRACE']);
    // In-use detection reads other processes' /proc/<pid>/ and /proc/locks.
    expect(unitValue(unit, 'Service', 'ProtectProc') ?? 'default').toBe('default');
    expect(unitValue(unit, 'Service', 'ProcSubset') ?? 'all').toBe('all');
    // Node's JIT needs writable-then-executable memory.
    expect(unit.get('Service')?.has('MemoryDenyWriteExecute')).toBe(false);
    const text = readRepoFile(`systemd/${name}`);
    expect(text).toMatch(/MemoryDenyWriteExecute[^\n]*\n?[^\n]*(JIT|V8)/);
    expect(text).toContain('/proc/locks');
  });

  it('the timer runs the one-shot unit periodically, and not alongside the daemon', () => {
    const timer = loadUnit(TIMER);
    expect(unitValue(timer, 'Timer', 'Unit')).toBe(ONCE);
    expect(timespanSeconds(unitValue(timer, 'Timer', 'OnBootSec')!)).toBeGreaterThan(0);
    expect(timespanSeconds(unitValue(timer, 'Timer', 'OnUnitInactiveSec')!)).toBeGreaterThan(0);
    expect(unitValue(timer, 'Unit', 'Conflicts')).toBe(DAEMON);
    expect(unitValue(timer, 'Install', 'WantedBy')).toBe('timers.target');
    expect(loadUnit(ONCE).has('Install')).toBe(false); // enabled through its timer
  });
});

describe('the example configuration and environment file', () => {
  it('agent.yaml.example loads as it is, and names only real settings, even where commented out', async () => {
    const settings = await loadSettings({ flags: { config: repoFile('systemd/agent.yaml.example') }, env: {}, cwd: '/' });
    expect(settings.workerPoolId).toBe('proj-builds/linux');
    expect(settings.cacheRoots).toEqual(['/var/cache/tasks']);
    const text = readRepoFile('systemd/agent.yaml.example');
    const mentioned = [...text.matchAll(/^#? ?([a-zA-Z]+):(?: |$)/gm)].map((m) => m[1]!);
    expect(mentioned.length).toBeGreaterThan(10);
    expect(mentioned.filter((key) => !settingKeys.has(key))).toEqual([]);
    // Credentials live in the environment file, never here.
    expect(text).not.toMatch(/^credentials:/m);
  });

  it('the environment file parses as systemd reads it, and holds only known variables', () => {
    const text = readRepoFile('systemd/purge-cache-agent.env.example');
    const env = parseEnvFile(text);
    expect(Object.keys(env).sort()).toEqual(['TASKCLUSTER_ACCESS_TOKEN', 'TASKCLUSTER_CLIENT_ID']);
    // The commented-out lines must work when uncommented, too.
    const uncommented = parseEnvFile(text.replace(/^# ([A-Z_]+=)/gm, '$1'));
    expect(JSON.parse(uncommented.TASKCLUSTER_CERTIFICATE!.replace(',...', ''))).toMatchObject({ version: 1 });
    const known = new Set(['TASKCLUSTER_CLIENT_ID', 'TASKCLUSTER_ACCESS_TOKEN', 'TASKCLUSTER_CERTIFICATE', ...SETTINGS.flatMap((s) => s.env ?? [])]);
    expect(Object.keys(uncommented).filter((k) => !known.has(k))).toEqual([]);
  });

  it("the environment file means the same to sh (the README's cron line sources it)", async () => {
    const text = readRepoFile('systemd/purge-cache-agent.env.example').replace(/^# ([A-Z_]+=)/gm, '$1');
    const tmp = await makeTempDir('pca-envfile-');
    const file = path.join(tmp.path, 'agent.env');
    await writeFile(file, text);
    const shell = spawnSync('sh', ['-c', `set -a; . ${file}; set +a; exec env -0`], { env: {}, encoding: 'utf8' });
    await tmp.cleanup();
    expect(shell.status, shell.stderr).toBe(0);
    const seen = Object.fromEntries(
      shell.stdout
        .split('\0')
        .filter(Boolean)
        .map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]),
    );
    for (const [key, value] of Object.entries(parseEnvFile(text))) expect(seen[key], key).toBe(value);
  });
});

describe("each unit's ExecStart, run as written", () => {
  let host: Host;
  beforeEach(async () => {
    host = await makeHost();
  });
  afterEach(async () => {
    await host.close();
  });

  it(`${ONCE}: purges the requested cache, keeps the others, exits 0`, async () => {
    const doomed = await host.makeCache('doomed');
    const kept = await host.makeCache('kept');
    await host.request('doomed');
    const cmd = await unitCommand(loadUnit(ONCE), host);
    const result = await exited(startCommand(cmd), 120_000);
    expect(result.code, result.stderr).toBe(0);
    expect(await exists(doomed)).toBe(false);
    expect(await exists(kept)).toBe(true);
    expect(result.stdout).toMatch(/purged 1/);
    // Its state went where systemd's StateDirectory= points.
    expect(await exists(path.join(cmd.env.STATE_DIRECTORY!, 'state.json'))).toBe(true);
    // JSON log lines for the journal, and the access token in none of them.
    expect(
      result.stderr
        .trim()
        .split('\n')
        .every((line) => line.startsWith('{')),
    ).toBe(true);
    expect(result.stderr).not.toContain(host.agentToken);
  });

  it(`${ONCE}: a configuration error exits 2, which the daemon's RestartPreventExitStatus= names`, async () => {
    await writeFile(host.at(HOST_PATHS.config), `${await readFile(host.at(HOST_PATHS.config), 'utf8')}\nnoSuchSetting: 1\n`);
    const result = await exited(startCommand(await unitCommand(loadUnit(ONCE), host)), 120_000);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('noSuchSetting');
    expect(unitValue(loadUnit(DAEMON), 'Service', 'RestartPreventExitStatus')).toBe(String(result.code));
  });

  it(`${DAEMON}: syncs at start, again on SIGHUP, and stops on SIGTERM within TimeoutStopSec`, async () => {
    const first = await host.makeCache('first');
    const second = await host.makeCache('second');
    const kept = await host.makeCache('kept');
    await host.request('first');
    const unit = loadUnit(DAEMON);
    const agent = startCommand(await unitCommand(unit, host));
    try {
      await eventually(async () => !(await exists(first)), 'the first cache to be purged', { retryErrors: true });
      await host.request('second');
      agent.kill('SIGHUP'); // what `systemctl kill --kill-whom=main --signal=SIGHUP` sends
      await eventually(async () => !(await exists(second)), 'the second cache to be purged after SIGHUP', { retryErrors: true });
      expect(await exists(kept)).toBe(true);
    } finally {
      agent.kill((unitValue(unit, 'Service', 'KillSignal') ?? 'SIGTERM') as NodeJS.Signals);
    }
    const result = await exited(agent, timespanSeconds(unitValue(unit, 'Service', 'TimeoutStopSec')!) * 1000);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stderr).not.toContain(host.agentToken);
  });

  it("the README's cron line: sources agent.env, runs `once`, purges", async () => {
    const readme = readRepoFile('README.md');
    const line = /^\*\/5 \* \* \* \* root sh -c '([^']+)'/m.exec(readme);
    expect(line, 'a cron line in the README').not.toBeNull();
    // The host's paths, inside the pretend root; the built CLI as the installed binary.
    const script = line![1]!.replaceAll('/etc/purge-cache-agent/', `${host.at('/etc/purge-cache-agent')}/`);
    const binDir = host.at('/usr/local/bin');
    await mkdir(binDir, { recursive: true });
    await writeFile(path.join(binDir, 'purge-cache-agent'), `#!/bin/sh\nexec ${JSON.stringify(process.execPath)} ${JSON.stringify(CLI_PATH)} "$@"\n`, {
      mode: 0o755,
    });
    const doomed = await host.makeCache('doomed');
    await host.request('doomed');
    const cron = spawn('sh', ['-c', script], {
      // cron's own environment, plus a state directory off the real /var/lib.
      env: { PATH: `${binDir}:/usr/bin:/bin`, HOME: host.root, PURGE_CACHE_AGENT_STATE_DIR: host.at('/var/lib/purge-cache-agent') },
      stdio: ['ignore', 'pipe', 'pipe'],
    }) as Parameters<typeof exited>[0];
    cron.output = { stdout: '', stderr: '' };
    cron.stdout!.setEncoding('utf8').on('data', (d: string) => (cron.output.stdout += d));
    cron.stderr!.setEncoding('utf8').on('data', (d: string) => (cron.output.stderr += d));
    const result = await exited(cron, 120_000);
    expect(result.code, result.stderr).toBe(0);
    expect(await exists(doomed)).toBe(false);
  });

  it.skipIf(!HAS_API)(`${DAEMON}: answers /healthz on its socket in RuntimeDirectory= (needs the local API)`, async () => {
    const unit = loadUnit(DAEMON);
    const cmd = await unitCommand(unit, host);
    const agent = startCommand(cmd);
    try {
      const socketPath = path.join(cmd.env.RUNTIME_DIRECTORY!, 'api.sock');
      const health = await eventually(async () => (await httpGet({ socketPath }, '/healthz')).status === 200 && true, `/healthz on ${socketPath}`, {
        retryErrors: true,
      });
      expect(health).toBe(true);
      const ready = await eventually(async () => (await httpGet({ socketPath }, '/readyz')).status === 200 && true, '/readyz after the first sync', {
        retryErrors: true,
      });
      expect(ready).toBe(true);
    } finally {
      agent.kill('SIGTERM');
    }
    expect((await exited(agent, 90_000)).code).toBe(0);
  });
});

describe('systemd-analyze verify', () => {
  const analyze = hasCommand('systemd-analyze');
  let tmp: TempDir;
  beforeAll(async () => {
    tmp = await makeTempDir('pca-verify-');
  });
  afterAll(async () => {
    await (tmp as TempDir | undefined)?.cleanup();
  });

  it.skipIf(!analyze)('passes every unit with no warnings, the binary resolved under a pretend root', async () => {
    const root = tmp.path;
    await makeVerifyRoot(root, async (bin) => {
      // A stand-in for `npm install -g` into /usr/local: the built CLI behind an executable.
      await writeFile(bin, `#!/bin/sh\nexec ${JSON.stringify(process.execPath)} ${JSON.stringify(CLI_PATH)} "$@"\n`, { mode: 0o755 });
    });
    for (const unit of [DAEMON, ONCE, TIMER]) await cp(repoFile(`systemd/${unit}`), path.join(root, 'etc/systemd/system', unit));
    const { stdout, stderr } = await verify(root, [DAEMON, ONCE, TIMER]);
    expect(stdout + stderr).toBe('');
  });

  it.skipIf(!analyze)('fails when the binary cannot be found (so the check above means something)', async () => {
    const root = path.join(tmp.path, 'nobin');
    await makeVerifyRoot(root);
    await cp(repoFile(`systemd/${ONCE}`), path.join(root, 'etc/systemd/system', ONCE));
    await expect(verify(root, [ONCE])).rejects.toThrow(/purge-cache-agent is not executable/);
  });
});

// ---------------------------------------------------------------- hardening vs in-use detection

const isRoot = process.getuid?.() === 0;
const canSetpriv = isRoot && hasCommand('setpriv') && spawnSync('setpriv', ['--bounding-set=-all,+fowner', '--no-new-privs', 'true']).status === 0;
const NOBODY = 65534;

/** setpriv arguments that give a root process what the unit gives it: this bounding set, no new privileges. */
function asTheUnit(caps: string[]): string[] {
  const list = caps.map((c) => `+${c.replace(/^CAP_/, '').toLowerCase()}`).join(',');
  return ['setpriv', `--bounding-set=-all,${list}`, '--no-new-privs', '--'];
}

describe.skipIf(!canSetpriv)("the daemon's capabilities are enough for the job (as root, with setpriv)", () => {
  let host: Host;
  const caps = unitList(loadUnit(ONCE), 'Service', 'CapabilityBoundingSet');
  beforeEach(async () => {
    host = await makeHost();
  });
  afterEach(async () => {
    await host.close();
  });

  it("deletes other users' caches (read-only directories, sticky directories), and defers one that another user's process works in", async () => {
    // Another user's cache, hard to delete: read-only directories and a sticky directory holding a third user's file.
    const theirs = await host.makeCache('theirs');
    await mkdir(path.join(theirs, 'ro/deeper'), { recursive: true });
    await writeFile(path.join(theirs, 'ro/deeper/file'), 'x');
    await mkdir(path.join(theirs, 'sticky'));
    await writeFile(path.join(theirs, 'sticky/someone-elses'), 'x');
    await chown(path.join(theirs, 'sticky/someone-elses'), NOBODY - 1, NOBODY - 1);
    for (const p of ['ro/deeper/file', 'ro/deeper', 'ro', 'sticky', 'sub/data', 'sub', '.']) await chown(path.join(theirs, p), NOBODY, NOBODY);
    await chmod(path.join(theirs, 'sticky'), 0o1777);
    await chmod(path.join(theirs, 'ro/deeper'), 0o500);
    await chmod(path.join(theirs, 'ro'), 0o500);
    // A cache another user's build is working in.
    const busy = await host.makeCache('busy');
    const build = spawn('setpriv', [`--reuid=${NOBODY}`, `--regid=${NOBODY}`, '--clear-groups', 'sleep', '600'], { cwd: busy, stdio: 'ignore' });
    try {
      await eventually(async () => (await readFile(`/proc/${build.pid}/comm`, 'utf8')).trim() === 'sleep', 'the build process to start', { retryErrors: true });
      await host.request('theirs');
      await host.request('busy');
      const result = await exited(startCommand(await unitCommand(loadUnit(ONCE), host), asTheUnit(caps)), 120_000);
      expect(result.code, result.stderr).toBe(0);
      expect(await exists(theirs)).toBe(false);
      expect(await exists(busy)).toBe(true);
      expect(result.stdout).toMatch(/deferred busy/);
    } finally {
      build.kill('SIGKILL');
    }
  });

  it("CAP_SYS_PTRACE is what opens another user's /proc/<pid>/cwd (the reason it is in the set)", async () => {
    const build = spawn('setpriv', [`--reuid=${NOBODY}`, `--regid=${NOBODY}`, '--clear-groups', 'sleep', '600'], { cwd: host.cacheRoot, stdio: 'ignore' });
    try {
      await eventually(async () => (await readFile(`/proc/${build.pid}/comm`, 'utf8')).trim() === 'sleep', 'the process to start', { retryErrors: true });
      const readCwd = (set: string[]) =>
        spawnSync(asTheUnit(set)[0]!, [...asTheUnit(set).slice(1), 'readlink', `/proc/${build.pid}/cwd`], { encoding: 'utf8' });
      expect(readCwd(caps).stdout.trim()).toBe(await realpath(host.cacheRoot));
      expect(readCwd(caps.filter((c) => c !== 'CAP_SYS_PTRACE')).status).not.toBe(0);
    } finally {
      build.kill('SIGKILL');
    }
  });
});
