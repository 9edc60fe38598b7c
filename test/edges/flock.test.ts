import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { closeSync, mkdirSync, openSync, symlinkSync } from 'node:fs';
import path from 'node:path';
import { tryFlock, tryFlockMany } from '../../src/edges/flock.js';
import { makeTempDir, type TempDir } from '../helpers/tmp.js';
import { eventually } from '../helpers/wait.js';

let tmp: TempDir;
const children: ChildProcess[] = [];
const fds: number[] = [];
beforeEach(async () => {
  tmp = await makeTempDir('pca-flock-');
});
afterEach(async () => {
  for (const child of children.splice(0)) child.kill('SIGKILL');
  for (const fd of fds.splice(0)) closeSync(fd);
  await tmp.cleanup();
});

const dirs = (n: number) =>
  Array.from({ length: n }, (_, i) => {
    const dir = path.join(tmp.path, `d${i}`);
    mkdirSync(dir);
    return dir;
  });
/** Whether another process could take an exclusive lock on `dir` right now. */
const othersCanLock = (dir: string) => spawnSync('flock', ['-n', '-E', '75', dir, 'true']).status === 0;

async function holdShared(dir: string): Promise<void> {
  const child = spawn('flock', ['-s', dir, 'sleep', '600'], { stdio: 'ignore' });
  children.push(child);
  // Wait until the holder's lock is visible to others.
  await eventually(() => !othersCanLock(dir), `the holder's lock on ${dir}`);
}

describe('flock from Node', () => {
  it('holds a lock for as long as our descriptor is open, and drops it on close', async () => {
    const [dir] = dirs(1);
    const fd = openSync(dir!, 'r');
    expect(await tryFlock(fd, 'exclusive')).toBe('locked');
    expect(othersCanLock(dir!)).toBe(false);
    closeSync(fd);
    expect(othersCanLock(dir!)).toBe(true);
  });

  it('locks many descriptors in one batch and reports the busy ones', async () => {
    const all = dirs(40);
    await holdShared(all[7]!);
    await holdShared(all[31]!);
    for (const dir of all) fds.push(openSync(dir, 'r'));
    const results = await tryFlockMany(fds, 'exclusive');
    expect(results.map((r, i) => (r === 'busy' ? i : -1)).filter((i) => i >= 0)).toEqual([7, 31]);
    for (const [i, dir] of all.entries()) if (i !== 7 && i !== 31) expect(othersCanLock(dir)).toBe(false);
    for (const fd of fds.splice(0)) closeSync(fd);
    expect(othersCanLock(all[0]!)).toBe(true);
  });

  it('shared locks coexist with other shared locks', async () => {
    const [dir] = dirs(1);
    await holdShared(dir!);
    const fd = openSync(dir!, 'r');
    fds.push(fd);
    expect(await tryFlockMany([fd], 'shared')).toEqual(['locked']);
    const second = openSync(dir!, 'r');
    fds.push(second);
    expect(await tryFlock(second, 'exclusive')).toBe('busy');
  });

  it('without perl, a batch falls back to flock(1) per descriptor, with the same answers', async () => {
    const all = dirs(6);
    await holdShared(all[2]!);
    for (const dir of all) fds.push(openSync(dir, 'r'));
    const flockPath = spawnSync('sh', ['-c', 'command -v flock'], { encoding: 'utf8' }).stdout.trim();
    const bin = path.join(tmp.path, 'bin');
    mkdirSync(bin);
    symlinkSync(flockPath, path.join(bin, 'flock'));
    const saved = process.env.PATH;
    process.env.PATH = bin; // flock(1) only: perl is not found
    try {
      expect(await tryFlockMany(fds, 'exclusive')).toEqual(['locked', 'locked', 'busy', 'locked', 'locked', 'locked']);
      // Once perl is known to be missing, later batches go straight to flock(1).
      const again = openSync(all[0]!, 'r');
      fds.push(again);
      expect(await tryFlockMany([again, fds[1]!], 'exclusive')).toEqual(['busy', 'locked']);
    } finally {
      process.env.PATH = saved;
    }
    for (const [i, dir] of all.entries()) if (i !== 2) expect(othersCanLock(dir)).toBe(false);
  });
});
