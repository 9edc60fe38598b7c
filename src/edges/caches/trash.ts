/**
 * The trash: where a purged cache goes, atomically, before its space is
 * reclaimed. One trash directory per root (`<root>/.purge-cache-agent-trash`)
 * and one beside single caches (a hidden sibling in the same parent), so the
 * rename never leaves the cache's filesystem. Every rename into a trash, and
 * every deletion in one, goes through the directories held open by
 * trash-dir.ts, never through their paths.
 */
import { lstatSync, renameSync } from 'node:fs';
import { opendir } from 'node:fs/promises';
import path from 'node:path';
import { UnsafePathError, errnoCode, errorMessage, CacheVanishedError } from '../../errors.js';
import type { CacheDir, CacheSources } from './inventory.js';
import { cacheDirProblem } from './safety.js';
import { inodeKey } from './inode-key.js';
import { TRASH_DIR_NAME } from '../../core/names.js';
import { TrashHandles, closeTrash, openTrash } from './trash-dir.js';
import { deleteContentsAt, addReports, emptyReport, type DeleteOptions, type DeleteReport } from './delete.js';

export { TRASH_DIR_NAME, TrashHandles };

/** The directory a cache is an entry of: its root, or a single cache's parent. */
function parentOf(cache: Pick<CacheDir, 'root' | 'path'>): string {
  return cache.root ?? path.dirname(cache.path);
}

export function trashDirFor(cache: Pick<CacheDir, 'root' | 'path'>): string {
  return path.join(parentOf(cache), TRASH_DIR_NAME);
}

export function trashDirsFor(sources: CacheSources): string[] {
  const dirs = sources.roots.map((root) => path.join(root, TRASH_DIR_NAME));
  for (const single of sources.singles) dirs.push(path.join(path.dirname(single.path), TRASH_DIR_NAME));
  return [...new Set(dirs)];
}

/**
 * Rename a cache into its trash. This is the moment of the purge: the cache
 * path is gone at once, whatever the cache's size. The cache must be an entry
 * of its root (or of a single cache's parent) and still be the directory
 * `expectedKey` names. Throws CacheVanishedError if it is already gone,
 * UnsafePathError if it is not the directory we judged (or a mount point),
 * TrashUnavailableError if the trash can't be used.
 */
export async function moveToTrash(cache: Pick<CacheDir, 'root' | 'path'>, expectedKey: string, trashes?: TrashHandles): Promise<{ trashPath: string }> {
  const own = trashes === undefined;
  const handles = trashes ?? new TrashHandles();
  try {
    return await renameIntoTrash(cache, expectedKey, await handles.get(parentOf(cache)), handles);
  } finally {
    if (own) await handles.close();
  }
}

async function renameIntoTrash(
  cache: Pick<CacheDir, 'root' | 'path'>,
  expectedKey: string,
  held: Awaited<ReturnType<TrashHandles['get']>>,
  handles: TrashHandles,
): Promise<{ trashPath: string }> {
  const entry = path.basename(cache.path);
  // Safety rule 2: a cache is one entry of the directory we hold, nothing deeper, never `.` or `..`.
  if (path.dirname(cache.path) !== held.parent.path || entry === '.' || entry === '..' || entry === TRASH_DIR_NAME) {
    throw new UnsafePathError(`refusing ${cache.path}: not a direct child of ${held.parent.path}`, cache.path);
  }
  const source = held.parent.at(entry);
  // Synchronous calls, like the listing's: each is one quick call on a name in
  // a directory held open, and a batch of purges would otherwise wait on the
  // thread pool for each of them (most of the time of 1,000 renames).
  let st;
  try {
    st = lstatSync(source, { bigint: true });
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') throw new CacheVanishedError(`${cache.path} is already gone`);
    throw err;
  }
  const problem = cacheDirProblem(st, held.parent.st.dev);
  if (problem) throw new UnsafePathError(`refusing to purge ${cache.path}: it ${problem}`, cache.path);
  if (inodeKey(st) !== expectedKey)
    throw new UnsafePathError(`refusing to purge ${cache.path}: it was replaced by another directory since it was judged`, cache.path);
  const name = await handles.entryName();
  try {
    renameSync(source, held.trash.at(name));
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') throw new CacheVanishedError(`${cache.path} vanished during its purge`);
    if (errnoCode(err) === 'EXDEV' || errnoCode(err) === 'EBUSY') {
      throw new UnsafePathError(`refusing to purge ${cache.path}: ${errorMessage(err)} (a mount point?)`, cache.path);
    }
    throw err;
  }
  confirmLanded(cache.path, expectedKey, held, entry, name);
  return { trashPath: path.join(held.path, name) };
}

/**
 * The check above and the rename are two calls: a task that can write to the
 * root can exchange two entries between them. What landed in the trash is
 * checked again, and anything but the judged directory goes back where it was.
 */
function confirmLanded(cachePath: string, expectedKey: string, held: Awaited<ReturnType<TrashHandles['get']>>, entry: string, name: string): void {
  const landed = lstatSync(held.trash.at(name), { bigint: true });
  if (inodeKey(landed) === expectedKey) return;
  try {
    renameSync(held.trash.at(name), held.parent.at(entry));
  } catch (err) {
    throw new UnsafePathError(
      `${cachePath} was exchanged for another entry during its rename, which is now ${path.join(held.path, name)} and could not be put back (${errorMessage(err)}); move it back by hand`,
      cachePath,
    );
  }
  throw new UnsafePathError(`refusing to purge ${cachePath}: it was exchanged for another entry during the rename (put back)`, cachePath);
}

/** What waits in the trash dirs (entry paths; a refused or missing trash has none). Reads at most `limit` entries. */
export async function trashEntries(trashDirs: readonly string[], limit = Infinity): Promise<string[]> {
  const out: string[] = [];
  for (const dir of trashDirs) {
    if (out.length >= limit) break;
    try {
      const handle = await opendir(dir);
      for await (const entry of handle) {
        out.push(path.join(dir, entry.name));
        if (out.length >= limit) break;
      }
    } catch (err) {
      if (errnoCode(err) !== 'ENOENT' && errnoCode(err) !== 'ENOTDIR') throw err;
    }
  }
  return out;
}

/**
 * Delete everything in the trash dirs. The trash dirs themselves stay: they
 * keep their mode (0700), and a purge never has to recreate one. A trash dir
 * that is missing has nothing to delete; one that is not the agent's (a
 * symlink, a mount point, another owner, another mode) is left alone and
 * reported as a failure.
 */
export async function emptyTrash(trashDirs: readonly string[], opts: DeleteOptions = {}): Promise<DeleteReport> {
  const report = emptyReport();
  for (const dir of new Set(trashDirs)) {
    if (opts.signal?.aborted) break;
    let held;
    try {
      held = await openTrash(path.dirname(dir), { create: false });
    } catch (err) {
      report.failures.push({ path: dir, error: `${errorMessage(err)}; left alone` });
      continue;
    }
    if (!held) continue;
    try {
      addReports(report, await deleteContentsAt(held.parent, TRASH_DIR_NAME, held.trash.st, opts));
    } finally {
      await closeTrash(held);
    }
  }
  return report;
}
