/**
 * Carry out one purge decision: the only place a cache directory is removed.
 *
 * 1. Take an exclusive, non-blocking flock on the cache directory. Users that
 *    declare use with a (shared) flock — `exec`, or anything following the
 *    systemd-tmpfiles convention — cannot take theirs while we hold ours, and
 *    if one already holds it we back off: this closes the race between the
 *    in-use check and the rename.
 * 2. Rename the directory into the trash on the same filesystem. The rename is
 *    atomic: the cache path is gone at once, whatever the cache's size, and no
 *    task ever sees a half-deleted cache. moveToTrash re-checks, just before
 *    renaming, that the path is still the directory the decision was about.
 * 3. Release the lock. Deleting the trash happens later, in the background.
 */
import type { Logger } from './log.js';
import type { Candidate, Outcome } from './plan.js';
import { moveToTrash, CacheVanishedError } from './caches/trash.js';
import { tryLockForRename } from './caches/inuse.js';
import { UnsafePathError, errnoCode, errorMessage } from './errors.js';

export async function applyPurge(candidate: Candidate, deps: { logger: Logger }): Promise<Outcome> {
  const { cache } = candidate;
  let lock: Awaited<ReturnType<typeof tryLockForRename>>;
  try {
    lock = await tryLockForRename(cache.path, { logger: deps.logger });
  } catch (err) {
    // Removed by someone else since we listed it: nothing left to purge.
    if (err instanceof CacheVanishedError || errnoCode(err) === 'ENOENT') return { kind: 'gone', candidate };
    if (err instanceof UnsafePathError) return { kind: 'gone', candidate };
    return { kind: 'failed', candidate, error: `cannot open ${cache.path} to lock it: ${errorMessage(err)}` };
  }
  if (lock === 'busy') {
    const holder = { kind: 'lock' as const, detail: `a lock on ${cache.path} was taken after the in-use check` };
    return { kind: 'deferred', candidate, holders: [holder] };
  }
  try {
    await moveToTrash(cache, cache.key);
    return { kind: 'purged', candidate };
  } catch (err) {
    if (err instanceof CacheVanishedError) return { kind: 'gone', candidate };
    if (err instanceof UnsafePathError) {
      // The path no longer holds the directory we decided about (replaced, or
      // turned into a symlink). Leave it: a later cycle judges the new one.
      deps.logger.warn({ cache: cache.name, path: cache.path, reason: err.message }, 'purge skipped: the cache changed under us');
      return { kind: 'gone', candidate };
    }
    return { kind: 'failed', candidate, error: errorMessage(err) };
  } finally {
    await lock.release();
  }
}
