/** Shared pieces of the benchmarks: results, timing, temporary trees. */
import { mkdtemp, rm, mkdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';

export interface Result {
  scenario: string;
  /** What this project measured, with its unit. */
  value: number;
  unit: string;
  /** A reference measured side by side (rm -rf, the same workload without a purge, ...), if any. */
  reference?: number;
  /** value / reference when there is a reference. */
  ratio?: number;
  /** The target, in words, and whether it was met. */
  target?: string;
  met?: boolean;
  note?: string;
}

export function ms(start: number): number {
  return performance.now() - start;
}

export function round(n: number, digits = 1): number {
  const f = 10 ** digits;
  return Math.round(n * f) / f;
}

export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/** A scratch directory on the same disk the benchmarks measure; removed by the caller. */
export async function scratch(prefix: string): Promise<{ path: string; remove(): Promise<void> }> {
  const base = process.env.PCA_BENCH_DIR ?? tmpdir();
  const dir = await mkdtemp(path.join(base, `pca-bench-${prefix}-`));
  return { path: dir, remove: () => rm(dir, { recursive: true, force: true }) };
}

/** A tree of `dirs` directories (two levels) holding `files` files in all, each `bytes` long. */
export async function makeTree(top: string, dirs: number, files: number, bytes = 64): Promise<void> {
  const content = Buffer.alloc(bytes, 120);
  const perDir = Math.ceil(files / Math.max(dirs, 1));
  let made = 0;
  await mkdir(top, { recursive: true });
  for (let d = 0; d < Math.max(dirs, 1) && made < files; d++) {
    const dir = dirs > 0 ? path.join(top, `g${d % 50}`, `d${d}`) : top;
    await mkdir(dir, { recursive: true });
    const batch: Promise<void>[] = [];
    for (let f = 0; f < perDir && made < files; f++, made++) batch.push(writeFile(path.join(dir, `f${f}`), content));
    await Promise.all(batch);
  }
}

/** Flush dirty pages so one tree's writeback doesn't bill the next deletion. */
export function settle(): void {
  spawnSync('sync');
}

/**
 * One round of ours against `rm -rf` on an identical tree, alternating which
 * goes first so neither always meets the warmer cache; their times are pushed
 * to `rmTimes` and by `ours` itself.
 */
export async function pairedWithRm(roundIndex: number, ours: () => Promise<void>, rmTarget: string, rmTimes: number[]): Promise<void> {
  const runRm = (): void => {
    const start = performance.now();
    const res = spawnSync('rm', ['-rf', '--one-file-system', rmTarget]);
    rmTimes.push(ms(start));
    if (res.status !== 0) throw new Error(`rm -rf failed: ${String(res.stderr)}`);
  };
  if (roundIndex % 2 === 0) {
    await ours();
    settle();
    runRm();
  } else {
    runRm();
    settle();
    await ours();
  }
  settle();
}

/** A row measured side by side with `rm -rf` on an identical tree: medians, their ratio, and the ≤ 1.0 target. */
export function versusRm(scenario: string, ours: number[], rm: number[], note: (o: string, r: string) => string): Result {
  const o = median(ours);
  const r = median(rm);
  const list = (xs: number[]): string => xs.map((x) => round(x)).join(', ');
  return {
    scenario,
    value: round(o),
    unit: 'ms',
    reference: round(r),
    ratio: round(o / r, 2),
    target: 'ratio ≤ 1.0 vs rm -rf',
    met: o / r <= 1.0,
    note: note(list(ours), list(rm)),
  };
}
