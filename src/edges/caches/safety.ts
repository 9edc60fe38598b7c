/**
 * The safety rules for touching the filesystem, stated once and enforced here.
 * The agent often runs as root on machines that run other people's builds, and
 * acts on names that arrive over the network, so:
 *
 * 1. Roots are resolved once, with realpath, when the agent starts. After that
 *    every path it acts on is built from a resolved root (or a single cache's
 *    resolved parent) and ONE encoded name: never from a path off the network.
 * 2. A cache is a real directory: lstat, never stat. A symlink, a file, or
 *    anything else where a cache should be is not a cache and is never
 *    followed. A cache is a direct child of its root.
 * 3. A cache lives on its root's filesystem. A mount point where a cache should
 *    be is refused (renaming it would fail, and deleting inside it would reach
 *    into another filesystem).
 * 4. Just before a rename, the entry is checked again and must still be the
 *    directory (device and inode) the decision was made about; the rename goes
 *    from the root (or a single cache's parent) held open into a trash held
 *    open, owned by the agent with mode 0700 (src/edges/caches/trash.ts, trash-dir.ts),
 *    never through paths a task could swap. Rule 2 is enforced there too.
 * 5. Deletion never follows a symlink (links are unlinked as links) and never
 *    crosses into another filesystem or mount (src/edges/caches/delete.ts acts on
 *    one name inside a directory it holds open, and checks each directory's
 *    device and mount against the top's parent's).
 * 6. A root itself is never renamed or deleted; trash directories live inside
 *    roots (or beside single caches) and are only ever emptied. So roots and
 *    single caches must not nest in a way that would put a root inside
 *    something purgeable (assertSourcesSafe, at start).
 * 7. Locks are honoured: the rename happens under an exclusive flock on the
 *    cache directory (src/engine/purge.ts), so users holding a lock are never cut off.
 */
import { realpath, stat } from 'node:fs/promises';
import path from 'node:path';
import type { BigIntStats } from 'node:fs';
import { ConfigError, errnoCode } from '../../errors.js';
import { TRASH_DIR_NAME } from '../../core/names.js';
import type { CacheSources } from './inventory.js';
import { isInside } from './proc.js';

/** Rule 1: resolve a configured root. A missing root is allowed (it may appear later); a non-directory is a configuration error. */
export async function resolveRoot(root: string): Promise<string> {
  const absolute = path.resolve(root);
  try {
    const real = await realpath(absolute);
    const st = await stat(real);
    if (!st.isDirectory())
      throw new ConfigError(`cache root ${root} is not a directory; --cache-root takes a directory whose subdirectories are caches`, 'cacheRoots');
    return real;
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return absolute;
    throw err;
  }
}

/** Rule 1 for single caches: resolve the parent, keep the last component as given (it may be absent, or a symlink we must not follow). */
export async function resolveSinglePath(cachePath: string): Promise<string> {
  const absolute = path.resolve(cachePath);
  const parent = path.dirname(absolute);
  if (parent === absolute)
    throw new ConfigError(`single cache path ${cachePath} is a filesystem root; --cache NAME=PATH needs a directory below one`, 'caches');
  try {
    return path.join(await realpath(parent), path.basename(absolute));
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return absolute;
    throw err;
  }
}

/** Rules 2 and 3: what a cache directory must be. Returns the reason it is not one, or null. */
export function cacheDirProblem(st: BigIntStats, parentDev: bigint): string | null {
  if (st.isSymbolicLink()) return 'is a symlink (never followed)';
  if (!st.isDirectory()) return 'is not a directory';
  if (st.dev !== parentDev) return 'is a mount point (another filesystem); never purged';
  return null;
}

/**
 * Rule 6 at start: no purge may take a root with it (nor anything that is not
 * a cache: the filesystem root is refused as a root). A root inside another
 * root lies inside one of the outer root's caches; a single cache at or above
 * a root would take the root along; a single cache inside a trash would be
 * emptied with it. Throws ConfigError naming both paths.
 */
export function assertSourcesSafe(sources: CacheSources): void {
  for (const inner of sources.roots) {
    // Every top-level directory (/usr, /home) would be a cache, one request away from deletion.
    if (inner === '/') throw new ConfigError('cache root / is the filesystem root; --cache-root takes a directory that holds only caches', 'cacheRoots');
    const outer = sources.roots.find((r) => r !== inner && isInside(inner, r));
    if (outer !== undefined) {
      throw new ConfigError(
        `cache root ${inner} lies inside cache root ${outer}: purging a cache of ${outer} could delete it; configure cache roots that don't nest`,
        'cacheRoots',
      );
    }
  }
  for (const single of sources.singles) {
    const root = sources.roots.find((r) => isInside(r, single.path));
    if (root !== undefined) {
      throw new ConfigError(
        `single cache ${single.name}=${single.path} contains the cache root ${root}: purging it would delete the root; point --cache at a directory outside every root`,
        'caches',
      );
    }
    if (single.path.split('/').includes(TRASH_DIR_NAME)) {
      throw new ConfigError(`single cache ${single.name}=${single.path} lies in the agent's trash (${TRASH_DIR_NAME}); point --cache elsewhere`, 'caches');
    }
  }
}
