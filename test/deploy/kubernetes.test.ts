/**
 * The Kubernetes manifests, checked as YAML where no cluster is at hand: the
 * pod with its ConfigMap and Secret, the DaemonSet, the Secret's placeholders,
 * and a configuration made of environment variables alone.
 */
import { describe, expect, it } from 'vitest';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { SETTINGS } from '../../src/config/index.js';
import { settingsTable } from '../../src/config/docs.js';
import { makeTempDir } from '../helpers/tmp.js';
import { runCli } from '../helpers/cli.js';
import { AGENT_ENV, agentContainer, kubernetesDocs, memoryBytes, readRepoFile } from './helpers.js';

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

  // The probes themselves are checked for the pod and the DaemonSet alike, below.
  it('listens beyond loopback for its probes, so the Secret carries the API token', () => {
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
