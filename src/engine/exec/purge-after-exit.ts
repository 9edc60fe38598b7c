/**
 * Purging a command's caches after it ended in a way --purge-on-exit lists.
 *
 * Two steps, around exec letting go of its caches:
 * 1. condemn, while exec still holds them (the command is over; its lease and
 *    flock remain): the purge is deferred because of exec's own hold, and so
 *    recorded as pending for that very directory. From here on, whoever claims
 *    the cache through exec purges it first, and an agent carries it out at its
 *    next recheck — even if exec dies now.
 * 2. carry out, once exec has released its lease and flock: the purge goes
 *    through, unless someone else took the cache meanwhile; then it stays
 *    pending and happens when they let go.
 * Both use the agent's local purge (its API, or the state file when no agent
 * runs): the same safety rules as any purge, never a path of its own.
 */
import { lstat } from 'node:fs/promises';
import { inodeKey } from '../../edges/caches/inuse.js';
import { errorMessage } from '../../errors.js';
import type { ExecCoordinator } from './coordinator.js';

export interface HeldCache {
  name: string;
  path: string;
  /** The directory exec held (device:inode): what must be gone from `path` afterwards. */
  key: string;
}

export async function condemn(caches: readonly HeldCache[], coordinator: ExecCoordinator, say: (line: string) => void): Promise<void> {
  for (const cache of caches) {
    await coordinator.purgeNow(cache.name).catch((err: unknown) => {
      say(`could not mark cache ${JSON.stringify(cache.name)} for purging: ${errorMessage(err)}`);
    });
  }
}

/** Carry out the purges; resolves with the caches still at their path (deferred, or the purge failed). */
export async function carryOut(caches: readonly HeldCache[], coordinator: ExecCoordinator, say: (line: string) => void): Promise<HeldCache[]> {
  const left: HeldCache[] = [];
  for (const cache of caches) {
    let deferredBy: string | null = null;
    let failure: string | null = null;
    try {
      ({ deferredBy } = await coordinator.purgeNow(cache.name));
    } catch (err) {
      failure = errorMessage(err);
    }
    // What is at the path now decides, whoever did the purge (an agent's recheck may have been first).
    const now = await lstat(cache.path, { bigint: true }).then(inodeKey, () => null);
    if (now !== cache.key) {
      say(`purged cache ${JSON.stringify(cache.name)} (${cache.path})`);
      continue;
    }
    left.push(cache);
    if (failure !== null)
      say(
        `could not purge cache ${JSON.stringify(cache.name)}: ${failure}; it stays marked for purging if the mark was recorded, so check \`purge-cache-agent status\``,
      );
    else
      say(
        `cache ${JSON.stringify(cache.name)} is in use${deferredBy ? ` (${deferredBy})` : ''}: its purge is pending, and is carried out when it is let go and before exec hands it out again`,
      );
  }
  return left;
}
