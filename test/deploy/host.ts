/**
 * A pretend worker host for running the units' command lines: a temporary
 * directory standing in for /, holding /etc/purge-cache-agent/{agent.yaml,
 * agent.env} made from the shipped examples, the directories systemd would
 * create for StateDirectory= and RuntimeDirectory=, and a cache root — all
 * against an embedded purge-cache service that checks Hawk and the exact
 * scopes the README tells operators to grant.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, writeFile, readFile } from 'node:fs/promises';
import path from 'node:path';
import YAML from 'yaml';
import { startService, type RunningService } from '../../src/service/index.js';
import { silentLogger } from '../../src/log.js';
import { cleanEnv, runCli, type CliResult } from '../helpers/cli.js';
import { makeTempDir, type TempDir, CLI_PATH } from '../helpers/tmp.js';
import { POOL } from '../helpers/fixture.js';
import { HOST_PATHS, readRepoFile, splitExec, parseEnvFile, unitEnvironment, unitValue, type Unit } from './helpers.js';

export const AGENT_CLIENT = 'worker/test-prov/test-worker';
export const REQUESTER_CLIENT = 'ops/purger';

export interface Host {
  tmp: TempDir;
  /** The pretend "/". */
  root: string;
  cacheRoot: string;
  service: RunningService;
  agentToken: string;
  /** A host path (/etc/..., /var/lib/...) inside the pretend root. */
  at(hostPath: string): string;
  makeCache(name: string): Promise<string>;
  /** File a purge request as an operator would: `purge-cache-agent request`, with only the README's scope. */
  request(name: string): Promise<void>;
  close(): Promise<void>;
}

export async function makeHost(opts: { cacheRoot?: string } = {}): Promise<Host> {
  const tmp = await makeTempDir('pca-deploy-');
  const root = tmp.path;
  const at = (hostPath: string): string => path.join(root, hostPath);
  const cacheRoot = at(opts.cacheRoot ?? '/var/cache/tasks');
  await mkdir(cacheRoot, { recursive: true });
  const agentToken = `agent-${randomBytes(16).toString('hex')}`;
  const requesterToken = `requester-${randomBytes(16).toString('hex')}`;
  const service = await startService({
    host: '127.0.0.1',
    port: 0,
    logger: silentLogger(),
    clients: {
      // Exactly the scopes the README says to grant, and nothing more.
      [AGENT_CLIENT]: { accessToken: agentToken, scopes: [`purge-cache:purge-requests::${POOL}`] },
      [REQUESTER_CLIENT]: { accessToken: requesterToken, scopes: [`purge-cache:${POOL}:*`] },
    },
  });

  // /etc/purge-cache-agent/agent.yaml: the shipped example, with this host's values.
  const config = YAML.parse(readRepoFile('systemd/agent.yaml.example')) as Record<string, unknown>;
  Object.assign(config, { rootUrl: service.url, workerPoolId: POOL, cacheRoots: [cacheRoot] });
  await mkdir(at('/etc/purge-cache-agent'), { recursive: true });
  await writeFile(at(HOST_PATHS.config), YAML.stringify(config));
  // /etc/purge-cache-agent/agent.env: the shipped example, with real credentials in place of the placeholders.
  const envText = readRepoFile('systemd/purge-cache-agent.env.example')
    .replace(/^TASKCLUSTER_CLIENT_ID=.*$/m, `TASKCLUSTER_CLIENT_ID=${AGENT_CLIENT}`)
    .replace(/^TASKCLUSTER_ACCESS_TOKEN=.*$/m, `TASKCLUSTER_ACCESS_TOKEN=${agentToken}`);
  await writeFile(at(HOST_PATHS.envFile), envText, { mode: 0o600 });

  return {
    tmp,
    root,
    cacheRoot,
    service,
    agentToken,
    at,
    async makeCache(name) {
      // Names that stand for themselves on disk, so these tests need no encoder.
      if (!/^[A-Za-z0-9_-]+$/.test(name)) throw new Error(`use a plain cache name here, not ${name}`);
      const dir = path.join(cacheRoot, name);
      await mkdir(path.join(dir, 'sub'), { recursive: true });
      await writeFile(path.join(dir, 'sub', 'data'), `contents of ${name}\n`);
      return dir;
    },
    async request(name) {
      const result = await runCli(['request', name, '--root-url', service.url, '--worker-pool-id', POOL], {
        env: { TASKCLUSTER_CLIENT_ID: REQUESTER_CLIENT, TASKCLUSTER_ACCESS_TOKEN: requesterToken },
      });
      if (result.code !== 0) throw new Error(`request ${name} failed (${result.code}): ${result.stderr}`);
    },
    async close() {
      await service.close();
      await tmp.cleanup();
    },
  };
}

export interface UnitCommand {
  /** Program and arguments, the binary resolved and host paths mapped into the pretend root. */
  argv: string[];
  env: Record<string, string>;
}

/**
 * What systemd would run for a unit: its ExecStart= split as systemd splits
 * it, the bare `purge-cache-agent` resolved to `bin` (the built CLI unless
 * told otherwise), /etc paths mapped into the pretend root, and the
 * environment systemd gives it: Environment=, EnvironmentFile=, and
 * STATE_DIRECTORY / RUNTIME_DIRECTORY for StateDirectory= / RuntimeDirectory=.
 */
export async function unitCommand(unit: Unit, host: Host, bin: string[] = [process.execPath, CLI_PATH]): Promise<UnitCommand> {
  const exec = splitExec(unitValue(unit, 'Service', 'ExecStart')!);
  if (exec[0] !== 'purge-cache-agent') throw new Error(`ExecStart runs ${exec[0]}, not purge-cache-agent`);
  const mapPath = (arg: string): string => (arg.startsWith('/etc/purge-cache-agent/') ? host.at(arg) : arg);
  const argv = [...bin, ...exec.slice(1).map(mapPath)];

  const env: Record<string, string> = { ...unitEnvironment(unit) };
  for (const file of unit.get('Service')?.get('EnvironmentFile') ?? []) {
    const optional = file.startsWith('-');
    const text = await readFile(mapPath(file.replace(/^-/, '')), 'utf8').catch((err: unknown) => {
      if (optional) return '';
      throw err;
    });
    Object.assign(env, parseEnvFile(text));
  }
  const dirs = { StateDirectory: ['STATE_DIRECTORY', '/var/lib'], RuntimeDirectory: ['RUNTIME_DIRECTORY', '/run'] } as const;
  for (const [key, [variable, base]] of Object.entries(dirs)) {
    const names = unitValue(unit, 'Service', key);
    if (!names) continue;
    const made = names.split(/\s+/).map((name) => host.at(path.posix.join(base, name)));
    for (const dir of made) await mkdir(dir, { recursive: true, mode: 0o700 });
    env[variable] = made.join(':');
  }
  return { argv, env: cleanEnv(env) };
}

export type Running = ChildProcess & { output: { stdout: string; stderr: string } };

export function startCommand(cmd: UnitCommand, prefix: string[] = []): Running {
  const [program, ...args] = [...prefix, ...cmd.argv];
  const child = spawn(program!, args, { env: cmd.env, stdio: ['ignore', 'pipe', 'pipe'] }) as Running;
  child.output = { stdout: '', stderr: '' };
  child.stdout!.setEncoding('utf8').on('data', (d: string) => (child.output.stdout += d));
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (child.output.stderr += d));
  return child;
}

export function exited(child: Running, timeoutMs: number): Promise<CliResult & { ms: number }> {
  const started = Date.now();
  return new Promise((resolve, reject) => {
    if (child.exitCode !== null || child.signalCode !== null) {
      resolve({ code: child.exitCode, signal: child.signalCode, ...child.output, ms: 0 });
      return;
    }
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`did not exit within ${timeoutMs} ms; stderr:\n${child.output.stderr}`));
    }, timeoutMs);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, ...child.output, ms: Date.now() - started });
    });
  });
}
