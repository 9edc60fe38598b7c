/**
 * The container and observability files, checked where no container engine,
 * cluster or Prometheus is at hand: the Containerfile's stages and defaults,
 * the pod (with its ConfigMap and Secret) as YAML with the fields a sidecar
 * needs, and the dashboard and alert rules naming only metrics the agent
 * exports. (package.test.ts runs the image's command line for real.)
 */
import { describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import YAML from 'yaml';
import { SETTINGS } from '../../src/config/index.js';
import { settingsTable } from '../../src/config/docs.js';
import { makeTempDir } from '../helpers/tmp.js';
import { runCli } from '../helpers/cli.js';
import {
  AGENT_ENV,
  AGENT_METRICS,
  agentContainer,
  execForm,
  exportedMetricNames,
  hasCommand,
  kubernetesDocs,
  memoryBytes,
  metricsInExpr,
  parseContainerfile,
  readRepoFile,
  repoFile,
  stageEnv,
} from './helpers.js';

describe('Containerfile', () => {
  const stages = parseContainerfile(readRepoFile('Containerfile'));
  const final = stages.at(-1)!;
  const ops = (op: string) => final.filter((i) => i.op === op);

  it('is multi-stage; the final stage takes only the packed package with production dependencies', () => {
    expect(stages.length).toBeGreaterThanOrEqual(2);
    const build = stages.slice(0, -1).flat();
    const buildRuns = build
      .filter((i) => i.op === 'RUN')
      .map((i) => i.args)
      .join('\n');
    expect(buildRuns).toMatch(/npm pack/);
    expect(buildRuns).toMatch(/npm ci --omit=dev/);
    // Nothing in the final stage installs packages from npm, and everything it copies comes from the build stage's /opt.
    const finalRuns = ops('RUN')
      .map((i) => i.args)
      .join('\n');
    expect(finalRuns).not.toMatch(/npm (ci|install|i)\b/);
    const copies = ops('COPY');
    expect(copies.length).toBeGreaterThan(0);
    for (const copy of copies) expect(copy.args).toMatch(/^--from=build \/opt\/purge-cache-agent /);
  });

  it('runs as a non-root user by default, with the exception documented', () => {
    const user = ops('USER').at(-1)?.args ?? 'root';
    expect(user.split(':')[0]).toMatch(/^[1-9]\d*$/); // numeric, so runAsNonRoot can check it
    const text = readRepoFile('Containerfile');
    expect(text).toMatch(/exception/i);
    expect(text).toContain('--cap-add DAC_OVERRIDE');
  });

  it('stops with SIGTERM, checks /healthz, and runs `purge-cache-agent run`', () => {
    expect(ops('STOPSIGNAL').at(-1)?.args).toBe('SIGTERM');
    const health = ops('HEALTHCHECK').at(-1)!.args;
    expect(health).toMatch(/\/healthz/);
    const cmdAt = health.indexOf('CMD ');
    expect(execForm(health.slice(cmdAt + 4))[0]).toBe('node');
    expect(execForm(ops('ENTRYPOINT').at(-1)!.args)).toEqual(['purge-cache-agent']);
    expect(execForm(ops('CMD').at(-1)!.args)).toEqual(['run']);
  });

  it('configures the agent through environment variables it reads', () => {
    const env = stageEnv(final);
    const unknown = Object.keys(env).filter((k) => !AGENT_ENV.has(k) && k !== 'NODE_ENV' && k !== 'NODE_OPTIONS');
    expect(unknown).toEqual([]);
    expect(env.PURGE_CACHE_AGENT_STATE_DIR).toBe('/var/lib/purge-cache-agent');
  });

  it("installs the system tools the agent runs, and fails the build without them; the README's Set-up names the same", () => {
    const finalRuns = ops('RUN')
      .map((i) => i.args)
      .join('\n');
    expect(finalRuns).toMatch(/apt-get install[^\n]*\butil-linux\b/);
    expect(finalRuns).toMatch(/apt-get install[^\n]*\bperl(-base)?\b/);
    for (const check of ['command -v flock', 'command -v ionice', 'perl -MFcntl']) expect(finalRuns).toContain(check);
    const setup = readRepoFile('README.md')
      .split(/^## Set-up$/m)[1]!
      .split(/^## /m)[0]!;
    for (const tool of ['util-linux', 'flock', 'perl', 'ionice']) expect(setup, tool).toContain(tool);
  });

  it('.dockerignore keeps local builds, dependencies and the repository out of the context', () => {
    const ignored = readRepoFile('.dockerignore')
      .split('\n')
      .map((l) => l.trim());
    for (const entry of ['node_modules', 'dist', '.git']) expect(ignored).toContain(entry);
  });
});

describe('Kubernetes pod, ConfigMap and Secret', () => {
  const { pod, configMap, secret } = kubernetesDocs();
  const agent = agentContainer(pod);
  const containers = [...(pod.spec.initContainers ?? []), ...pod.spec.containers];
  const worker = containers.find((c: any) => c !== agent);

  it('runs a worker and the agent sharing a cache volume', () => {
    expect(worker).toBeDefined();
    const mounts = (c: any) => new Set((c.volumeMounts ?? []).map((m: any) => m.name));
    const shared = [...mounts(agent)].filter((v) => mounts(worker).has(v));
    expect(shared).toContain('caches');
    const cachesMount = agent.volumeMounts.find((m: any) => m.name === 'caches').mountPath;
    expect(String(configMap.data.PURGE_CACHE_AGENT_CACHE_ROOTS).split(':')).toContain(cachesMount);
    // A native sidecar restarts on its own; in `containers:` it would need no restartPolicy.
    if ((pod.spec.initContainers ?? []).includes(agent)) expect(agent.restartPolicy).toBe('Always');
  });

  it('shares the process namespace, with the reason written beside it', () => {
    expect(pod.spec.shareProcessNamespace).toBe(true);
    const text = readRepoFile('deploy/kubernetes/pod.yaml');
    const at = text.indexOf('shareProcessNamespace:');
    expect(text.slice(Math.max(0, at - 600), at)).toMatch(/in-use|\/proc/i);
  });

  it('probes /healthz for liveness and /readyz for readiness, on the port the agent listens on', () => {
    const port = Number(String(configMap.data.PURGE_CACHE_AGENT_LISTEN).split(':').at(-1));
    const portOf = (probe: any) =>
      typeof probe.httpGet.port === 'number' ? probe.httpGet.port : agent.ports.find((p: any) => p.name === probe.httpGet.port).containerPort;
    expect(agent.livenessProbe.httpGet.path).toBe('/healthz');
    expect(agent.readinessProbe.httpGet.path).toBe('/readyz');
    expect(portOf(agent.livenessProbe)).toBe(port);
    expect(portOf(agent.readinessProbe)).toBe(port);
    // Listening beyond loopback needs the API token, which the Secret carries.
    expect(configMap.data.PURGE_CACHE_AGENT_LISTEN).toMatch(/^0\.0\.0\.0:/);
    expect(secret.stringData.PURGE_CACHE_AGENT_API_TOKEN).toBeTruthy();
  });

  it('takes its configuration from the ConfigMap and its credentials from the Secret, all as variables the agent reads', () => {
    const from = agent.envFrom.map((e: any) => e.configMapRef?.name ?? e.secretRef?.name);
    expect(agent.envFrom.find((e: any) => e.configMapRef)?.configMapRef.name).toBe(configMap.metadata.name);
    expect(agent.envFrom.find((e: any) => e.secretRef)?.secretRef.name).toBe(secret.metadata.name);
    expect(from).toHaveLength(2);
    const keys = [...Object.keys(configMap.data), ...Object.keys(secret.stringData)];
    expect(keys.filter((k) => !AGENT_ENV.has(k))).toEqual([]);
    expect(Object.keys(secret.stringData).sort()).toEqual(['PURGE_CACHE_AGENT_API_TOKEN', 'TASKCLUSTER_ACCESS_TOKEN', 'TASKCLUSTER_CLIENT_ID']);
    expect(Object.keys(configMap.data).some((k) => /TOKEN|CLIENT_ID|CERTIFICATE/.test(k))).toBe(false);
  });

  it('gives SIGTERM a grace period, and runs the agent non-root and locked down', () => {
    expect(pod.spec.terminationGracePeriodSeconds).toBeGreaterThanOrEqual(30);
    const sc = agent.securityContext;
    expect(sc.runAsNonRoot).toBe(true);
    expect(sc.runAsUser).toBeGreaterThan(0);
    expect(sc.allowPrivilegeEscalation).toBe(false);
    expect(sc.readOnlyRootFilesystem).toBe(true);
    expect(sc.capabilities.drop).toEqual(['ALL']);
    // Its writable places are volumes.
    const mounted = agent.volumeMounts.map((m: any) => m.mountPath);
    expect(mounted).toEqual(expect.arrayContaining(['/var/lib/purge-cache-agent', '/run/purge-cache-agent']));
  });
});

/** What the pod and the DaemonSet share: the agent's probes, configuration, stop and limits. */
describe.each([
  ['the sidecar pod', 'deploy/kubernetes/pod.yaml', () => kubernetesDocs().pod],
  ['the DaemonSet', 'deploy/kubernetes/daemonset.yaml', () => kubernetesDocs().daemonSet.spec.template],
])('%s', (_what, file, podOf) => {
  const { configMap, secret } = kubernetesDocs();
  const pod = podOf();
  const agent = agentContainer(pod);
  const text = readRepoFile(file);

  it('probes /healthz for liveness and /readyz for readiness, on the port the agent listens on', () => {
    const port = Number(String(configMap.data.PURGE_CACHE_AGENT_LISTEN).split(':').at(-1));
    const portOf = (probe: any) =>
      typeof probe.httpGet.port === 'number' ? probe.httpGet.port : agent.ports.find((p: any) => p.name === probe.httpGet.port).containerPort;
    expect(agent.livenessProbe.httpGet.path).toBe('/healthz');
    expect(agent.readinessProbe.httpGet.path).toBe('/readyz');
    expect(portOf(agent.livenessProbe)).toBe(port);
    expect(portOf(agent.readinessProbe)).toBe(port);
    expect(String((pod.metadata.annotations ?? {})['prometheus.io/port'])).toBe(String(port));
  });

  it('takes its configuration from the ConfigMap and its credentials from the Secret, as variables the agent reads', () => {
    expect(agent.envFrom.find((e: any) => e.configMapRef)?.configMapRef.name).toBe(configMap.metadata.name);
    expect(agent.envFrom.find((e: any) => e.secretRef)?.secretRef.name).toBe(secret.metadata.name);
    expect(agent.envFrom).toHaveLength(2);
    const own = (agent.env ?? []).map((e: any) => e.name);
    expect(own.filter((k: string) => !AGENT_ENV.has(k))).toEqual([]);
    expect(own.some((k: string) => /TOKEN|CLIENT_ID|CERTIFICATE/.test(k))).toBe(false);
  });

  it('mounts the cache root the ConfigMap names, and keeps its state and socket on volumes', () => {
    const mounted = agent.volumeMounts.map((m: any) => m.mountPath);
    for (const root of String(configMap.data.PURGE_CACHE_AGENT_CACHE_ROOTS).split(':')) expect(mounted).toContain(root);
    expect(mounted).toEqual(expect.arrayContaining(['/var/lib/purge-cache-agent', '/run/purge-cache-agent']));
    const volumes = new Set(pod.spec.volumes.map((v: any) => v.name));
    for (const m of agent.volumeMounts) expect(volumes, m.name).toContain(m.name);
  });

  it('gives SIGTERM a grace period, and locks the agent down: no escalation, a read-only root, no capability beyond the three documented', () => {
    expect(pod.spec.terminationGracePeriodSeconds).toBeGreaterThanOrEqual(30);
    expect(pod.spec.securityContext.seccompProfile.type).toBe('RuntimeDefault');
    const sc = agent.securityContext;
    expect(sc.allowPrivilegeEscalation).toBe(false);
    expect(sc.readOnlyRootFilesystem).toBe(true);
    expect(sc.privileged ?? false).toBe(false);
    expect(sc.capabilities.drop).toEqual(['ALL']);
    const added: string[] = sc.capabilities.add ?? [];
    expect(added.filter((c) => !['DAC_OVERRIDE', 'FOWNER', 'SYS_PTRACE'].includes(c))).toEqual([]);
    // Each capability added is explained where it is granted.
    const comment = text.slice(Math.max(0, text.indexOf('capabilities:') - 1500), text.indexOf('capabilities:'));
    for (const cap of added) expect(comment, cap).toMatch(new RegExp(`${cap}:\\s+\\S`));
    if (sc.runAsUser !== 0) expect(sc.runAsNonRoot).toBe(true);
  });

  it('requests the memory the agent was measured to use, with room for deleting the trash', () => {
    const { requests, limits } = agent.resources;
    // The idle agent's resident set is about 88 MiB: the request must cover it, the limit a trash deletion beside it.
    expect(memoryBytes(requests.memory)).toBeGreaterThanOrEqual(112 * 1024 ** 2);
    expect(memoryBytes(limits.memory)).toBeGreaterThanOrEqual(memoryBytes(requests.memory) * 1.5);
    expect(requests.cpu).toBeTruthy();
    expect(text).toMatch(/Measured:/);
  });
});

describe('the DaemonSet, for caches on the node', () => {
  const { daemonSet, serviceAccount, configMap } = kubernetesDocs();
  const spec = daemonSet.spec.template.spec;
  const agent = agentContainer(daemonSet.spec.template);
  const text = readRepoFile('deploy/kubernetes/daemonset.yaml');

  it('selects its own pods, and runs under its own service account with no API token (it never calls Kubernetes)', () => {
    expect(daemonSet.apiVersion).toBe('apps/v1');
    const labels = daemonSet.spec.template.metadata.labels;
    for (const [k, v] of Object.entries(daemonSet.spec.selector.matchLabels)) expect(labels[k]).toBe(v);
    expect(spec.serviceAccountName).toBe(serviceAccount.metadata.name);
    expect(serviceAccount.automountServiceAccountToken).toBe(false);
    expect(spec.automountServiceAccountToken).toBe(false);
  });

  it("shares the node's PID namespace, with the reason written beside it, and nothing more of the node's", () => {
    expect(spec.hostPID).toBe(true);
    const at = text.indexOf('hostPID:');
    expect(text.slice(Math.max(0, at - 600), at)).toMatch(/in-use|\/proc/i);
    expect(spec.hostNetwork ?? false).toBe(false);
    expect(spec.hostIPC ?? false).toBe(false);
    expect(agent.ports.every((p: any) => p.hostPort === undefined)).toBe(true);
  });

  it("keeps the caches, the state and the socket on the node's disk (hostPath), where the caches are", () => {
    const byName = new Map(spec.volumes.map((v: any) => [v.name, v]));
    const mountOf = (path: string) => agent.volumeMounts.find((m: any) => m.mountPath === path);
    const root = String(configMap.data.PURGE_CACHE_AGENT_CACHE_ROOTS).split(':')[0]!;
    for (const where of [root, '/var/lib/purge-cache-agent', '/run/purge-cache-agent']) {
      const volume: any = byName.get(mountOf(where).name);
      expect(volume.hostPath?.path, where).toMatch(/^\//);
      expect(mountOf(where).readOnly ?? false).toBe(false);
    }
  });

  it('names each worker by its node in the metrics', () => {
    const workerId = agent.env.find((e: any) => e.name === 'TASKCLUSTER_WORKER_ID');
    expect(workerId.valueFrom.fieldRef.fieldPath).toBe('spec.nodeName');
  });
});

describe("the example Secret's placeholders", () => {
  it('the agent refuses to start with the placeholder API token, naming the setting and how to make one', async () => {
    const { secret, configMap } = kubernetesDocs();
    const placeholder = String(secret.stringData.PURGE_CACHE_AGENT_API_TOKEN);
    const tmp = await makeTempDir('pca-placeholder-');
    try {
      const tokenFile = path.join(tmp.path, 'api-token');
      await writeFile(tokenFile, `${placeholder}\n`);
      const base = [
        'run',
        '--root-url',
        'http://127.0.0.1:9',
        '--worker-pool-id',
        'proj/linux',
        '--cache-root',
        path.join(tmp.path, 'caches'),
        '--state-dir',
        path.join(tmp.path, 'state'),
      ];
      const viaEnv = await runCli(base, {
        env: { PURGE_CACHE_AGENT_API_TOKEN: placeholder, PURGE_CACHE_AGENT_LISTEN: String(configMap.data.PURGE_CACHE_AGENT_LISTEN) },
      });
      expect(viaEnv.code, viaEnv.stderr).toBe(2);
      expect(viaEnv.stderr).toContain('PURGE_CACHE_AGENT_API_TOKEN');
      expect(viaEnv.stderr).toMatch(/placeholder/);
      expect(viaEnv.stderr).toContain('openssl rand');
      const viaFile = await runCli([...base, '--api-token-file', tokenFile]);
      expect(viaFile.code, viaFile.stderr).toBe(2);
      expect(viaFile.stderr).toContain('--api-token-file');
      expect(viaFile.stderr).toMatch(/placeholder/);
    } finally {
      await tmp.cleanup();
    }
  });
});

describe('the whole configuration works from environment variables alone', () => {
  it('every setting has an environment variable (the settings table, generated from SETTINGS, lists them)', () => {
    const missing = SETTINGS.filter((s) => (s.env ?? []).length === 0 && s.key !== 'credentials').map((s) => s.key);
    expect(missing).toEqual([]);
    // The generated table shows every setting's variables; the Deploy section adds the few that are not settings.
    expect(settingsTable()).toContain('TASKCLUSTER_ACCESS_TOKEN');
    const deploy = readRepoFile('README.md').split(/^## Deploy$/m)[1] ?? '';
    for (const v of ['PURGE_CACHE_AGENT_CONFIG', 'STATE_DIRECTORY', 'RUNTIME_DIRECTORY']) expect(deploy, v).toContain(v);
  });
});

describe('dashboard and alerts', () => {
  const dashboard = JSON.parse(readRepoFile('deploy/grafana/purge-cache-agent.json'));
  const rules = YAML.parse(readRepoFile('deploy/prometheus/alerts.yaml'));
  const dashboardExprs: string[] = dashboard.panels.flatMap((p: any) => (p.targets ?? []).map((t: any) => t.expr));
  const alertRules: any[] = rules.groups.flatMap((g: any) => g.rules);

  it('the agent exports every metric the dashboards and alerts use', async () => {
    const exported = await exportedMetricNames();
    expect(AGENT_METRICS.filter((m) => !exported.has(m))).toEqual([]);
  });

  it('every metric the dashboard and the alerts name is one the agent exports', async () => {
    const exported = await exportedMetricNames();
    const named = new Set([...dashboardExprs, ...alertRules.map((r) => r.expr)].flatMap((e) => metricsInExpr(e, exported)));
    expect(named.size).toBeGreaterThan(5);
    expect([...named].filter((m) => !exported.has(m))).toEqual([]);
  });

  it('the dashboard covers syncs by outcome, time since the last success, purges and bytes, deferred purges, trash and clock offset', async () => {
    const exported = await exportedMetricNames();
    const used = new Set(dashboardExprs.flatMap((e) => metricsInExpr(e, exported)));
    for (const m of AGENT_METRICS) expect(used, m).toContain(m);
    expect(dashboardExprs.some((e) => /by \(outcome\)/.test(e))).toBe(true);
    expect(dashboardExprs.some((e) => /time\(\) - purge_cache_agent_last_success_timestamp_seconds/.test(e))).toBe(true);
    const ids = dashboard.panels.map((p: any) => p.id);
    expect(new Set(ids).size).toBe(ids.length);
    expect(dashboard.templating.list.map((v: any) => v.name)).toEqual(expect.arrayContaining(['datasource', 'instance']));
  });

  it('alerts on an agent that has not synced for too long and on purge failures', () => {
    for (const rule of alertRules) {
      expect(rule.alert).toMatch(/^PurgeCacheAgent/);
      expect(rule.labels?.severity).toBeTruthy();
      expect(rule.annotations?.summary).toBeTruthy();
    }
    expect(alertRules.some((r) => r.expr.includes('purge_cache_agent_last_success_timestamp_seconds') && r.expr.includes('time()'))).toBe(true);
    expect(alertRules.some((r) => r.expr.includes('purge_cache_agent_purge_failures_total'))).toBe(true);
  });

  it('no alert selects by scrape job, so they work however the agents are scraped (annotated pods, static targets)', () => {
    for (const rule of alertRules) expect(rule.expr, rule.alert).not.toMatch(/\bjob\s*(=~|!~|!=|=)/);
    const down = alertRules.find((r) => r.alert === 'PurgeCacheAgentDown');
    expect(down.expr).toContain('purge_cache_agent_info');
    expect(alertRules.some((r) => /absent\(purge_cache_agent_info\)/.test(r.expr))).toBe(true);
  });

  it('the dashboard shows evictions by reason, in caches and in bytes', () => {
    const evictionExprs = dashboardExprs.filter((e) => /purge_cache_agent_evict(ions|ed_bytes)_total/.test(e));
    expect(evictionExprs.some((e) => e.includes('purge_cache_agent_evictions_total') && /by \(reason\)/.test(e))).toBe(true);
    expect(evictionExprs.some((e) => e.includes('purge_cache_agent_evicted_bytes_total') && /by \(reason\)/.test(e))).toBe(true);
  });

  // promtool checks PromQL for real. CI fetches it (.ci/run); elsewhere set PROMTOOL or put it on PATH.
  const promtool = process.env.PROMTOOL || (hasCommand('promtool') ? 'promtool' : '');
  it.skipIf(!promtool)('promtool accepts the alert rules and every dashboard query (skipped without promtool)', async () => {
    const run = promisify(execFile);
    await run(promtool, ['check', 'rules', repoFile('deploy/prometheus/alerts.yaml')]);
    // The dashboard's queries, with Grafana's variables filled in, as recording rules promtool can parse.
    const tmp = await makeTempDir('pca-promtool-');
    try {
      const filled = dashboardExprs.map((e) =>
        e.replaceAll('$__rate_interval', '5m').replaceAll('$__range', '6h').replaceAll('$job', '.*').replaceAll('$instance', '.*'),
      );
      const file = path.join(tmp.path, 'dashboard-rules.yaml');
      await writeFile(file, YAML.stringify({ groups: [{ name: 'dashboard', rules: filled.map((expr, i) => ({ record: `dashboard:query${i}`, expr })) }] }));
      await run(promtool, ['check', 'rules', file]);
    } finally {
      await tmp.cleanup();
    }
  });

  // The alerts evaluated by promtool on made-up scrapes: agents under a job
  // named by annotation-based pod discovery, and a target that is no agent.
  it.skipIf(!promtool)('promtool: an agent that stops answering alerts under any job name; a retired one and other targets do not', async () => {
    const rule = (name: string) => alertRules.find((r) => r.alert === name);
    const rendered = (name: string, labels: Record<string, string>) => {
      const annotations: Record<string, string> = {};
      for (const [k, v] of Object.entries<string>(rule(name).annotations))
        annotations[k] = v.trim().replace(/\{\{ \$labels\.(\w+) \}\}/g, (_, l: string) => labels[l] ?? '');
      return { exp_labels: { ...labels, ...rule(name).labels }, exp_annotations: annotations };
    };
    const agent = (job: string, instance: string, up: string, info: string) => [
      { series: `up{job="${job}", instance="${instance}"}`, values: up },
      { series: `purge_cache_agent_info{job="${job}", instance="${instance}", version="0.1.0", worker_pool_id="proj-builds/linux"}`, values: info },
    ];
    const tests = {
      rule_files: [repoFile('deploy/prometheus/alerts.yaml')],
      evaluation_interval: '1m',
      tests: [
        {
          interval: '1m',
          input_series: [
            ...agent('kubernetes-pods', '10.0.0.1:9464', '1 1 1 0x40', '1 1 1 stale'), // stops answering
            ...agent('workers', 'worker-2:9464', '1x43', '1x43'), // healthy
            ...agent('kubernetes-pods', '10.0.0.3:9464', '1 1 1 stale', '1 1 1 stale'), // pod deleted
            { series: 'up{job="node", instance="10.0.0.4:9100"}', values: '0x43' }, // not an agent
          ],
          alert_rule_test: [
            {
              eval_time: '20m',
              alertname: 'PurgeCacheAgentDown',
              exp_alerts: [rendered('PurgeCacheAgentDown', { job: 'kubernetes-pods', instance: '10.0.0.1:9464' })],
            },
            { eval_time: '20m', alertname: 'PurgeCacheAgentMetricsAbsent', exp_alerts: [] },
          ],
        },
        {
          interval: '1m',
          input_series: [{ series: 'up{job="node", instance="10.0.0.4:9100"}', values: '1x60' }],
          alert_rule_test: [
            { eval_time: '45m', alertname: 'PurgeCacheAgentMetricsAbsent', exp_alerts: [rendered('PurgeCacheAgentMetricsAbsent', {})] },
            { eval_time: '45m', alertname: 'PurgeCacheAgentDown', exp_alerts: [] },
          ],
        },
      ],
    };
    const tmp = await makeTempDir('pca-promtool-');
    try {
      const file = path.join(tmp.path, 'alerts.test.yaml');
      await writeFile(file, YAML.stringify(tests));
      const result = await promisify(execFile)(promtool, ['test', 'rules', file]).catch((err: unknown) => {
        const failed = err as { stdout?: string; stderr?: string };
        throw new Error(`promtool test rules failed:\n${failed.stdout ?? ''}${failed.stderr ?? ''}`);
      });
      expect(result.stdout).toContain('SUCCESS');
    } finally {
      await tmp.cleanup();
    }
  });
});
