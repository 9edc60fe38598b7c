/**
 * Carry out purge decisions: the only place a cache directory is removed
 * (purges, local purges through the API, and evictions all come here).
 *
 * 1. Take an exclusive, non-blocking flock on each cache directory. Users that
 *    declare use with a (shared) flock — `exec`, or anything following the
 *    systemd-tmpfiles convention — cannot take theirs while we hold ours, and
 *    if one already holds it we back off: this closes the race between the
 *    in-use check and the rename. All locks of a batch are taken by one helper
 *    process (src/edges/flock.ts), so a thousand purges don't cost a thousand spawns.
 * 2. Rename each directory into the trash on the same filesystem. The rename
 *    is atomic: the cache path is gone at once, whatever the cache's size, and
 *    no task ever sees a half-deleted cache. It goes from the root (or a single
 *    cache's parent) held open to the trash held open, never through paths a
 *    task could swap; moveToTrash re-checks, just before renaming, that the
 *    entry is still the directory the decision was about.
 * 3. Release the locks. Deleting the trash happens later, in the background.
 */
import type { Logger } from '../log.js';
import type { Candidate, Outcome } from '../core/judge.js';
import { moveToTrash, TrashHandles } from '../edges/caches/trash.js';
import { tryLockManyForRename, type DirLock } from '../edges/caches/inuse.js';
import { SYNC_CALLS_PER_TURN, yieldToEventLoop } from '../edges/caches/concurrency.js';
import { FlockUnavailableError, UnsafePathError, errnoCode, errorMessage, CacheVanishedError } from '../errors.js';
import { faultPoint } from '../fault.js';

export async function applyPurges(candidates: readonly Candidate[], deps: { logger: Logger }): Promise<Outcome[]> {
  if (candidates.length === 0) return [];
  const locks = await tryLockManyForRename(
    candidates.map((c) => c.cache.path),
    { logger: deps.logger },
  );
  // Each trash (and the directory it is in) is held open for the batch: every rename goes through those descriptors.
  const trashes = new TrashHandles();
  const outcomes: Outcome[] = [];
  try {
    // One after another: each purge is a few quick calls on names in directories held open (moveToTrash).
    for (const [i, candidate] of candidates.entries()) {
      if (i > 0 && i % SYNC_CALLS_PER_TURN === 0) await yieldToEventLoop();
      // The locks come back one per path, in order; a missing one fails this purge rather than renaming unlocked.
      outcomes.push(await renameLocked(candidate, locks[i] ?? new Error('the lock helper gave no answer for it'), trashes, deps));
      await faultPoint('after-rename');
    }
    return outcomes;
  } finally {
    // Locks of purges never reached (a thrown error) are dropped with their descriptors.
    for (const lock of locks.slice(outcomes.length)) if (typeof lock === 'object' && !(lock instanceof Error)) await lock.release();
    await trashes.close();
  }
}

async function renameLocked(candidate: Candidate, lock: DirLock | 'busy' | Error, trashes: TrashHandles, deps: { logger: Logger }): Promise<Outcome> {
  const { cache } = candidate;
  if (lock === 'busy') {
    const holder = { kind: 'lock' as const, detail: `a lock on ${cache.path} was taken after the in-use check` };
    return { kind: 'deferred', candidate, holders: [holder] };
  }
  if (lock instanceof Error) {
    // Removed by someone else since we listed it, or no longer a directory: nothing of ours to purge.
    if (errnoCode(lock) === 'ENOENT' || lock instanceof UnsafePathError) return { kind: 'gone', candidate };
    if (lock instanceof FlockUnavailableError) return { kind: 'failed', candidate, error: `cannot take the rename lock on ${cache.path}: ${lock.message}` };
    return { kind: 'failed', candidate, error: `cannot open ${cache.path} to lock it: ${errorMessage(lock)}` };
  }
  try {
    await moveToTrash(cache, cache.key, trashes);
    return { kind: 'purged', candidate };
  } catch (err) {
    if (err instanceof CacheVanishedError) return { kind: 'gone', candidate };
    if (err instanceof UnsafePathError) {
      // The path no longer holds the directory we decided about (replaced, or
      // turned into a symlink, or a mount point). Leave it: a later cycle judges it.
      deps.logger.warn({ cache: cache.name, path: cache.path, reason: err.message }, 'purge skipped: the cache changed under us');
      return { kind: 'gone', candidate };
    }
    return { kind: 'failed', candidate, error: errorMessage(err) };
  } finally {
    await lock.release();
  }
}
