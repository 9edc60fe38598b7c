/**
 * Directory locks: the agent's exclusive lock while it renames a cache, and
 * `exec`'s shared lock while a command uses one. Both are flock(2) locks on
 * the cache directory, taken through src/edges/flock.ts.
 */
import { closeSync, constants, fstatSync, openSync } from 'node:fs';
import { UnsafePathError, errnoCode } from '../../errors.js';
import { tryFlock, tryFlockMany, FlockUnavailableError } from '../flock.js';
import type { Logger } from '../../log.js';
import { sleep } from '../clock.js';
import { SYNC_CALLS_PER_TURN, yieldToEventLoop } from './concurrency.js';
import { inodeKey } from './inode-key.js';

export interface DirLock {
  fd: number;
  /** `${st_dev}:${st_ino}` of the directory locked, as inodeKey() forms it. */
  key: string;
  release(): Promise<void>;
}

// O_NOFOLLOW: a cache path that became a symlink is refused, never locked through.
const DIR_FLAGS = constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW;

/** Loggers already told that exec goes on without its lock: once per run, not once per cache. */
const warnedNoFlock = new WeakSet<Logger>();

/**
 * Without a lock tool, `exec` still runs its command (refusing would stop the
 * builds) but cannot declare its use with a lock; the agent, for its part,
 * refuses to rename anything (see tryLockManyForRename). Logged once.
 */
function noFlock(logger: Logger | undefined, err: FlockUnavailableError): void {
  if (!logger || warnedNoFlock.has(logger)) return;
  warnedNoFlock.add(logger);
  logger.warn(`${err.message}; caches are used without a shared lock, and the agent will not purge them until a lock tool is installed`);
}

/**
 * Open a cache directory to lock it, and read its identity. Synchronous calls:
 * a batch of a thousand caches opened and stat'ed through the thread pool
 * waits a round trip for each, several times what the calls themselves cost.
 */
function openDirSync(cachePath: string): { fd: number; key: string } {
  let fd: number;
  try {
    fd = openSync(cachePath, DIR_FLAGS);
  } catch (err) {
    const code = errnoCode(err);
    if (code === 'ELOOP' || code === 'ENOTDIR') {
      throw new UnsafePathError(`${cachePath} is not a directory (or is a symbolic link); refusing to lock it`, cachePath);
    }
    throw err;
  }
  try {
    return { fd, key: inodeKey(fstatSync(fd, { bigint: true })) };
  } catch (err) {
    closeSync(fd);
    throw err;
  }
}

/**
 * A lock on a descriptor we opened ourselves; closing it drops the lock. The
 * close is synchronous: closing a directory flushes nothing, and a thousand
 * closes through the thread pool cost more than the renames they follow.
 */
function fdLock(fd: number, key: string): DirLock {
  let open = true;
  const release = (): Promise<void> => {
    if (open) {
      open = false;
      closeSync(fd);
    }
    return Promise.resolve();
  };
  return { fd, key, release };
}

/**
 * The agent's lock while it renames a cache: exclusive and non-blocking, so
 * any user holding a (shared) flock on the directory makes it 'busy'. Rejects
 * with the errno error (ENOENT when the cache is gone), UnsafePathError, or
 * FlockUnavailableError. The caller should check that the path still has
 * `key` before renaming.
 */
export async function tryLockForRename(cachePath: string, opts: { logger?: Logger } = {}): Promise<DirLock | 'busy'> {
  const [result] = await tryLockManyForRename([cachePath], opts);
  if (result instanceof Error) throw result;
  if (result === undefined) throw new Error('internal error: locking one cache gave no result');
  return result;
}

/**
 * tryLockForRename for many caches at once, with one locking process for all
 * of them (see tryFlockMany). Each result is a lock, 'busy', or the error for
 * that cache (ENOENT when it is gone, UnsafePathError). Without a lock tool
 * every cache gets a FlockUnavailableError: renaming without the lock could
 * pull a cache from under a user who locks it just after the in-use check,
 * so those purges stay pending until util-linux or perl is installed.
 */
export async function tryLockManyForRename(cachePaths: readonly string[], opts: { logger?: Logger } = {}): Promise<(DirLock | 'busy' | Error)[]> {
  const opened: ({ fd: number; key: string } | Error)[] = [];
  for (const [i, cachePath] of cachePaths.entries()) {
    if (i > 0 && i % SYNC_CALLS_PER_TURN === 0) await yieldToEventLoop();
    try {
      opened.push(openDirSync(cachePath));
    } catch (err) {
      opened.push(err instanceof Error ? err : new Error(String(err)));
    }
  }
  const held = opened.filter((o): o is { fd: number; key: string } => !(o instanceof Error));
  let results: ('locked' | 'busy')[];
  try {
    results = await tryFlockMany(
      held.map((h) => h.fd),
      'exclusive',
    );
  } catch (err) {
    for (const h of held) closeSync(h.fd);
    if (!(err instanceof FlockUnavailableError)) throw err;
    opts.logger?.error(`${err.message}; purges are refused (kept pending) until then`);
    return opened.map((o) => (o instanceof Error ? o : err));
  }
  let next = 0;
  return opened.map((o) => {
    if (o instanceof Error) return o;
    if (results[next++] === 'busy') {
      closeSync(o.fd);
      return 'busy' as const;
    }
    return fdLock(o.fd, o.key);
  });
}

/**
 * A user's shared lock on a cache directory, for `exec`. Waits while someone
 * holds it exclusively (the agent renaming it): a retry loop with backoff, so
 * that `signal` can cancel the wait — a blocking flock(1) could only be killed.
 * After it resolves the caller must check that the path still has `key`: the
 * directory may have been renamed away between our open and our lock.
 */
export async function acquireSharedLock(cachePath: string, opts: { logger?: Logger; signal?: AbortSignal } = {}): Promise<DirLock> {
  const { fd, key } = openDirSync(cachePath);
  const lock = fdLock(fd, key);
  try {
    for (let delay = 10; ; delay = Math.min(delay * 2, 500)) {
      opts.signal?.throwIfAborted();
      if ((await tryFlock(fd, 'shared')) === 'locked') break;
      await sleep(delay, opts.signal);
    }
  } catch (err) {
    if (!(err instanceof FlockUnavailableError)) {
      await lock.release();
      throw err;
    }
    noFlock(opts.logger, err);
  }
  return lock;
}
