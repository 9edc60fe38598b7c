/**
 * Support for the adversarial suite (issue 6): recording what each scenario
 * tried (read back by scripts/reliability-report.mjs from vitest's JSON
 * report), real mounts and attributes inside our own temp dirs, and the
 * clean-up that must happen whatever a test did (unmount, chattr -i) before a
 * temp dir can be removed.
 *
 * Everything here acts only on paths below a temp dir the test made.
 */
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { promisify } from 'node:util';
import type { TestContext } from 'vitest';
import { makeTempDir, type TempDir } from '../helpers/tmp.js';

const run = promisify(execFile);

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

// ---------------------------------------------------------------------------
// Mounts (root only; a sandbox may refuse them: callers skip with the reason).

export interface MountResult {
  ok: boolean;
  error?: string;
}

async function tryRun(cmd: string, args: string[]): Promise<MountResult> {
  try {
    await run(cmd, args, { timeout: 10_000 });
    return { ok: true };
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    return { ok: false, error: `${cmd} ${args.join(' ')}: ${(e.stderr || e.message).trim()}` };
  }
}

/** A tmpfs at `target`, with `tag` as its source so it can be found in mountinfo wherever it moves. */
export function mountTmpfs(target: string, tag: string, size = '1m'): Promise<MountResult> {
  return tryRun('mount', ['-t', 'tmpfs', '-o', `size=${size},mode=0755`, tag, target]);
}

export async function bindMount(source: string, target: string, opts: { readOnly?: boolean } = {}): Promise<MountResult> {
  const bound = await tryRun('mount', ['--bind', source, target]);
  if (!bound.ok || !opts.readOnly) return bound;
  return tryRun('mount', ['-o', 'remount,bind,ro', target]);
}

interface MountLine {
  mountPoint: string;
  source: string;
}

function unescapeOctal(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, oct: string) => String.fromCharCode(parseInt(oct, 8)));
}

export async function mounts(): Promise<MountLine[]> {
  const text = await readFile('/proc/self/mountinfo', 'utf8');
  return text
    .split('\n')
    .filter(Boolean)
    .map((line) => {
      const f = line.split(' ');
      const dash = f.indexOf('-');
      return { mountPoint: unescapeOctal(f[4]!), source: unescapeOctal(f[dash + 2] ?? '') };
    });
}

const inside = (p: string, dir: string) => p === dir || p.startsWith(dir + '/');

/** Every mount point at or below `dir`. */
export async function mountsUnder(dir: string): Promise<string[]> {
  return (await mounts()).map((m) => m.mountPoint).filter((p) => inside(p, dir));
}

/** Where the tmpfs tagged `tag` is mounted now (a purge may have moved it into the trash). */
export async function whereIsTmpfs(tag: string): Promise<string | undefined> {
  return (await mounts()).find((m) => m.source === tag)?.mountPoint;
}

/** Unmount everything below `dir`, deepest first (lazily if busy). Only ever below our own temp dirs. */
export async function unmountAllUnder(dir: string): Promise<void> {
  if (!dir.startsWith('/tmp/') && !dir.includes('/.test-tmp/')) throw new Error(`refusing to unmount below ${dir}: not a test temp dir`);
  for (let round = 0; round < 5; round++) {
    const points = (await mountsUnder(dir)).sort((a, b) => b.length - a.length);
    if (points.length === 0) return;
    for (const p of points) {
      const r = await tryRun('umount', [p]);
      if (!r.ok) await tryRun('umount', ['-l', p]);
    }
  }
}

// ---------------------------------------------------------------------------
// Attributes.

export function chattr(flag: '+i' | '-i' | '+a' | '-a', target: string): Promise<MountResult> {
  return tryRun('chattr', [flag, target]);
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
