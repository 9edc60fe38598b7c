/**
 * The package as users install it: `npm pack`, then `npm install -g` of the
 * tarball into an empty prefix (production dependencies only). Its files, its
 * bin, its version — and the container image's command line (ENTRYPOINT +
 * CMD, with the image's ENV and the pod's ConfigMap and Secret as its whole
 * configuration) run from that install against a purge-cache service, probed
 * as the kubelet and the HEALTHCHECK would, scraped as Prometheus would, and
 * stopped with the image's STOPSIGNAL within the pod's grace period.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { lstat, mkdir, readdir, readFile, readlink } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { createServer } from 'node:net';
import path from 'node:path';
import { promisify } from 'node:util';
import YAML from 'yaml';
import { SETTINGS } from '../../src/config/index.js';
import { makeTempDir, REPO_ROOT, type TempDir } from '../helpers/tmp.js';
import { AGENT_METRICS, agentContainer, execForm, httpGet, kubernetesDocs, metricsInExpr, parseContainerfile, readRepoFile, stageEnv } from './helpers.js';
import { AGENT_CLIENT, exited, makeHost, startCommand, type Host } from './host.js';
import { POOL, exists } from '../helpers/fixture.js';
import { eventually } from '../helpers/wait.js';

const run = promisify(execFile);
const parsePrometheus = createRequire(import.meta.url)('parse-prometheus-text-format') as (text: string) => { name: string; type: string }[];
const pkg = JSON.parse(readRepoFile('package.json')) as {
  name: string;
  version: string;
  bin: Record<string, string>;
  engines: { node: string };
  dependencies: Record<string, string>;
  devDependencies: Record<string, string>;
};
/** `--listen`: the HTTP API the probes, HEALTHCHECK and Prometheus use. */
const HAS_LISTEN = SETTINGS.some((s) => s.key === 'listen');

/** A shell's environment, without what `npm test` adds (npm_config_*, ...) or this machine's agent settings. */
function plainEnv(extra: Record<string, string> = {}): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (v === undefined || /^(npm_|TASKCLUSTER_|PURGE_CACHE_AGENT_|STATE_DIRECTORY|RUNTIME_DIRECTORY|LOG_LEVEL|NODE_OPTIONS)/i.test(k)) continue;
    env[k] = v;
  }
  return { ...env, ...extra };
}

let tmp: TempDir;
let prefix: string;
let packed: { filename: string; files: { path: string }[] };
/** What `npm install -g` of the tarball printed. */
let installOutput: string;

beforeAll(async () => {
  tmp = await makeTempDir('pca-pack-');
  // dist/ is fresh (the suite's global setup builds it); --ignore-scripts keeps
  // `prepack` from rebuilding it under the feet of tests running in parallel.
  const { stdout } = await run('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', tmp.path], { cwd: REPO_ROOT, env: plainEnv() });
  packed = (JSON.parse(stdout) as (typeof packed)[])[0]!;
  prefix = path.join(tmp.path, 'prefix');
  const install = await run('npm', ['install', '-g', '--prefix', prefix, '--omit=dev', '--no-audit', '--no-fund', path.join(tmp.path, packed.filename)], {
    cwd: tmp.path,
    env: plainEnv(),
  });
  installOutput = `${install.stdout}${install.stderr}`;
}, 300_000);

afterAll(async () => {
  // Unset when beforeAll failed early.
  await (tmp as TempDir | undefined)?.cleanup();
});

describe('npm pack', () => {
  it('ships the CLI, the deployment files and the README, and no tests, fixtures, sources or source maps', () => {
    const files = packed.files.map((f) => f.path);
    for (const needed of [
      'package.json',
      'README.md',
      'LICENSE',
      'dist/cli.js',
      'systemd/purge-cache-agent.service',
      'systemd/purge-cache-agent-once.service',
      'systemd/purge-cache-agent-once.timer',
      'systemd/agent.yaml.example',
      'systemd/purge-cache-agent.env.example',
      'scripts/install-systemd.sh',
      'deploy/kubernetes/pod.yaml',
      'deploy/grafana/purge-cache-agent.json',
      'deploy/prometheus/alerts.yaml',
    ]) {
      expect(files, needed).toContain(needed);
    }
    const unwanted = files.filter((f) =>
      /(^|\/)(test|tests|__tests__|fixtures?|\.test-tmp|\.demo|bench|node_modules)(\/|$)|\.(test|spec)\.[cm]?[jt]s$|\.map$|^src\/|\.ts$/.test(f),
    );
    expect(unwanted).toEqual([]);
  });

  it('carries the MPL-2.0 text its package.json names, and no entry point it lacks', () => {
    expect((pkg as { license?: string }).license).toBe('MPL-2.0');
    const license = readRepoFile('LICENSE');
    expect(license).toMatch(/^Mozilla Public License Version 2\.0\n/);
    expect(license).toContain('Exhibit B - "Incompatible With Secondary Licenses" Notice');
    const main = (pkg as { main?: string }).main;
    if (main !== undefined) expect(packed.files.map((f) => f.path)).toContain(main.replace(/^\.\//, ''));
  });

  it('names the supported Node versions, and this Node is one', () => {
    const min = /^>=\s*(\d+)\.(\d+)\.(\d+)$/.exec(pkg.engines.node);
    expect(min, `engines.node is ${pkg.engines.node}`).not.toBeNull();
    const [major, minor, patch] = process.versions.node.split('.').map(Number) as [number, number, number];
    const [wantMajor, wantMinor, wantPatch] = min!.slice(1).map(Number) as [number, number, number];
    expect(major * 1e6 + minor * 1e3 + patch).toBeGreaterThanOrEqual(wantMajor * 1e6 + wantMinor * 1e3 + wantPatch);
    expect(wantMajor).toBe(20);
  });
});

describe('npm install -g <tarball> into an empty prefix', () => {
  it("puts a working `purge-cache-agent` on the prefix's PATH; --version matches package.json", async () => {
    const bin = path.join(prefix, 'bin', 'purge-cache-agent');
    expect((await lstat(bin)).isSymbolicLink()).toBe(true);
    expect(await readlink(bin)).toBe(`../lib/node_modules/${pkg.name}/${pkg.bin['purge-cache-agent']!.replace(/^\.\//, '')}`);
    // Run it as a shell would: through its #! line, with node found on PATH.
    const { stdout } = await run(bin, ['--version'], { env: plainEnv() });
    expect(stdout.trim()).toBe(pkg.version);
    const help = await run(bin, ['--help'], { env: plainEnv() });
    for (const command of ['once', 'run', 'caches', 'request', 'requests', 'ping', 'serve']) expect(help.stdout).toMatch(new RegExp(`\\b${command}\\b`));
  });

  it('installs without running or asking to allow any install script', () => {
    // Building belongs to a clone (`npm ci`); the package ships dist/ built.
    const scripts = (pkg as { scripts?: Record<string, string> }).scripts ?? {};
    expect(Object.keys(scripts).filter((k) => ['preinstall', 'install', 'postinstall', 'prepare'].includes(k))).toEqual([]);
    expect(installOutput).not.toMatch(/install.scripts|allowScripts/i);
  });

  it('installs the production dependencies and none of the development ones', async () => {
    const installed = path.join(prefix, 'lib', 'node_modules', pkg.name);
    const present = async (name: string) =>
      (await exists(path.join(installed, 'node_modules', name))) || (await exists(path.join(prefix, 'lib', 'node_modules', name)));
    for (const dep of Object.keys(pkg.dependencies)) expect(await present(dep), dep).toBe(true);
    for (const dev of Object.keys(pkg.devDependencies)) expect(await present(dev), dev).toBe(false);
    expect(await readdir(path.join(prefix, 'lib', 'node_modules'))).toEqual([pkg.name]);
    expect(JSON.parse(await readFile(path.join(installed, 'package.json'), 'utf8')).version).toBe(pkg.version);
  });
});

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => {
        resolve(port);
      });
    });
  });
}

describe("the container image's command line, from the packed install", () => {
  let host: Host;
  beforeAll(async () => {
    host = await makeHost({ cacheRoot: '/caches' });
  });
  afterAll(async () => {
    await (host as Host | undefined)?.close();
  });

  it("runs on the image ENV plus the pod's ConfigMap and Secret alone: syncs, answers the probes, stops on STOPSIGNAL in the grace period", async () => {
    const stages = parseContainerfile(readRepoFile('Containerfile'));
    const image = stages.at(-1)!;
    const last = (op: string) => image.filter((i) => i.op === op).at(-1)!.args;
    const command = [...execForm(last('ENTRYPOINT')), ...execForm(last('CMD'))];
    const { pod, configMap, secret } = kubernetesDocs();
    const agent = agentContainer(pod);

    // The container's paths, inside the pretend root; the pod's volumes are where they are mounted.
    const mounts: string[] = agent.volumeMounts.map((m: { mountPath: string }) => m.mountPath);
    for (const m of mounts) await mkdir(host.at(m), { recursive: true, mode: 0o700 });
    const inContainer = (value: string) =>
      value.split(':').every((p) => mounts.some((m) => p === m || p.startsWith(`${m}/`)))
        ? value
            .split(':')
            .map((p) => host.at(p))
            .join(':')
        : value;
    const port = await freePort();
    const apiToken = randomBytes(24).toString('hex');
    const podEnv: Record<string, string> = { ...stageEnv(image), ...configMap.data, ...secret.stringData };
    for (const [k, v] of Object.entries(podEnv)) podEnv[k] = inContainer(v);
    Object.assign(podEnv, {
      TASKCLUSTER_ROOT_URL: host.service.url,
      TASKCLUSTER_WORKER_POOL_ID: POOL,
      TASKCLUSTER_CLIENT_ID: AGENT_CLIENT,
      TASKCLUSTER_ACCESS_TOKEN: host.agentToken,
      PURGE_CACHE_AGENT_API_TOKEN: apiToken,
      // Same address as the ConfigMap's (all interfaces), on a port free here.
      PURGE_CACHE_AGENT_LISTEN: String(configMap.data.PURGE_CACHE_AGENT_LISTEN).replace(/:\d+$/, `:${port}`),
    });
    expect(podEnv.PURGE_CACHE_AGENT_CACHE_ROOTS).toBe(host.cacheRoot);
    const env = plainEnv({ ...podEnv, PATH: `${path.join(prefix, 'bin')}:${process.env.PATH}` });

    const doomed = await host.makeCache('doomed');
    const kept = await host.makeCache('kept');
    await host.request('doomed');
    // ENTRYPOINT is looked up on PATH, as the container runtime does.
    expect(command[0]).toBe('purge-cache-agent');
    const child = startCommand({ argv: [path.join(prefix, 'bin', command[0]!), ...command.slice(1)], env });
    const url = `http://127.0.0.1:${port}`;
    try {
      await eventually(async () => !(await exists(doomed)), 'the requested cache to be purged', { timeoutMs: 120_000, retryErrors: true });
      expect(await exists(kept)).toBe(true);
      if (HAS_LISTEN) {
        // The kubelet's probes.
        const probe = (p: string) => httpGet({ url }, p);
        expect(await eventually(async () => (await probe(agent.livenessProbe.httpGet.path)).status === 200 && true, 'liveness', { retryErrors: true })).toBe(
          true,
        );
        expect(await eventually(async () => (await probe(agent.readinessProbe.httpGet.path)).status === 200 && true, 'readiness', { retryErrors: true })).toBe(
          true,
        );
        // The image's HEALTHCHECK, run as written.
        const health = last('HEALTHCHECK');
        const healthCmd = execForm(health.slice(health.indexOf('CMD ') + 4));
        expect((await run(healthCmd[0]!, healthCmd.slice(1), { env })).stdout).toBe('');
        // Over TCP, /v1 needs the Secret's token.
        expect((await probe('/v1/status')).status).toBe(401);
        // Prometheus: every metric the dashboard and alerts use is in a real scrape.
        const families = new Set(parsePrometheus((await probe('/metrics')).body).map((f) => f.name));
        expect(AGENT_METRICS.filter((m) => !families.has(m))).toEqual([]);
        const dashboard = JSON.parse(readRepoFile('deploy/grafana/purge-cache-agent.json'));
        const exprs: string[] = [
          ...dashboard.panels.flatMap((p: { targets?: { expr: string }[] }) => (p.targets ?? []).map((t) => t.expr)),
          ...YAML.parse(readRepoFile('deploy/prometheus/alerts.yaml')).groups.flatMap((g: { rules: { expr: string }[] }) => g.rules.map((r) => r.expr)),
        ];
        const named = new Set(exprs.flatMap((e) => metricsInExpr(e, families)));
        expect([...named].filter((m) => !families.has(m))).toEqual([]);
      } else {
        console.warn('package.test: `listen` is not a setting yet: probes, HEALTHCHECK and the /metrics scrape were not run');
      }
    } finally {
      child.kill(last('STOPSIGNAL') as NodeJS.Signals);
    }
    const result = await exited(child, pod.spec.terminationGracePeriodSeconds * 1000);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stderr).not.toContain(host.agentToken);
    expect(result.stderr).not.toContain(apiToken);
    if (HAS_LISTEN) {
      // Stopped: the HEALTHCHECK now fails.
      const health = last('HEALTHCHECK');
      const healthCmd = execForm(health.slice(health.indexOf('CMD ') + 4));
      await expect(run(healthCmd[0]!, healthCmd.slice(1), { env })).rejects.toMatchObject({ code: 1 });
    }
  });
});
