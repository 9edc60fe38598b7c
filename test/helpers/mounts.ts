/**
 * Real mounts and file attributes inside a test's own temp dir (root only; a
 * sandbox may refuse them, and the caller then skips saying why), and the
 * clean-up that must happen whatever a test did (unmount, chattr -i) before a
 * temp dir can be removed. Each action resolves with the error text when it
 * fails, or null. Everything here acts only on paths below a temp dir the
 * test made.
 */
import { execFile } from 'node:child_process';
import { afterEach } from 'vitest';
import type { Fixture } from './fixture.js';
import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** Run a command; the error text when it fails (so a test can skip saying why), else null. */
export async function tryRun(cmd: string, args: string[]): Promise<string | null> {
  try {
    await run(cmd, args, { timeout: 10_000 });
    return null;
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    return `${cmd} ${args.join(' ')}: ${(e.stderr || e.message).trim()}`;
  }
}

/** A tmpfs at `target`, with `tag` as its source so it can be found in mountinfo wherever it moves. */
export function mountTmpfs(target: string, tag = 'pca-test', size = '1m'): Promise<string | null> {
  return tryRun('mount', ['-t', 'tmpfs', '-o', `size=${size},mode=0755`, tag, target]);
}

export function mountRamfs(target: string): Promise<string | null> {
  return tryRun('mount', ['-t', 'ramfs', 'pca-test', target]);
}

export async function bindMount(source: string, target: string, opts: { readOnly?: boolean } = {}): Promise<string | null> {
  const failed = await tryRun('mount', ['--bind', source, target]);
  if (failed !== null || !opts.readOnly) return failed;
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
      return { mountPoint: unescapeOctal(f[4] ?? ''), source: unescapeOctal(f[dash + 2] ?? '') };
    });
}

const inside = (p: string, dir: string) => p === dir || p.startsWith(dir + '/');

/** Every mount point at or below `dir`, deepest first (the order to unmount them in). */
export async function mountsUnder(dir: string): Promise<string[]> {
  const points = (await mounts()).map((m) => m.mountPoint).filter((p) => inside(p, dir));
  return points.sort((a, b) => b.length - a.length);
}

/** Where the tmpfs tagged `tag` is mounted now (a purge may have moved it into the trash). */
export async function whereIsTmpfs(tag: string): Promise<string | undefined> {
  return (await mounts()).find((m) => m.source === tag)?.mountPoint;
}

/** Unmount everything at or below `dir` (wherever a test's renames moved it), lazily if busy. Only ever below our own temp dirs. */
export async function unmountAllUnder(dir: string): Promise<void> {
  const ours = inside(dir, tmpdir()) || dir.startsWith('/tmp/') || dir.includes('/.test-tmp/');
  if (!ours) throw new Error(`refusing to unmount below ${dir}: not a test temp dir`);
  for (let round = 0; round < 5; round++) {
    const points = await mountsUnder(dir);
    if (points.length === 0) return;
    for (const p of points) {
      if ((await tryRun('umount', [p])) !== null) await tryRun('umount', ['-l', p]);
    }
  }
}

export function chattr(flag: '+i' | '-i' | '+a' | '-a', target: string): Promise<string | null> {
  return tryRun('chattr', [flag, target]);
}

/**
 * Undo what a fault test did to a tree before it is removed: unmount what is
 * mounted below it, and clear the immutable and append-only flags (ignoring a
 * filesystem where chattr does not apply).
 */
export async function releaseTree(dir: string): Promise<void> {
  await unmountAllUnder(dir);
  await tryRun('chattr', ['-R', '-f', '-i', '-a', dir]);
}

/**
 * After each test, release and close the fixture the test made (none when it
 * failed before making one): the teardown of the filesystem-fault tests.
 */
export function releaseAfterEach(current: () => Fixture | undefined): void {
  afterEach(async () => {
    const fx = current();
    if (fx === undefined) return;
    await releaseTree(fx.tmp.path);
    await fx.close();
  });
}
