/**
 * The idle daemon's footprint: the built CLI's `run`, against the embedded
 * service on 127.0.0.1, with a cache root of 1,000 caches. After its first
 * cycle, /proc/<pid> is sampled while it waits for its next scheduled cycle.
 * Targets: at most 60 MB RSS when started plainly (`purge-cache-agent run`, no
 * NODE_OPTIONS), near-zero CPU between cycles. Also measured with the
 * NODE_OPTIONS the shipped units set, and bare Node's RSS as the reference.
 */
import { spawn } from 'node:child_process';
import { mkdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startService } from '../../src/service/index.js';
import { silentLogger } from '../../src/log.js';
import { round, scratch, type Result } from '../lib.js';

/** The NODE_OPTIONS the shipped systemd unit and image set (systemd/purge-cache-agent.service). */
const SHIPPED_NODE_OPTIONS = '--max-semi-space-size=1';

const CLI = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../dist/cli.js');
const SAMPLE_S = 20;

async function rssAndTicks(pid: number): Promise<{ rssMb: number; anonMb: number; fileMb: number; ticks: number }> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const kb = (field: string): number => Number(new RegExp(`${field}:\\s+(\\d+)`).exec(status)?.[1] ?? NaN);
  const rssKb = kb('VmRSS');
  // Fields 14 and 15 of /proc/<pid>/stat: utime and stime, in clock ticks (after the command name).
  const stat = (await readFile(`/proc/${pid}/stat`, 'utf8')).split(') ')[1]!.split(' ');
  return { rssMb: rssKb / 1024, anonMb: kb('RssAnon') / 1024, fileMb: kb('RssFile') / 1024, ticks: Number(stat[11]) + Number(stat[12]) };
}

interface Idle {
  peakRss: number;
  /** At the end of the sample: anonymous memory (V8's heap, malloc) and file-backed pages (the node binary's code and data touched). */
  anonMb: number;
  fileMb: number;
  cpuPercent: number;
}

export async function footprint(): Promise<Result[]> {
  const bare = await bareNodeRss();
  const plain = await idleDaemon(undefined);
  const shipped = await idleDaemon(SHIPPED_NODE_OPTIONS);
  return [
    {
      scenario: `footprint: idle daemon RSS (peak over ${SAMPLE_S} s, 1,000 caches), started plainly (no NODE_OPTIONS)`,
      value: round(plain.peakRss),
      unit: 'MB',
      reference: round(bare.rssMb),
      ratio: round(plain.peakRss / bare.rssMb, 2),
      target: '≤ 60 MB',
      met: plain.peakRss <= 60,
      note: `reference: bare node waiting on a timer (${round(bare.anonMb)} MB anonymous, ${round(bare.fileMb)} MB of the node binary); the daemon: ${round(plain.anonMb)} MB anonymous, ${round(plain.fileMb)} MB file-backed. The daemon sets --no-turbofan and --optimize-for-size on itself, and times its schedule without Intl (whose ICU data node-cron kept resident)`,
    },
    {
      scenario: `footprint: the same with the shipped NODE_OPTIONS (${SHIPPED_NODE_OPTIONS})`,
      value: round(shipped.peakRss),
      unit: 'MB',
      reference: round(bare.rssMb),
      ratio: round(shipped.peakRss / bare.rssMb, 2),
    },
    {
      scenario: `footprint: idle daemon CPU between cycles (${SAMPLE_S} s)`,
      value: round(plain.cpuPercent, 2),
      unit: '% of a core',
      target: 'near zero (< 1 %)',
      met: plain.cpuPercent < 1,
      note: 'includes the --recheck timer (every 5 s) and the API server',
    },
  ];
}

/** A bare node process waiting on a timer: the floor any daemon on this Node starts from. */
async function bareNodeRss(): Promise<{ rssMb: number; anonMb: number; fileMb: number }> {
  const child = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60_000)'], { stdio: 'ignore', env: { PATH: process.env.PATH ?? '/usr/bin:/bin' } });
  try {
    await new Promise((r) => setTimeout(r, 1000));
    return await rssAndTicks(child.pid!);
  } finally {
    child.kill('SIGTERM');
    await new Promise((r) => child.once('close', r));
  }
}

async function idleDaemon(nodeOptions: string | undefined): Promise<Idle> {
  const dir = await scratch('footprint');
  const service = await startService({ host: '127.0.0.1', port: 0, logger: silentLogger() });
  const root = path.join(dir.path, 'caches');
  for (let i = 0; i < 1000; i++) await mkdir(path.join(root, `cache-${i}`), { recursive: true });
  // A schedule far in the future: after the start cycle, the daemon only waits (and rechecks deferrals).
  const child = spawn(
    process.execPath,
    [
      CLI,
      'run',
      '--root-url',
      service.url,
      '--worker-pool-id',
      'bench/idle',
      '--cache-root',
      root,
      '--state-dir',
      path.join(dir.path, 'state'),
      '--schedule',
      '0 0 1 1 *',
      '--log-level',
      'info',
    ],
    {
      stdio: ['ignore', 'ignore', 'pipe'],
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: dir.path, ...(nodeOptions ? { NODE_OPTIONS: nodeOptions } : {}) },
    },
  );
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  try {
    const deadline = Date.now() + 30_000;
    while (!stderr.includes('purge-cache-agent started')) {
      if (Date.now() > deadline || child.exitCode !== null) throw new Error(`daemon did not start: ${stderr}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    // Let the start cycle, the trash check and the first recheck settle.
    await new Promise((r) => setTimeout(r, 5_000));
    const a = await rssAndTicks(child.pid!);
    let peakRss = a.rssMb;
    for (let s = 0; s < SAMPLE_S; s++) {
      await new Promise((r) => setTimeout(r, 1000));
      peakRss = Math.max(peakRss, (await rssAndTicks(child.pid!)).rssMb);
    }
    const b = await rssAndTicks(child.pid!);
    const cpuPercent = ((b.ticks - a.ticks) / 100 / SAMPLE_S) * 100;
    return { peakRss, anonMb: b.anonMb, fileMb: b.fileMb, cpuPercent };
  } finally {
    child.kill('SIGTERM');
    await new Promise((r) => child.once('close', r));
    await service.close();
    await dir.remove();
  }
}
