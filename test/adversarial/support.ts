/**
 * Support for the adversarial suite: recording what each scenario tried (read
 * back by scripts/reliability-report.mjs from vitest's JSON report), temp dirs
 * for hostile trees, and looking at processes. Mounts and attributes are in
 * test/helpers/mounts.ts.
 */
import { readFile } from 'node:fs/promises';
import type { TestContext } from 'vitest';
import { makeTempDir, type TempDir } from '../helpers/tmp.js';
import { tryRun, unmountAllUnder } from '../helpers/mounts.js';

declare module 'vitest' {
  interface TaskMeta {
    /** What the reliability report shows for this scenario. */
    reliability?: { cases?: number; unit?: string; detail?: string; skipped?: string };
  }
}

/** Record how many cases a scenario tried (and what they were), for docs/reliability.md. */
export function record(ctx: TestContext, info: { cases?: number; unit?: string; detail?: string }): void {
  ctx.task.meta.reliability = { ...ctx.task.meta.reliability, ...info };
}

/** Skip the rest of a scenario, saying why (the reason goes into the report). */
export function skipBecause(ctx: TestContext, reason: string): never {
  ctx.task.meta.reliability = { ...ctx.task.meta.reliability, skipped: reason };
  ctx.skip(reason);
  throw new Error('unreachable');
}

/** A temp dir for hostile trees: its clean-up unmounts and clears immutable flags first. */
export async function hostileTempDir(prefix: string): Promise<TempDir> {
  const tmp = await makeTempDir(prefix);
  return {
    path: tmp.path,
    async cleanup() {
      await unmountAllUnder(tmp.path);
      await tryRun('chattr', ['-R', '-f', '-i', '-a', tmp.path]);
      await tmp.cleanup();
    },
  };
}

// ---------------------------------------------------------------------------
// Processes.

/** Peak and current resident memory of a process, in MiB (from /proc). */
export async function memoryOf(pid: number): Promise<{ peakMiB: number; rssMiB: number }> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const kb = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN);
  return { peakMiB: Math.round(kb('VmHWM') / 1024), rssMiB: Math.round(kb('VmRSS') / 1024) };
}

export function isRunning(child: { exitCode: number | null; signalCode: NodeJS.Signals | null }): boolean {
  return child.exitCode === null && child.signalCode === null;
}
