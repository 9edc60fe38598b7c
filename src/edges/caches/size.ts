/**
 * Sizes of directory trees, for eviction (--max-size, --min-free), the trash
 * metric and `GET /v1/caches?size=1`, within a time budget so a huge tree
 * never stalls an answer.
 *
 * - The size is the space files occupy: st_blocks × 512, not st_size. A sparse
 *   file of 15 TB that occupies 4 KB counts 4 KB; otherwise one user's sparse
 *   file would make every other idle cache look worth evicting.
 * - A file with several hard links counts 1 / nlink of itself per link: the
 *   links inside the tree add up to the file once, with no memory of inodes
 *   seen (which a million links would fill).
 * - Directories are streamed (opendir), names handled as bytes (a name that is
 *   not UTF-8 counts like any other), and subdirectories are entered as they
 *   are met, with a bounded number of directories open at once: memory does
 *   not grow with the number of entries in a directory.
 * - Symlinks are never followed and the walk never crosses into another
 *   filesystem. Any error from the tree (ELOOP from a directory swapped for a
 *   looping symlink, EACCES, ENAMETOOLONG, ...) ends the walk with the path and
 *   reason in `error`, never a throw: the caller reports it and goes on.
 */
import { lstat, opendir } from 'node:fs/promises';
import type { Dir, Dirent } from 'node:fs';
import { errnoCode, errorMessage } from '../../errors.js';
import { mapLimit } from './concurrency.js';

export interface TreeSize {
  bytes: number;
  files: number;
  complete: boolean;
  /** Why the walk stopped early, other than the budget. */
  error?: { path: string; reason: string };
}

/** Directories held open at once while descending; deeper ones wait as paths. */
const MAX_OPEN_DIRS = 32;
const SLASH = Buffer.from('/');

function join(dir: Buffer, name: Buffer): Buffer {
  return Buffer.concat([dir, SLASH, name]);
}

const vanished = (err: unknown): boolean => errnoCode(err) === 'ENOENT' || errnoCode(err) === 'ENOTDIR';

/**
 * Measure the tree at `root` until `deadline` (a performance.now() value).
 * A root that does not exist measures 0, complete.
 */
export async function measureTree(root: string, deadline: number): Promise<TreeSize> {
  const result: TreeSize = { bytes: 0, files: 0, complete: true };
  const rootPath = Buffer.from(root);
  let rootDev: number;
  try {
    const st = await lstat(rootPath);
    if (!st.isDirectory()) return result;
    rootDev = st.dev;
  } catch (err) {
    if (!vanished(err)) result.error = { path: root, reason: errorMessage(err) };
    result.complete = result.error === undefined;
    return result;
  }
  let bytes = 0;
  let files = 0;
  const waiting: Buffer[] = [rootPath];
  const open: { dir: Dir; path: Buffer }[] = [];
  let failedAt: Buffer = rootPath;
  try {
    while (open.length > 0 || waiting.length > 0) {
      if (performance.now() >= deadline) {
        result.complete = false;
        break;
      }
      const top = open.at(-1);
      if (top === undefined) {
        // Nothing open: go on with a directory that waited for a free descriptor.
        const next = waiting.pop();
        if (next === undefined) break;
        failedAt = next;
        try {
          open.push({ dir: await opendir(next, { encoding: 'buffer', bufferSize: 64 } as never), path: next });
        } catch (err) {
          if (!vanished(err)) throw err; // gone meanwhile (the trash is emptied as we count)
        }
        continue;
      }
      failedAt = top.path;
      const entry = (await top.dir.read()) as Dirent<Buffer> | null;
      if (entry === null) {
        open.pop();
        await top.dir.close();
        continue;
      }
      if (!entry.isFile() && !entry.isDirectory()) continue;
      const p = join(top.path, entry.name);
      failedAt = p;
      const st = await lstat(p).catch((err: unknown) => {
        if (vanished(err)) return null;
        throw err;
      });
      if (!st) continue;
      if (st.isDirectory()) {
        if (st.dev !== rootDev) continue;
        if (open.length < MAX_OPEN_DIRS) {
          try {
            open.push({ dir: await opendir(p, { encoding: 'buffer', bufferSize: 64 } as never), path: p });
          } catch (err) {
            if (!vanished(err)) throw err;
          }
        } else waiting.push(p);
      } else if (st.isFile()) {
        const links = Math.max(1, st.nlink);
        bytes += (st.blocks * 512) / links;
        files += 1 / links;
      }
    }
  } catch (err) {
    result.complete = false;
    result.error = { path: failedAt.toString(), reason: errorMessage(err) };
  } finally {
    await Promise.all(open.map((o) => o.dir.close().catch(() => {})));
  }
  result.bytes = Math.round(bytes);
  result.files = Math.round(files);
  return result;
}

/** Measure several trees against one deadline; each reports on its own. */
export async function measureTrees(roots: readonly string[], budgetMs: number, concurrency = 4): Promise<TreeSize[]> {
  const deadline = performance.now() + budgetMs;
  return mapLimit(roots, concurrency, (root) => measureTree(root, deadline));
}
