/**
 * The in-use probe against real processes: flock(1), python's fcntl, shells
 * holding files open, processes sitting in a cache. Every child runs in its
 * own process group and the whole group is killed after each test.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { spawn, spawnSync, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { copyFile, mkdir, open, symlink, unlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { createUsageProbe, type Holder, type UsageSources } from '../../../src/edges/caches/inuse.js';
import { tryFlock } from '../../../src/edges/flock.js';
import { makeTempDir, type TempDir } from '../../helpers/tmp.js';

const BOTH: UsageSources = { locks: true, processes: true };
const LOCKS: UsageSources = { locks: true, processes: false };
const PROCESSES: UsageSources = { locks: false, processes: true };

const hasPython = spawnSync('python3', ['-c', 'import fcntl, mmap'], { stdio: 'ignore' }).status === 0;
const isRoot = process.getuid?.() === 0;
const canUnshare = spawnSync('unshare', ['-m', 'true'], { stdio: 'ignore' }).status === 0;

let tmp: TempDir;
let children: ChildProcess[] = [];
/** What each child printed on stdout so far. */
const printed = new WeakMap<ChildProcess, string>();

beforeEach(async () => {
  tmp = await makeTempDir('pca-inuse-');
});

afterEach(async () => {
  await Promise.all(children.map(killGroup));
  children = [];
  await tmp.cleanup();
});

/** Start a child in its own process group; resolves once it printed "ready" (its lock or file is in place). */
function start(cmd: string, args: string[], opts: SpawnOptions & { ready?: boolean } = {}): Promise<ChildProcess> {
  const child = spawn(cmd, args, { detached: true, stdio: ['ignore', 'pipe', 'inherit'], ...opts });
  children.push(child);
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', (code, signal) => {
      reject(new Error(`${cmd} exited early (${code ?? signal})`));
    });
    if (opts.ready === false)
      child.once('spawn', () => {
        resolve(child);
      });
    else {
      child.stdout!.setEncoding('utf8').on('data', (s: string) => {
        printed.set(child, (printed.get(child) ?? '') + s);
        if (s.includes('ready')) resolve(child);
      });
    }
  });
}

/** A shell snippet that ends with the process holding everything and sleeping. */
function sh(script: string, ...args: string[]): Promise<ChildProcess> {
  return start('sh', ['-c', `${script}; echo ready; exec sleep 600`, 'sh', ...args]);
}

function python(script: string, ...args: string[]): Promise<ChildProcess> {
  return start('python3', ['-c', `import fcntl, mmap, os, struct, sys, time\n${script}\nprint('ready', flush=True)\ntime.sleep(600)`, ...args]);
}

async function killGroup(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  try {
    process.kill(-child.pid!, 'SIGKILL');
  } catch {
    return;
  }
  await exited;
}

async function cacheDir(...parts: string[]): Promise<string> {
  const dir = path.join(tmp.path, ...parts);
  await mkdir(dir, { recursive: true });
  return dir;
}

async function fileIn(dir: string, ...parts: string[]): Promise<string> {
  const file = path.join(dir, ...parts);
  await mkdir(path.dirname(file), { recursive: true });
  await writeFile(file, 'data');
  return file;
}

async function holders(cache: string, sources: UsageSources = BOTH, selfPid?: number): Promise<Holder[]> {
  const probe = createUsageProbe({ sources, ...(selfPid === undefined ? {} : { selfPid }) });
  const map = await probe.holdersOf([cache]);
  return map.get(cache)!;
}

describe('locks', () => {
  it('flock -s on the cache directory', async () => {
    const cache = await cacheDir('root', 'c');
    await start('flock', ['-s', cache, 'sh', '-c', 'echo ready; exec sleep 600']);
    const found = await holders(cache, LOCKS);
    expect(found.length).toBeGreaterThan(0);
    expect(found.every((h) => h.kind === 'lock')).toBe(true);
    expect(found[0]!.detail).toContain(`holds a shared flock on ${cache}`);
    expect(found[0]!.pid).toBeGreaterThan(0);
    expect(found[0]!.command).toMatch(/flock|sleep/);
  });

  it('flock on a file deep inside the cache', async () => {
    const cache = await cacheDir('root', 'c');
    const file = await fileIn(cache, 'deep', 'a', 'b', 'file');
    const child = await start('flock', [file, 'sh', '-c', 'echo ready; exec sleep 600']);
    const found = await holders(cache, LOCKS);
    expect(found.map((h) => h.detail)).toContain(`pid ${child.pid} (flock ${file} sh -c echo ready; exec sleep 600) holds an exclusive flock on ${file}`);
  });

  it('a lock whose recorded pid has exited is found through the descriptor that holds it', async () => {
    // flock(1) locks the shell's fd 3 and exits; /proc/locks keeps its dead pid.
    const cache = await cacheDir('root', 'c');
    const file = await fileIn(cache, 'x', 'lockfile');
    const child = await sh('exec 3<"$1"; flock -x 3', file);
    const found = await holders(cache, LOCKS);
    expect(found).toEqual([expect.objectContaining({ kind: 'lock', pid: child.pid, command: expect.stringContaining('sleep 600') })]);
    expect(found[0]!.detail).toContain(`holds an exclusive flock on ${file}`);
  });

  it("this process's own locks count (the agent's lock is taken only after the check)", async () => {
    const cache = await cacheDir('root', 'c');
    const handle = await open(await fileIn(cache, 'mine'), 'r');
    try {
      expect(await tryFlock(handle.fd, 'shared')).toBe('locked');
      const found = await holders(cache, BOTH);
      expect(found).toEqual([expect.objectContaining({ kind: 'lock', pid: process.pid })]);
    } finally {
      await handle.close();
    }
  });

  it.skipIf(!hasPython)('a POSIX (fcntl) lock', async () => {
    const cache = await cacheDir('root', 'c');
    const file = await fileIn(cache, 'sub', 'posix');
    const child = await python("f = open(sys.argv[1], 'r+'); fcntl.lockf(f, fcntl.LOCK_EX)", file);
    const found = await holders(cache, LOCKS);
    expect(found).toEqual([expect.objectContaining({ kind: 'lock', pid: child.pid })]);
    expect(found[0]!.detail).toContain(`holds an exclusive POSIX lock on ${file}`);
  });

  it.skipIf(!hasPython)('an open-file-description (OFD) lock, which /proc/locks records under no pid', async () => {
    const cache = await cacheDir('root', 'c');
    const file = await fileIn(cache, 'ofd');
    const child = await python(
      "fd = os.open(sys.argv[1], os.O_RDONLY); fcntl.fcntl(fd, fcntl.F_OFD_SETLK, struct.pack('hhqqi', fcntl.F_RDLCK, 0, 0, 0, 0))",
      file,
    );
    const found = await holders(cache, LOCKS);
    expect(found).toEqual([expect.objectContaining({ kind: 'lock', pid: child.pid })]);
    expect(found[0]!.detail).toContain(`holds a shared OFD lock on ${file}`);
  });

  it.skipIf(!hasPython)('a lock no descriptor shows (kept alive by a mapping) is placed, with its holder, by the inode maps shows', async () => {
    const cache = await cacheDir('root', 'c');
    const file = await fileIn(cache, 'deep', 'er', 'mapped');
    const child = await python(
      // mmap keeps a private dup of the descriptor: close every descriptor, keep the mapping.
      "f = open(sys.argv[1], 'r+b'); fcntl.flock(f, fcntl.LOCK_EX); m = mmap.mmap(f.fileno(), 0); os.closerange(3, 4096)",
      file,
    );
    const found = await holders(cache, LOCKS);
    expect(found).toEqual([
      expect.objectContaining({ kind: 'lock', pid: child.pid, detail: expect.stringContaining(`holds an exclusive flock on ${file} through a mapping`) }),
    ]);
  });

  it('a lock on another file of the same filesystem does not count', async () => {
    const cache = await cacheDir('root', 'c');
    await sh('exec 3<"$1"; flock -x 3', await fileIn(tmp.path, 'elsewhere'));
    expect(await holders(cache, BOTH)).toEqual([]);
  });
});

describe('processes', () => {
  it('working directory inside the cache', async () => {
    const cache = await cacheDir('root', 'c');
    const child = await start('sleep', ['600'], { cwd: await cacheDir('root', 'c', 'src', 'deep'), ready: false });
    expect(await holders(cache, PROCESSES)).toEqual([
      { kind: 'process', pid: child.pid, command: 'sleep 600', detail: `pid ${child.pid} (sleep 600) has its working directory in ${cache}` },
    ]);
  });

  it('a file held open, and still after it was deleted', async () => {
    const cache = await cacheDir('root', 'c');
    const file = await fileIn(cache, 'a', 'b', 'open file');
    const child = await sh('exec 3<"$1"', file);
    const [holder] = await holders(cache, PROCESSES);
    expect(holder).toEqual(expect.objectContaining({ kind: 'process', pid: child.pid, detail: expect.stringMatching(/sleep 600\) has .* open$/) }));
    expect(holder!.detail).toContain(` has ${file} open`);
    await unlink(file);
    expect((await holders(cache, PROCESSES))[0]!.detail).toContain(` has ${file} (deleted) open`);
  });

  it('a mapped file: a binary run from inside the cache', async () => {
    const cache = await cacheDir('root', 'c');
    const binary = path.join(await cacheDir('root', 'c', 'bin'), 'sleep');
    await copyFile(spawnSync('sh', ['-c', 'command -v sleep'], { encoding: 'utf8' }).stdout.trim(), binary);
    const child = await start(binary, ['600'], { ready: false, cwd: tmp.path });
    expect(await holders(cache, PROCESSES)).toEqual([expect.objectContaining({ pid: child.pid, detail: expect.stringContaining(`has ${binary} mapped`) })]);
  });

  it.skipIf(!hasPython || !isRoot)('root directory inside the cache (chroot)', async () => {
    const cache = await cacheDir('root', 'c');
    const child = await python('os.chroot(sys.argv[1])', cache);
    const found = await holders(cache, PROCESSES);
    expect(found).toEqual([expect.objectContaining({ pid: child.pid, detail: expect.stringContaining(`has its root directory in ${cache}`) })]);
  });

  it('our own process is ignored for process checks', async () => {
    const cache = await cacheDir('root', 'c');
    const child = await start('sleep', ['600'], { cwd: cache, ready: false });
    expect(await holders(cache, PROCESSES, child.pid)).toEqual([]);
    expect(await holders(cache, PROCESSES)).toHaveLength(1);
  });
});

describe('which caches', () => {
  it('a sibling cache with the same name prefix is not reported; a free cache has no holders', async () => {
    const a = await cacheDir('root', 'a');
    const ab = await cacheDir('root', 'ab');
    const free = await cacheDir('root', 'free');
    const file = await fileIn(ab, 'x');
    await start('flock', [file, 'sh', '-c', 'echo ready; exec sleep 600'], { cwd: ab });
    const probe = createUsageProbe({ sources: BOTH });
    const map = await probe.holdersOf([a, ab, free]);
    expect(map.get(a)).toEqual([]);
    expect(map.get(free)).toEqual([]);
    // flock(1) and the shell it started share the locked open file: both hold it.
    expect(new Set(map.get(ab)!.map((h) => h.kind))).toEqual(new Set(['lock', 'process']));
  });

  it('a cache reached through a symlinked root, with odd characters in its name', async () => {
    const real = await cacheDir('real root');
    await symlink(real, path.join(tmp.path, 'link'));
    const cache = path.join(tmp.path, 'link', 'odd name\nwith newline (deleted)');
    await mkdir(cache);
    const child = await start('sleep', ['600'], { cwd: cache, ready: false });
    expect(await holders(cache, BOTH)).toEqual([expect.objectContaining({ pid: child.pid, kind: 'process' })]);
  });

  it('all sources off, or a cache that does not exist: nothing', async () => {
    const cache = await cacheDir('root', 'c');
    await start('flock', ['-s', cache, 'sh', '-c', 'echo ready; exec sleep 600'], { cwd: cache });
    expect(await holders(cache, { locks: false, processes: false })).toEqual([]);
    expect(await holders(path.join(tmp.path, 'missing'))).toEqual([]);
  });
});

describe.skipIf(!canUnshare)('processes in another mount namespace (a container)', () => {
  it("sees a cache bind-mounted elsewhere, through that namespace's mountinfo", async () => {
    const cache = await cacheDir('root', 'c');
    const file = await fileIn(cache, 'deep', 'file');
    const mnt = await cacheDir('container', 'builds', 'cache');
    // Two processes of the container: once a process is known to hold the cache the rest of it is not
    // read, so the working directory and the lock are shown by one process each.
    const child = await start('unshare', [
      '-m',
      'sh',
      '-c',
      'mount --bind "$1" "$2" || exit 1; (cd "$2/deep" && exec sleep 600) & echo "cwd $!"; cd / && exec 3<"$2/deep/file" && flock -s 3 && echo ready && exec sleep 600',
      'sh',
      cache,
      mnt,
    ]);
    const found = await holders(cache, BOTH);
    const cwdPid = /cwd (\d+)/.exec(printed.get(child) ?? '')?.[1];
    expect(found.map((h) => h.detail).sort()).toEqual(
      [
        `pid ${child.pid} (sleep 600) has ${mnt}/deep/file open`,
        `pid ${child.pid} (sleep 600) holds a shared flock on ${mnt}/deep/file`,
        `pid ${cwdPid} (sleep 600) has its working directory in ${cache}`,
      ].sort(),
    );
    expect(file).toBe(path.join(cache, 'deep', 'file'));
  });

  it('does not mistake another directory mounted over the same path for the cache', async () => {
    const cache = await cacheDir('root', 'c');
    const other = await cacheDir('other');
    await start('unshare', ['-m', 'sh', '-c', 'mount --bind "$1" "$2" && cd "$2" && echo ready && exec sleep 600', 'sh', other, cache]);
    expect(await holders(cache, BOTH)).toEqual([]);
  });
});

describe('scale', () => {
  it('one pass over ~300 processes finds exactly the holders', async () => {
    const cache = await cacheDir('root', 'c');
    const idle = await cacheDir('idle');
    const users = await Promise.all([1, 2, 3].map(() => start('sleep', ['600'], { cwd: cache, ready: false })));
    await Promise.all(Array.from({ length: 300 }, () => start('sleep', ['600'], { cwd: idle, ready: false })));
    const caches = [cache, ...(await Promise.all(['x', 'y', 'z'].map((n) => cacheDir('root', n))))];
    const probe = createUsageProbe({ sources: BOTH });
    const started = performance.now();
    const map = await probe.holdersOf(caches);
    const ms = performance.now() - started;
    if (process.env.PCA_MEASURE === '1') console.log(`holdersOf(${caches.length} caches) over ${countProcesses()} processes: ${ms.toFixed(1)} ms`);
    expect(
      map
        .get(cache)!
        .map((h) => h.pid)
        .sort(),
    ).toEqual(users.map((u) => u.pid).sort());
    expect(caches.slice(1).map((c) => map.get(c))).toEqual([[], [], []]);
  });
});

function countProcesses(): number {
  return spawnSync('sh', ['-c', 'ls /proc | grep -c "^[0-9]"'], { encoding: 'utf8' }).stdout.trim() as unknown as number;
}
