/**
 * Start-up: the commands that run before tasks, as users run them (the built
 * dist/cli.js in a fresh process), side by side with a bare `node -e 0` in
 * the same run, alternating:
 * - `once` with nothing to purge: 50 caches, no purge requests, against the
 *   embedded service on 127.0.0.1;
 * - `exec --cache c1 -- true` with no agent running.
 * Targets: wall time ≤ bare Node + 0.2 s, peak RSS ≤ 70 MB.
 *
 * Also reported, as findings: where a `once` spends its time (a --cpu-prof of
 * one run, by kind of work) and what each runtime dependency costs in resident
 * memory when loaded alone into a bare process.
 */
import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, readFile, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startService } from '../../src/service/index.js';
import { silentLogger } from '../../src/log.js';
import { median, ms, round, scratch, type Result } from '../lib.js';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const REPO = path.resolve(HERE, '../../..');
const CLI = path.join(REPO, 'dist/cli.js');
const PEAK_PRELOAD = path.join(REPO, 'bench/peak-rss.cjs');
const ROUNDS = 9;
const CACHES = 50;

interface Run {
  ms: number;
  peakMb: number;
  heapUsedMb: number;
  /** The programs the process started (flock, perl, the command of exec, ...). */
  spawned: string[];
}

/** Run `node [nodeArgs] args` to completion; wall time and the peak RSS the preload reported. */
async function measure(args: string[], env: Record<string, string>, peakFile: string, nodeArgs: string[] = []): Promise<Run> {
  await rm(peakFile, { force: true });
  const start = performance.now();
  const { code, stderr } = await new Promise<{ code: number | null; stderr: string }>((resolve, reject) => {
    const child = spawn(process.execPath, ['-r', PEAK_PRELOAD, ...nodeArgs, ...args], {
      stdio: ['ignore', 'ignore', 'pipe'],
      env: { ...env, PCA_BENCH_PEAK_FILE: peakFile },
    });
    let err = '';
    child.stderr.setEncoding('utf8').on('data', (d: string) => (err = (err + d).slice(-4000)));
    child.on('error', reject);
    child.on('close', (c) => {
      resolve({ code: c, stderr: err });
    });
  });
  const elapsed = ms(start);
  if (code !== 0) throw new Error(`node ${args.join(' ')} exited ${code}: ${stderr}`);
  const report = JSON.parse((await readFile(peakFile, 'utf8')).trim().split('\n').pop()!) as { peakMb: number; heapUsedMb: number; spawned: string[] };
  return { ms: elapsed, peakMb: report.peakMb, heapUsedMb: report.heapUsedMb, spawned: report.spawned };
}

export async function startup(): Promise<Result[]> {
  const dir = await scratch('startup');
  const service = await startService({ host: '127.0.0.1', port: 0, logger: silentLogger() });
  try {
    const root = path.join(dir.path, 'caches');
    for (let i = 1; i <= CACHES; i++) await mkdir(path.join(root, `c${i}`), { recursive: true });
    const env = { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: dir.path };
    const peakFile = path.join(dir.path, 'peak.jsonl');
    const once = [
      'once',
      '--root-url',
      service.url,
      '--worker-pool-id',
      'bench/startup',
      '--cache-root',
      root,
      '--state-dir',
      path.join(dir.path, 'state-once'),
    ];
    const exec = [
      'exec',
      '--cache',
      'c1',
      '--cache-root',
      root,
      '--state-dir',
      path.join(dir.path, 'state-exec'),
      '--api-socket',
      path.join(dir.path, 'nobody.sock'),
      '--',
      'true',
    ];
    const runs = { bare: [] as Run[], once: [] as Run[], exec: [] as Run[] };
    // One warm-up of each (page cache), then alternate so load on the machine bills all three alike.
    await measure(['-e', '0'], env, peakFile);
    await measure([CLI, ...once], env, peakFile);
    await measure([CLI, ...exec], env, peakFile);
    for (let i = 0; i < ROUNDS; i++) {
      runs.bare.push(await measure(['-e', '0'], env, peakFile));
      runs.once.push(await measure([CLI, ...once], env, peakFile));
      runs.exec.push(await measure([CLI, ...exec], env, peakFile));
    }
    const bareMs = median(runs.bare.map((r) => r.ms));
    const bareMb = median(runs.bare.map((r) => r.peakMb));
    const results: Result[] = [
      { scenario: 'startup: bare `node -e 0` (the reference)', value: round(bareMs), unit: 'ms', note: `peak RSS ${round(bareMb)} MB; median of ${ROUNDS}` },
    ];
    for (const [name, label] of [
      ['once', `startup: \`once\` with nothing to purge (${CACHES} caches, no requests)`],
      ['exec', 'startup: `exec --cache c1 -- true`, no agent running'],
    ] as const) {
      const wall = median(runs[name].map((r) => r.ms));
      const peak = median(runs[name].map((r) => r.peakMb));
      results.push({
        scenario: `${label}: wall time`,
        value: round(wall),
        unit: 'ms',
        reference: round(bareMs),
        ratio: round(wall / bareMs, 2),
        target: '≤ bare Node + 200 ms',
        met: wall <= bareMs + 200,
        note: `+${round(wall - bareMs)} ms over bare Node; median of ${ROUNDS}, alternating with the reference; child processes: ${spawnedText(runs[name][0]!.spawned)}`,
      });
      results.push({
        scenario: `${label}: peak RSS`,
        value: round(peak),
        unit: 'MB',
        reference: round(bareMb),
        ratio: round(peak / bareMb, 2),
        target: '≤ 70 MB',
        met: peak <= 70,
        note: `heap used at exit ${round(median(runs[name].map((r) => r.heapUsedMb)))} MB`,
      });
    }
    results.push(await profileOnce(once, env, peakFile));
    results.push(await moduleCosts(env, peakFile, bareMb));
    return results;
  } finally {
    await service.close();
    await dir.remove();
  }
}

/** `flock ×2, true` — each start of a program costs several ms of the parent's time (fork of a large process). */
function spawnedText(spawned: string[]): string {
  if (spawned.length === 0) return 'none';
  const counts = new Map<string, number>();
  for (const name of spawned) counts.set(name, (counts.get(name) ?? 0) + 1);
  return [...counts].map(([name, n]) => (n > 1 ? `${name} ×${n}` : name)).join(', ');
}

/** One `once` under --cpu-prof: its CPU time by kind of work, as a finding. */
async function profileOnce(once: string[], env: Record<string, string>, peakFile: string): Promise<Result> {
  const profDir = await mkdtemp(path.join(tmpdir(), 'pca-bench-prof-'));
  try {
    const run = await measure([CLI, ...once], env, peakFile, ['--cpu-prof', '--cpu-prof-dir', profDir, '--cpu-prof-interval', '250']);
    const file = (await readdir(profDir)).find((f) => f.endsWith('.cpuprofile'));
    if (!file) throw new Error('no CPU profile written');
    const profile = JSON.parse(await readFile(path.join(profDir, file), 'utf8')) as CpuProfile;
    const kinds = byKind(profile);
    const scripts = new Set(profile.nodes.map((n) => n.callFrame.url).filter((u) => u.startsWith('file://')));
    let bytes = 0;
    for (const url of scripts) bytes += (await stat(fileURLToPath(url))).size;
    const total = Object.values(kinds).reduce((a, b) => a + b, 0);
    const parts = Object.entries(kinds)
      .sort((a, b) => b[1] - a[1])
      .map(([kind, t]) => `${kind} ${round(t)} ms`);
    return {
      scenario: 'startup: where one `once` spends its time (--cpu-prof, by kind of work)',
      value: round(total),
      unit: 'ms',
      note: `${parts.join('; ')} (wall ${round(run.ms)} ms with the profiler on); JavaScript of ours run: ${scripts.size} files, ${round(bytes / 1024)} KB`,
    };
  } finally {
    await rm(profDir, { recursive: true, force: true });
  }
}

interface CpuProfile {
  nodes: { id: number; callFrame: { functionName: string; url: string } }[];
  samples: number[];
  timeDeltas: number[];
}

function byKind(profile: CpuProfile): Record<string, number> {
  const kindOf = new Map<number, string>();
  for (const node of profile.nodes) {
    const { functionName: fn, url } = node.callFrame;
    let kind: string;
    if (fn === '(idle)') kind = 'waiting (flock child, HTTP, disk)';
    else if (fn === '(garbage collector)') kind = 'garbage collection';
    else if (fn === '(program)') kind = 'V8 and native (parsing, compiling)';
    else if (/^node:internal\/(modules|bootstrap)|^node:internal\/deps\/cjs-module-lexer/.test(url)) kind = 'loading modules';
    else if (url.startsWith('node:') || url === '') kind = 'Node built-ins';
    else kind = 'the CLI and its bundled dependencies';
    kindOf.set(node.id, kind);
  }
  const out: Record<string, number> = {};
  profile.samples.forEach((id, i) => {
    const kind = kindOf.get(id) ?? 'other';
    out[kind] = (out[kind] ?? 0) + (profile.timeDeltas[i] ?? 0) / 1000;
  });
  return out;
}

/** Each runtime dependency loaded alone (from node_modules, unbundled; `npm run bench` runs in the repository) into a bare process: its resident cost. */
async function moduleCosts(env: Record<string, string>, peakFile: string, bareMb: number): Promise<Result> {
  const modules = ['zod', 'pino', 'yaml', 'hawk', 'prom-client', 'node-cron', 'commander', 'undici'];
  const costs: string[] = [];
  let total = 0;
  for (const name of modules) {
    const run = await measure(['--input-type=module', '-e', `await import(${JSON.stringify(name)})`], env, peakFile).catch(() => null);
    if (!run) continue;
    const cost = run.peakMb - bareMb;
    total += cost;
    costs.push(`${name} +${round(cost)}`);
  }
  return {
    scenario: 'startup: resident cost of each dependency loaded alone (unbundled)',
    value: round(total),
    unit: 'MB',
    note: `${costs.join(', ')} MB; undici (and the global fetch built on it) is no longer used at run time: its WebAssembly HTTP parser cost ~20 MB resident plus a ~30 MB transient peak while V8 optimised it`,
  };
}
