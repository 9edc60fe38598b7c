import { afterEach, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { link, lstat, mkdir, readdir, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { deleteContents, deleteTree, TokenBucket, type Clock } from '../../../src/edges/caches/delete.js';
import { makeTempDir, type TempDir } from '../../helpers/tmp.js';
import { makeSentinel } from './support.js';
import { bindMount, chattr, mountTmpfs, unmountAllUnder } from '../../helpers/mounts.js';
import { hashTree } from '../../helpers/fixture.js';

let tmp: TempDir;
const undo: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const fn of undo.splice(0).reverse()) await fn();
  await unmountAllUnder(tmp.path);
  await tmp.cleanup();
});

async function setup(): Promise<{ top: string; outside: string }> {
  tmp = await makeTempDir('pca-delete-');
  const top = path.join(tmp.path, 'top');
  const outside = path.join(tmp.path, 'outside');
  await mkdir(top);
  await makeSentinel(outside);
  return { top, outside };
}

/** Files and directories below `top`: a/b/c nested, plus `wide` directories of `perDir` files each. */
async function fill(top: string, opts: { wide?: number; perDir?: number } = {}): Promise<{ files: number; dirs: number }> {
  let files = 0;
  let dirs = 0;
  await mkdir(path.join(top, 'a', 'b', 'c'), { recursive: true });
  dirs += 3;
  for (const p of ['f', 'a/f', 'a/b/f', 'a/b/c/f']) {
    await writeFile(path.join(top, p), `contents of ${p}`);
    files++;
  }
  for (let d = 0; d < (opts.wide ?? 0); d++) {
    await mkdir(path.join(top, `w${d}`));
    dirs++;
    for (let f = 0; f < (opts.perDir ?? 0); f++) await writeFile(path.join(top, `w${d}`, `f${f}`), 'x');
    files += opts.perDir ?? 0;
  }
  return { files, dirs };
}

const openFds = (): number => readdirSync('/proc/self/fd').length;

describe('deleteTree', () => {
  it('removes the whole tree and reports what it removed', async () => {
    const { top } = await setup();
    const made = await fill(top, { wide: 20, perDir: 30 });
    const fdsBefore = openFds();
    const report = await deleteTree(top);
    expect(existsSync(top)).toBe(false);
    expect(report).toMatchObject({ files: made.files, dirs: made.dirs + 1, failures: [], skippedMounts: [] });
    expect(report.bytes).toBeGreaterThan(0);
    expect(openFds()).toBe(fdsBefore);
  });

  it('unlinks symlinks as links and never follows them; hard links leave the outside file alone', async () => {
    const { top, outside } = await setup();
    await fill(top);
    await symlink(outside, path.join(top, 'to-outside-dir'));
    await symlink(path.join(outside, 'precious.txt'), path.join(top, 'a', 'to-outside-file'));
    await symlink('/', path.join(top, 'a', 'b', 'to-root'));
    await symlink('../../..', path.join(top, 'a', 'b', 'c', 'up-and-out'));
    await symlink(path.join(tmp.path, 'nowhere'), path.join(top, 'dangling'));
    await link(path.join(outside, 'precious.txt'), path.join(top, 'hard-link'));
    execFileSync('mkfifo', [path.join(top, 'a', 'fifo')]);
    const before = await hashTree(outside);
    const report = await deleteTree(top);
    expect(report.failures).toEqual([]);
    expect(existsSync(top)).toBe(false);
    expect(await hashTree(outside)).toBe(before);
    expect((await lstat(path.join(outside, 'precious.txt'))).nlink).toBe(1);
    expect(readdirSync('/').length).toBeGreaterThan(0);
  });

  it('removes a symlink at the top as a link, and reports nothing for a missing top', async () => {
    const { top, outside } = await setup();
    const before = await hashTree(outside);
    const linkPath = path.join(tmp.path, 'link');
    await symlink(outside, linkPath);
    expect(await deleteTree(linkPath)).toMatchObject({ files: 1, dirs: 0, failures: [] });
    expect(existsSync(linkPath)).toBe(false);
    expect(await hashTree(outside)).toBe(before);
    expect(await deleteTree(path.join(top, 'missing'))).toEqual({ files: 0, dirs: 0, bytes: 0, failures: [], skippedMounts: [] });
  });

  it('deletes a tree 5,000 directories deep (paths of 10 kB, past PATH_MAX), without recursion', async () => {
    // Nothing in the walk grows with depth but the chain of directories itself; 5,000 keeps the test quick.
    const { top } = await setup();
    const depth = 5_000;
    const cwd = process.cwd();
    try {
      process.chdir(top);
      for (let i = 0; i < depth; i++) {
        mkdirSync('d');
        process.chdir('d');
        if (i % 500 === 0) writeFileSync('f', 'x');
      }
    } finally {
      process.chdir(cwd);
    }
    const report = await deleteTree(top);
    expect(report.failures).toEqual([]);
    expect(report).toMatchObject({ files: 10, dirs: depth + 1 });
    expect(existsSync(top)).toBe(false);
  });

  it('counts bytes only when asked, and not for files with other hard links', async () => {
    const { top, outside } = await setup();
    await writeFile(path.join(top, 'big'), Buffer.alloc(64 * 1024, 1));
    await link(path.join(outside, 'sub', 'deeper', 'data.bin'), path.join(top, 'shared'));
    const counted = await deleteTree(top);
    expect(counted.bytes).toBeGreaterThanOrEqual(64 * 1024);
    expect(counted.bytes).toBeLessThan(64 * 1024 + 16 * 1024);
    await mkdir(top);
    await writeFile(path.join(top, 'big'), Buffer.alloc(64 * 1024, 1));
    expect((await deleteTree(top, { countBytes: false })).bytes).toBe(0);
  });
});

describe('deleteContents', () => {
  it('empties a directory and keeps it', async () => {
    const { top } = await setup();
    const made = await fill(top, { wide: 3, perDir: 3 });
    const report = await deleteContents(top);
    expect(report).toMatchObject({ files: made.files, dirs: made.dirs, failures: [] });
    expect(await readdir(top)).toEqual([]);
  });

  it('leaves a symlink in place of the directory alone and says so', async () => {
    const { outside } = await setup();
    const linkPath = path.join(tmp.path, 'link');
    await symlink(outside, linkPath);
    const before = await hashTree(outside);
    const report = await deleteContents(linkPath);
    expect(report.failures).toEqual([
      { path: linkPath, error: expect.stringMatching(/^(ENOTDIR|ELOOP): is not a directory \(a symlink is never followed\); left alone$/) },
    ]);
    expect(await hashTree(outside)).toBe(before);
    expect((await lstat(linkPath)).isSymbolicLink()).toBe(true);
  });
});

describe('failures', () => {
  it('records a file it cannot remove, with its path and reason, and goes on with the rest', async (ctx) => {
    const { top } = await setup();
    await fill(top, { wide: 5, perDir: 5 });
    const stuck = path.join(top, 'w2', 'f3');
    const error = await chattr('+i', stuck);
    if (error) return ctx.skip(`cannot make a file immutable here: ${error}`);
    undo.push(() => chattr('-i', stuck));
    const report = await deleteTree(top);
    expect(report.failures).toEqual([{ path: stuck, error: 'EPERM: operation not permitted (unlink)' }]);
    // Everything else went; only the file and the directories above it stay.
    expect(await readdir(top)).toEqual(['w2']);
    expect(await readdir(path.join(top, 'w2'))).toEqual(['f3']);
  });
});

describe('mount points', () => {
  it('leaves a tmpfs, a same-filesystem bind mount and a bind-mounted file alone, and deletes around them', async (ctx) => {
    const { top, outside } = await setup();
    await fill(top);
    const tmpfs = path.join(top, 'a', 'tmpfs');
    const bound = path.join(top, 'a', 'b', 'bound');
    const boundFile = path.join(top, 'bound-file');
    await mkdir(tmpfs);
    await mkdir(bound);
    await writeFile(boundFile, '');
    const error = (await mountTmpfs(tmpfs)) ?? (await bindMount(outside, bound)) ?? (await bindMount(path.join(outside, 'precious.txt'), boundFile));
    if (error) return ctx.skip(`mounts are not permitted here: ${error}`);
    await writeFile(path.join(tmpfs, 'on-tmpfs'), 'keep');
    const before = { outside: await hashTree(outside), tmpfs: await hashTree(tmpfs) };
    const report = await deleteTree(top);
    expect(report.failures).toEqual([]);
    expect(report.skippedMounts.sort()).toEqual([boundFile, bound, tmpfs].sort());
    expect(await hashTree(outside)).toBe(before.outside);
    expect(await hashTree(tmpfs)).toBe(before.tmpfs);
    // What is not below a mount is gone; the directories holding mounts stay.
    expect((await readdir(top)).sort()).toEqual(['a', 'bound-file']);
    expect((await readdir(path.join(top, 'a'))).sort()).toEqual(['b', 'tmpfs']);
    expect(await readdir(path.join(top, 'a', 'b'))).toEqual(['bound']);
  });

  it('does not touch a top that is itself a mount point', async (ctx) => {
    const { top } = await setup();
    const error = await mountTmpfs(top);
    if (error) return ctx.skip(`mounts are not permitted here: ${error}`);
    await writeFile(path.join(top, 'f'), 'keep');
    expect(await deleteTree(top)).toMatchObject({ files: 0, dirs: 0, skippedMounts: [top] });
    expect(await deleteContents(top)).toMatchObject({ files: 0, dirs: 0, skippedMounts: [top] });
    expect(await readdir(top)).toEqual(['f']);
  });
});

/** A clock that only moves when someone sleeps: rate tests count tokens, never wall time. */
function virtualClock(onSleep?: (now: number) => void): Clock & { elapsed(): number } {
  let now = 0;
  return {
    now: () => now,
    elapsed: () => now,
    sleep: (ms) => {
      now += ms;
      onSleep?.(now);
      return Promise.resolve();
    },
  };
}

describe('rate limit and abort', () => {
  it('never grants more than capacity + rate × time tokens', async () => {
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 1, max: 5000 }), fc.array(fc.integer({ min: 1, max: 600 }), { minLength: 1, maxLength: 60 }), async (rate, wants) => {
        const clock = virtualClock();
        const bucket = new TokenBucket(rate, clock);
        let granted = 0;
        for (const want of wants) {
          const n = Math.min(want, bucket.capacity);
          expect(await bucket.take(n)).toBe(true);
          granted += n;
          expect(granted).toBeLessThanOrEqual(bucket.capacity + (rate * clock.elapsed()) / 1000 + 1e-3);
        }
      }),
      { numRuns: 300 },
    );
  });

  it('deleteTree spends one token per file and directory, so its virtual time is at least (ops − burst) / rate', async () => {
    const { top } = await setup();
    const made = await fill(top, { wide: 6, perDir: 15 });
    const clock = virtualClock();
    const rate = 50;
    const report = await deleteTree(top, { rateLimit: rate, clock });
    const ops = report.files + report.dirs;
    expect(ops).toBe(made.files + made.dirs + 1);
    const burst = Math.max(1, Math.floor(rate / 10));
    expect(clock.elapsed()).toBeGreaterThanOrEqual(((ops - burst) / rate) * 1000 - 1e-6);
  });

  it('stops when aborted, keeps what it did not reach, and closes what it opened', async () => {
    const { top } = await setup();
    await fill(top, { wide: 10, perDir: 20 });
    const fdsBefore = openFds();
    const pre = new AbortController();
    pre.abort();
    expect(await deleteTree(top, { signal: pre.signal })).toMatchObject({ files: 0, dirs: 0 });
    const controller = new AbortController();
    const clock = virtualClock((now) => {
      if (now >= 500) controller.abort();
    });
    const report = await deleteTree(top, { rateLimit: 100, clock, signal: controller.signal });
    expect(report.failures).toEqual([]);
    expect(report.files).toBeGreaterThan(0);
    expect(report.files).toBeLessThan(204);
    expect(existsSync(top)).toBe(true);
    expect(openFds()).toBe(fdsBefore);
    // The next run finishes the job.
    await deleteTree(top);
    expect(existsSync(top)).toBe(false);
  });
});
