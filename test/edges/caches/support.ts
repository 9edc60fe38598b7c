/**
 * Helpers for the cache tests: hashing a tree to prove it did not change, and
 * real mounts and immutable files where the sandbox allows them (callers skip
 * with the reason when it does not). Everything acts only below a temp dir the
 * test made; whatever a test mounts or makes immutable it undoes in cleanup.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { lstat, mkdir, readFile, readdir, readlink } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/**
 * A hash of everything below `dir`: names, types, modes, file contents and
 * link targets, read with lstat (never following a link).
 */
export async function hashTree(dir: string): Promise<string> {
  const hash = createHash('sha256');
  const stack = [dir];
  while (stack.length > 0) {
    const p = stack.pop()!;
    const st = await lstat(p);
    hash.update(`${path.relative(dir, p)}\0${st.mode}\0`);
    if (st.isSymbolicLink()) hash.update(`-> ${await readlink(p)}\0`);
    else if (st.isFile()) hash.update(await readFile(p));
    else if (st.isDirectory()) for (const name of (await readdir(p)).sort().reverse()) stack.push(path.join(p, name));
  }
  return hash.digest('hex');
}

/** A few directories and files, for a sentinel outside the tree under test. */
export async function makeSentinel(dir: string): Promise<void> {
  const { writeFile } = await import('node:fs/promises');
  await mkdir(path.join(dir, 'sub', 'deeper'), { recursive: true });
  await writeFile(path.join(dir, 'precious.txt'), 'must survive\n');
  await writeFile(path.join(dir, 'sub', 'deeper', 'data.bin'), Buffer.alloc(5000, 7));
}

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

export const mountTmpfs = (target: string): Promise<string | null> => tryRun('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'pca-test', target]);
export const mountRamfs = (target: string): Promise<string | null> => tryRun('mount', ['-t', 'ramfs', 'pca-test', target]);
export const bindMount = (source: string, target: string): Promise<string | null> => tryRun('mount', ['--bind', source, target]);

/** Mount points at or below `dir`, deepest first (the order to unmount them in). */
export async function mountsUnder(dir: string): Promise<string[]> {
  const text = await readFile('/proc/self/mountinfo', 'utf8');
  const points = text
    .split('\n')
    .map((line) => line.split(' ')[4])
    .filter((p): p is string => p !== undefined)
    .map((p) => p.replace(/\\([0-7]{3})/g, (_, oct: string) => String.fromCharCode(parseInt(oct, 8))))
    .filter((p) => p === dir || p.startsWith(dir + '/'));
  return points.sort((a, b) => b.length - a.length);
}

/** Unmount everything at or below `dir` (wherever a test's renames moved it). */
export async function unmountAll(dir: string): Promise<void> {
  for (const p of await mountsUnder(dir)) await tryRun('umount', [p]);
}

/** chattr +i / -i; the error text when unsupported. */
export const setImmutable = (p: string, on: boolean): Promise<string | null> => tryRun('chattr', [on ? '+i' : '-i', p]);
