/**
 * The trash: where a purged cache goes, atomically, before its space is
 * reclaimed. One trash directory per root (`<root>/.purge-cache-agent-trash`)
 * and one beside single caches (a hidden sibling in the same parent), so the
 * rename never leaves the cache's filesystem.
 */
import { lstat, mkdir, readdir, rename } from 'node:fs/promises';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { AgentError, UnsafePathError, errnoCode, errorMessage } from '../errors.js';
import type { CacheDir, CacheSources } from './inventory.js';
import { recheckCacheDir } from './safety.js';
import { TRASH_DIR_NAME } from './names.js';
import { deleteContents, addReports, emptyReport, type DeleteOptions, type DeleteReport } from './delete.js';

export { TRASH_DIR_NAME };

/** The cache was gone (removed by someone else) when we came to purge it. */
export class CacheVanishedError extends AgentError {
  readonly code = 'PCA_CACHE_VANISHED';
}

/** The trash directory cannot be used (not a directory, a symlink, another filesystem). */
export class TrashUnavailableError extends AgentError {
  readonly code = 'PCA_TRASH_UNAVAILABLE';
}

export function trashDirFor(cache: Pick<CacheDir, 'root' | 'path'>): string {
  return path.join(cache.root ?? path.dirname(cache.path), TRASH_DIR_NAME);
}

export function trashDirsFor(sources: CacheSources): string[] {
  const dirs = sources.roots.map((root) => path.join(root, TRASH_DIR_NAME));
  for (const single of sources.singles) dirs.push(path.join(path.dirname(single.path), TRASH_DIR_NAME));
  return [...new Set(dirs)];
}

/**
 * Trash directories already checked in this batch of purges, with the device
 * of the directory holding them: a thousand purges check each trash once.
 */
export type TrashChecks = Map<string, Promise<bigint>>;

/** Create the trash if needed; check it is a real directory on its parent's filesystem. Resolves to that device. */
async function ensureTrash(trash: string): Promise<bigint> {
  try {
    await mkdir(trash, { mode: 0o700 }).catch((err: unknown) => {
      if (errnoCode(err) !== 'EEXIST') throw err;
    });
    const [st, parent] = await Promise.all([lstat(trash, { bigint: true }), lstat(path.dirname(trash), { bigint: true })]);
    if (!st.isDirectory()) throw new TrashUnavailableError(`the trash ${trash} is not a directory; remove whatever is there so purges can proceed`);
    if (st.dev !== parent.dev) throw new TrashUnavailableError(`the trash ${trash} is a mount point (another filesystem than the caches); remove the mount there`);
    return parent.dev;
  } catch (err) {
    if (err instanceof TrashUnavailableError) throw err;
    throw new TrashUnavailableError(`cannot use the trash ${trash}: ${errorMessage(err)}`, { cause: err });
  }
}

/**
 * Rename a cache into its trash. This is the moment of the purge: the cache
 * path is gone at once, whatever the cache's size. Throws CacheVanishedError
 * if it is already gone, UnsafePathError if it is not the directory we judged
 * (or a mount point), TrashUnavailableError if the trash can't be used.
 */
export async function moveToTrash(cache: Pick<CacheDir, 'root' | 'path'>, expectedKey?: string, checks: TrashChecks = new Map()): Promise<{ trashPath: string }> {
  const trash = trashDirFor(cache);
  let check = checks.get(trash);
  if (!check) {
    check = ensureTrash(trash);
    checks.set(trash, check);
    // A failed check is not remembered: the next purge tries again.
    check.catch(() => checks.delete(trash));
  }
  const parentDev = await check;
  try {
    await recheckCacheDir(cache.path, expectedKey, parentDev);
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') throw new CacheVanishedError(`${cache.path} is already gone`);
    throw err;
  }
  // A fixed-length name: the cache's own name may already be 255 bytes long.
  const trashPath = path.join(trash, `${Date.now()}-${randomBytes(6).toString('hex')}`);
  try {
    await rename(cache.path, trashPath);
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') {
      // Either the cache vanished, or someone removed the trash since we checked it.
      checks.delete(trash);
      throw new CacheVanishedError(`${cache.path} vanished during its purge (or the trash ${trash} did)`);
    }
    if (errnoCode(err) === 'EXDEV' || errnoCode(err) === 'EBUSY') {
      throw new UnsafePathError(`refusing to purge ${cache.path}: ${errorMessage(err)} (a mount point?)`, cache.path);
    }
    throw err;
  }
  return { trashPath };
}

/** What waits in the trash dirs (entries only; sizes are counted as they are deleted). */
export async function trashEntries(trashDirs: readonly string[]): Promise<string[]> {
  const out: string[] = [];
  for (const dir of trashDirs) {
    try {
      for (const name of await readdir(dir)) out.push(path.join(dir, name));
    } catch (err) {
      if (errnoCode(err) !== 'ENOENT' && errnoCode(err) !== 'ENOTDIR') throw err;
    }
  }
  return out;
}

/**
 * Delete everything in the trash dirs. The trash dirs themselves stay: they
 * keep their mode (0700), and a purge never has to recreate one. A trash dir
 * that is missing has nothing to delete; one that is a symlink or a mount
 * point is left alone and reported.
 */
export async function emptyTrash(trashDirs: readonly string[], opts: DeleteOptions = {}): Promise<DeleteReport> {
  const report = emptyReport();
  for (const dir of new Set(trashDirs)) {
    if (opts.signal?.aborted) break;
    addReports(report, await deleteContents(dir, opts));
  }
  return report;
}
