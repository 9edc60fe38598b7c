/**
 * Readers for the deployment files, so the tests run what the files say rather
 * than a copy of it: systemd units and environment files, the Containerfile,
 * and the metric names the agent exports.
 */
import { readFileSync, existsSync } from 'node:fs';
import { execFile } from 'node:child_process';
import { cp, mkdir, realpath } from 'node:fs/promises';
import { promisify } from 'node:util';
import { request } from 'node:http';
import path from 'node:path';
import { Registry, collectDefaultMetrics } from 'prom-client';
import YAML from 'yaml';
import { SETTINGS } from '../../src/config/index.js';
import { REPO_ROOT } from '../helpers/tmp.js';
import { REQUIRED_METRICS } from '../helpers/metrics.js';

export const repoFile = (rel: string): string => path.join(REPO_ROOT, rel);
export const readRepoFile = (rel: string): string => readFileSync(repoFile(rel), 'utf8');

/** Where the units, the example config and the environment file say things live on a host. */
export const HOST_PATHS = {
  config: '/etc/purge-cache-agent/agent.yaml',
  envFile: '/etc/purge-cache-agent/agent.env',
  stateDir: '/var/lib/purge-cache-agent',
  runtimeDir: '/run/purge-cache-agent',
} as const;

// ---------------------------------------------------------------- systemd

export type Unit = Map<string, Map<string, string[]>>;

/** A unit file as systemd reads it: sections of keys, each with its assignments in order. */
export function parseUnit(text: string): Unit {
  const unit: Unit = new Map();
  let section: Map<string, string[]> | undefined;
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    let line = lines[i]!.trim();
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue;
    while (line.endsWith('\\') && i + 1 < lines.length) line = `${line.slice(0, -1)} ${lines[++i]!.trim()}`;
    const header = /^\[([^\]]+)\]$/.exec(line);
    if (header) {
      section = unit.get(header[1]!) ?? new Map();
      unit.set(header[1]!, section);
      continue;
    }
    const at = line.indexOf('=');
    if (!section || at <= 0) throw new Error(`not a unit file line: ${line}`);
    const key = line.slice(0, at).trim();
    section.set(key, [...(section.get(key) ?? []), line.slice(at + 1).trim()]);
  }
  return unit;
}

export function loadUnit(name: string): Unit {
  return parseUnit(readRepoFile(`systemd/${name}`));
}

/** The effective value of a key: the last assignment (an empty one resets it). */
export function unitValue(unit: Unit, section: string, key: string): string | undefined {
  return unit.get(section)?.get(key)?.at(-1);
}

/** A list-valued key (ReadWritePaths=, CapabilityBoundingSet=, ...): assignments add up, an empty one resets. */
export function unitList(unit: Unit, section: string, key: string): string[] {
  let out: string[] = [];
  for (const value of unit.get(section)?.get(key) ?? []) out = value === '' ? [] : [...out, ...value.split(/\s+/)];
  return out;
}

/**
 * An Exec*= line split into argv as systemd does it: words separated by white
 * space, double and single quotes, backslash escapes. The units use no
 * $VARIABLE expansion; one appearing here fails loudly so this test is updated.
 */
export function splitExec(line: string): string[] {
  const value = line.replace(/^[-@:+!]+/, '');
  const words: string[] = [];
  let word: string | null = null;
  let quote: '"' | "'" | null = null;
  for (let i = 0; i < value.length; i++) {
    const c = value[i]!;
    if (quote) {
      if (c === quote) quote = null;
      else if (c === '\\' && quote === '"') word = (word ?? '') + (value[++i] ?? '');
      else word = (word ?? '') + c;
    } else if (/\s/.test(c)) {
      if (word !== null) words.push(word);
      word = null;
    } else if (c === '"' || c === "'") {
      quote = c;
      word ??= '';
    } else if (c === '\\') {
      word = (word ?? '') + (value[++i] ?? '');
    } else if (c === '$') {
      throw new Error(`Exec line uses variable expansion, which this test does not model: ${line}`);
    } else {
      word = (word ?? '') + c;
    }
  }
  if (quote) throw new Error(`unterminated quote in ${line}`);
  if (word !== null) words.push(word);
  return words;
}

/**
 * An EnvironmentFile= as systemd reads it: KEY=VALUE lines, # and ; comments,
 * white space around key and value dropped, '…' taken literally and "…" with
 * backslash escapes.
 */
export function parseEnvFile(text: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue;
    const at = line.indexOf('=');
    if (at <= 0) throw new Error(`not an environment file line: ${line}`);
    const key = line.slice(0, at).trim();
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(key)) throw new Error(`bad variable name in environment file: ${key}`);
    let value = line.slice(at + 1).trim();
    if (value.length >= 2 && value.startsWith("'") && value.endsWith("'")) value = value.slice(1, -1);
    else if (value.length >= 2 && value.startsWith('"') && value.endsWith('"')) value = value.slice(1, -1).replace(/\\(.)/g, '$1');
    else if (/["'\\]/.test(value)) throw new Error(`unquoted value with quotes or backslashes (systemd would mangle it): ${line}`);
    env[key] = value;
  }
  return env;
}

/** Environment= assignments: each a space-separated list of KEY=VALUE words (quotes allowed). */
export function unitEnvironment(unit: Unit, section = 'Service'): Record<string, string> {
  const env: Record<string, string> = {};
  for (const line of unit.get(section)?.get('Environment') ?? []) {
    for (const word of splitExec(line)) {
      const at = word.indexOf('=');
      env[word.slice(0, at)] = word.slice(at + 1);
    }
  }
  return env;
}

/** systemd time spans as used here: "90s", "1h", "5min", "2min 30s". */
export function timespanSeconds(value: string): number {
  const units: Record<string, number> = { ms: 0.001, s: 1, sec: 1, m: 60, min: 60, h: 3600, hr: 3600, d: 86400 };
  let total = 0;
  for (const part of value.trim().split(/\s+/)) {
    const m = /^(\d+(?:\.\d+)?)([a-z]*)$/.exec(part);
    if (!m || (m[2] !== '' && !(m[2]! in units))) throw new Error(`unsupported time span: ${value}`);
    total += Number(m[1]) * (m[2] === '' ? 1 : units[m[2]!]!);
  }
  return total;
}

/** A directory that looks enough like a host for `systemd-analyze verify --root`: the system's units, and optionally the binary. */
export async function makeVerifyRoot(root: string, makeBin?: (bin: string) => Promise<void>): Promise<void> {
  const systemUnits = await realpath(existsSync('/usr/lib/systemd/system') ? '/usr/lib/systemd/system' : '/lib/systemd/system');
  await mkdir(path.join(root, 'usr/lib/systemd'), { recursive: true });
  await cp(systemUnits, path.join(root, 'usr/lib/systemd/system'), { recursive: true, verbatimSymlinks: true });
  await mkdir(path.join(root, 'etc/systemd/system'), { recursive: true });
  if (makeBin) {
    await mkdir(path.join(root, 'usr/local/bin'), { recursive: true });
    await makeBin(path.join(root, 'usr/local/bin/purge-cache-agent'));
  }
}

/** `systemd-analyze verify --root=ROOT` on units installed in ROOT's /etc/systemd/system (drop-ins included). */
export function verify(root: string, units: string[]): Promise<{ stdout: string; stderr: string }> {
  return promisify(execFile)('systemd-analyze', ['verify', `--root=${root}`, ...units.map((u) => `/etc/systemd/system/${u}`)], {
    env: { ...process.env, SYSTEMD_LOG_COLOR: '0' },
  });
}

// ---------------------------------------------------------------- Containerfile

export interface Instruction {
  op: string;
  args: string;
}

/** The Containerfile's instructions, stage by stage (comments dropped, continuations joined). */
export function parseContainerfile(text: string): Instruction[][] {
  const stages: Instruction[][] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    let line = lines[i]!.trim();
    if (line === '' || line.startsWith('#')) continue;
    while (line.endsWith('\\') && i + 1 < lines.length) {
      const next = lines[++i]!.trim();
      if (next.startsWith('#')) continue;
      line = `${line.slice(0, -1).trimEnd()} ${next}`;
    }
    const m = /^([A-Za-z]+)\s+([\s\S]*)$/.exec(line);
    if (!m) throw new Error(`not an instruction: ${line}`);
    const op = m[1]!.toUpperCase();
    if (op === 'FROM') stages.push([]);
    if (op === 'ARG' && stages.length === 0) continue; // global build arguments
    if (stages.length === 0) throw new Error(`${op} before FROM`);
    stages.at(-1)!.push({ op, args: m[2]! });
  }
  return stages;
}

/** ENV instructions of a stage: `KEY=VALUE ...` (values optionally double-quoted). */
export function stageEnv(stage: Instruction[]): Record<string, string> {
  const env: Record<string, string> = {};
  for (const { op, args } of stage) {
    if (op !== 'ENV') continue;
    for (const m of args.matchAll(/([A-Za-z_][A-Za-z0-9_]*)=("(?:[^"\\]|\\.)*"|\S*)/g)) {
      env[m[1]!] = m[2]!.startsWith('"') ? (JSON.parse(m[2]!) as string) : m[2]!;
    }
  }
  return env;
}

/** The exec-form (JSON array) of an instruction's arguments, e.g. ENTRYPOINT or CMD. */
export function execForm(args: string): string[] {
  const value = JSON.parse(args) as unknown;
  if (!Array.isArray(value) || !value.every((v) => typeof v === 'string')) throw new Error(`not an exec-form array: ${args}`);
  return value;
}

// ---------------------------------------------------------------- Kubernetes

/** Every environment variable the agent reads: the settings table's, the credentials', and the config file's. */
export const AGENT_ENV = new Set([
  ...SETTINGS.flatMap((s) => s.env ?? []),
  'TASKCLUSTER_CLIENT_ID',
  'TASKCLUSTER_ACCESS_TOKEN',
  'TASKCLUSTER_CERTIFICATE',
  'PURGE_CACHE_AGENT_CONFIG',
  'RUNTIME_DIRECTORY',
]);

export function kubernetesDocs(): { pod: any; configMap: any; secret: any; daemonSet: any; serviceAccount: any } {
  const docs = ['pod.yaml', 'configmap.yaml', 'secret.yaml', 'daemonset.yaml'].flatMap((f) =>
    YAML.parseAllDocuments(readRepoFile(`deploy/kubernetes/${f}`)).map((d) => {
      if (d.errors.length) throw new Error(`${f}: ${d.errors[0]!.message}`);
      return d.toJS();
    }),
  );
  const find = (kind: string) => {
    const found = docs.filter((d) => d?.kind === kind);
    if (found.length !== 1) throw new Error(`expected one ${kind} in deploy/kubernetes, found ${found.length}`);
    return found[0];
  };
  return { pod: find('Pod'), configMap: find('ConfigMap'), secret: find('Secret'), daemonSet: find('DaemonSet'), serviceAccount: find('ServiceAccount') };
}

/** Kubernetes memory quantities as used here (Mi, Gi, M, G, plain bytes), in bytes. */
export function memoryBytes(quantity: string): number {
  const m = /^(\d+(?:\.\d+)?)(Ki|Mi|Gi|k|M|G)?$/.exec(quantity);
  if (!m) throw new Error(`unsupported memory quantity: ${quantity}`);
  const units: Record<string, number> = { '': 1, Ki: 1024, Mi: 1024 ** 2, Gi: 1024 ** 3, k: 1e3, M: 1e6, G: 1e9 };
  return Number(m[1]) * units[m[2] ?? '']!;
}

/** The agent's container in a pod spec (a Pod's `spec`, or a workload's `spec.template.spec`). */
export function agentContainer(pod: any): any {
  const all = [...(pod.spec.initContainers ?? []), ...(pod.spec.containers ?? [])];
  const agents = all.filter((c: any) => String(c.image).includes('purge-cache-agent'));
  if (agents.length !== 1) throw new Error('expected exactly one purge-cache-agent container');
  return agents[0];
}

// ---------------------------------------------------------------- metrics

/**
 * Every metric family the agent exports: the names registered in
 * src/api/metrics.ts, plus prom-client's default process and Node.js metrics
 * (collectDefaultMetrics). The dashboard and the alerts may name only these.
 */
export async function exportedMetricNames(): Promise<Set<string>> {
  const source = readRepoFile('src/api/metrics.ts');
  const names = new Set([...source.matchAll(/\bname:\s*'([a-z_:][a-z0-9_:]*)'/g)].map((m) => m[1]!));
  if (source.includes('collectDefaultMetrics')) {
    const registry = new Registry();
    collectDefaultMetrics({ register: registry });
    for (const metric of await registry.getMetricsAsJSON()) names.add(metric.name);
  }
  return names;
}

/** The metrics that the dashboard and alerts are built on. */
export const AGENT_METRICS = REQUIRED_METRICS;

/** PromQL identifiers that are not the agent's metrics: Prometheus's own series. */
const PROMETHEUS_SERIES = new Set(['up']);

/**
 * The metric families a PromQL expression reads: identifiers that start a
 * selector (followed by `{`, `[`, white space, an operator or the end) and are
 * not functions, keywords or label names inside braces. A histogram's
 * _bucket/_sum/_count series map to their family.
 */
export function metricsInExpr(expr: string, exported: Set<string>): string[] {
  const withoutStrings = expr.replace(/"(?:[^"\\]|\\.)*"/g, '""');
  const withoutLabels = withoutStrings.replace(/\{[^}]*\}/g, '{}').replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, '$1()');
  const keywords = new Set(['by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'and', 'or', 'unless', 'bool', 'offset', 'le']);
  const found = new Set<string>();
  for (const m of withoutLabels.matchAll(/[A-Za-z_:][A-Za-z0-9_:]*/g)) {
    const name = m[0];
    const after = withoutLabels.slice(m.index + name.length).trimStart();
    const before = withoutLabels.slice(0, m.index);
    if (keywords.has(name) || after.startsWith('(') || /^(by|without)\b/.test(after)) continue; // a function, keyword or aggregation
    if (/\$\w*$|\$\{$/.test(before)) continue; // a Grafana variable ($__rate_interval)
    if (/\d$/.test(before) || /\[[^\]]*$/.test(before)) continue; // a duration unit (5m) or range
    const family = exported.has(name) ? name : name.replace(/_(bucket|sum|count)$/, '');
    found.add(exported.has(family) ? family : name);
  }
  return [...found].filter((n) => !PROMETHEUS_SERIES.has(n));
}

// ---------------------------------------------------------------- HTTP over a unix socket or TCP

export function httpGet(target: { socketPath: string } | { url: string }, urlPath = '/'): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const opts = 'socketPath' in target ? { socketPath: target.socketPath, path: urlPath } : new URL(urlPath, target.url);
    const req = request(opts, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (d: string) => (body += d));
      res.on('end', () => {
        resolve({ status: res.statusCode ?? 0, body });
      });
    });
    req.setTimeout(5000, () => req.destroy(new Error('timed out')));
    req.on('error', reject);
    req.end();
  });
}

export const hasCommand = (name: string): boolean => (process.env.PATH ?? '').split(':').some((dir) => dir !== '' && existsSync(path.join(dir, name)));
