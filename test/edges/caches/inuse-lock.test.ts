/**
 * The directory locks: the agent's exclusive rename lock and exec's shared
 * lock, against real flock(1) holders in their own process groups.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { lstat, mkdir, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import pino from 'pino';
import { acquireSharedLock, inodeKey, tryLockForRename, tryLockManyForRename } from '../../../src/edges/caches/inuse.js';
import { FlockUnavailableError, UnsafePathError } from '../../../src/errors.js';
import { makeTempDir, type TempDir } from '../../helpers/tmp.js';

let tmp: TempDir;
let cache: string;
let children: ChildProcess[] = [];

beforeEach(async () => {
  tmp = await makeTempDir('pca-dirlock-');
  cache = path.join(tmp.path, 'cache');
  await mkdir(cache);
});

afterEach(async () => {
  await Promise.all(children.map(kill));
  children = [];
  await tmp.cleanup();
});

/**
 * A user holding a flock on `dir` until killed; resolves once the lock is held.
 * One process holds the lock (flock(1) locks the shell's descriptor and exits),
 * so when that child has exited the lock is gone: no straggler keeps it.
 */
function holdLock(mode: '-s' | '-x', dir: string): Promise<ChildProcess> {
  const script = `exec 3<"$1"; flock ${mode} 3; echo ready; exec sleep 600`;
  const child = spawn('sh', ['-c', script, 'sh', dir], { detached: true, stdio: ['ignore', 'pipe', 'inherit'] });
  children.push(child);
  return new Promise((resolve, reject) => {
    child.once('exit', (code) => {
      reject(new Error(`the lock holder exited early (${code})`));
    });
    child.stdout.setEncoding('utf8').on('data', (s: string) => {
      if (s.includes('ready')) resolve(child);
    });
  });
}

async function kill(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  process.kill(-child.pid!, 'SIGKILL');
  await exited;
}

/** Whether another process could take `mode` on the directory right now. */
function othersCanLock(mode: '-s' | '-x'): boolean {
  return spawnSync('flock', ['-n', mode, cache, 'true']).status === 0;
}

describe('tryLockForRename', () => {
  it('locks a free directory exclusively, names its inode, and releases it', async () => {
    const lock = await tryLockForRename(cache);
    if (lock === 'busy') throw new Error('expected the lock');
    expect(lock.key).toBe(inodeKey(await lstat(cache, { bigint: true })));
    expect(othersCanLock('-s')).toBe(false);
    await lock.release();
    await lock.release(); // idempotent
    expect(othersCanLock('-x')).toBe(true);
  });

  it('is busy while a user holds flock -s, and succeeds after the user let go', async () => {
    const user = await holdLock('-s', cache);
    expect(await tryLockForRename(cache)).toBe('busy');
    await kill(user);
    const lock = await tryLockForRename(cache);
    expect(lock).not.toBe('busy');
    if (lock !== 'busy') await lock.release();
  });

  it('refuses a symlink or a file, and reports a missing directory as ENOENT', async () => {
    await symlink(cache, path.join(tmp.path, 'link'));
    await writeFile(path.join(tmp.path, 'file'), '');
    await expect(tryLockForRename(path.join(tmp.path, 'link'))).rejects.toBeInstanceOf(UnsafePathError);
    await expect(tryLockForRename(path.join(tmp.path, 'file'))).rejects.toBeInstanceOf(UnsafePathError);
    await expect(tryLockForRename(path.join(tmp.path, 'missing'))).rejects.toMatchObject({ code: 'ENOENT' });
  });
});

describe('acquireSharedLock', () => {
  it('shares with other users and keeps the rename lock out', async () => {
    await holdLock('-s', cache);
    const lock = await acquireSharedLock(cache);
    expect(lock.key).toBe(inodeKey(await lstat(cache, { bigint: true })));
    expect(lock.fd).toBeGreaterThan(2);
    expect(othersCanLock('-s')).toBe(true);
    await kill(children[0]!);
    expect(await tryLockForRename(cache)).toBe('busy');
    await lock.release();
    const rename = await tryLockForRename(cache);
    expect(rename).not.toBe('busy');
    if (rename !== 'busy') await rename.release();
  });

  it('waits while the directory is held exclusively, then gets it', async () => {
    const holder = await holdLock('-x', cache);
    let acquired = false;
    const pending = acquireSharedLock(cache).then((lock) => {
      acquired = true;
      return lock;
    });
    await new Promise((resolve) => setTimeout(resolve, 100)); // give a wrong implementation the chance to resolve
    expect(acquired).toBe(false);
    await kill(holder);
    const lock = await pending;
    expect(othersCanLock('-x')).toBe(false);
    await lock.release();
  });

  it('gives up when its signal aborts', async () => {
    await holdLock('-x', cache);
    const controller = new AbortController();
    const pending = acquireSharedLock(cache, { signal: controller.signal });
    controller.abort(new Error('wait timeout'));
    await expect(pending).rejects.toThrow('wait timeout');
  });
});

describe('without flock(1) or perl', () => {
  it("refuses the rename lock with a stable code; exec's shared lock warns once and goes on", async () => {
    const lines: string[] = [];
    const logger = pino({ level: 'warn' }, { write: (s: string) => void lines.push(s) });
    const savedPath = process.env.PATH;
    process.env.PATH = tmp.path; // an empty directory: neither flock(1) nor perl is found
    try {
      await expect(tryLockForRename(cache, { logger })).rejects.toMatchObject({
        code: 'PCA_FLOCK_UNAVAILABLE',
        message: expect.stringContaining('install util-linux (flock) or perl'),
      });
      const [many] = await tryLockManyForRename([cache], { logger });
      expect(many).toBeInstanceOf(FlockUnavailableError);
      const second = await acquireSharedLock(cache, { logger });
      const third = await acquireSharedLock(cache, { logger });
      await second.release();
      await third.release();
    } finally {
      process.env.PATH = savedPath;
    }
    const warnings = lines.map((l) => JSON.parse(l) as { level: number; msg: string }).filter((l) => l.level === 40);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]!.msg).toContain('neither flock(1) nor perl was found');
  });
});
