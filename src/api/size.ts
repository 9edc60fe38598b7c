/**
 * Sizes of directory trees for the API (`GET /v1/caches?size=1`, the trash
 * backlog), within a time budget so a huge tree never stalls an answer.
 *
 * Symlinks are never followed (a link counts as nothing), the walk never
 * crosses into another filesystem, and a file with several hard links is
 * counted once. The size is the apparent size of regular files (st_size).
 * A walk that runs out of budget says so (`complete: false`), with the bytes
 * counted so far.
 */
import { lstat, readdir } from 'node:fs/promises';
import path from 'node:path';
import { errnoCode } from '../errors.js';

export interface TreeSize {
  bytes: number;
  files: number;
  complete: boolean;
}

/** Files lstat'ed at once: enough to hide latency, few enough not to flood libuv's pool. */
const BATCH = 32;

/**
 * Measure the tree at `root` until `deadline` (a performance.now() value).
 * A root that does not exist measures 0, complete.
 */
export async function measureTree(root: string, deadline: number): Promise<TreeSize> {
  const result: TreeSize = { bytes: 0, files: 0, complete: true };
  let rootDev: number;
  try {
    const st = await lstat(root);
    if (!st.isDirectory()) return result;
    rootDev = st.dev;
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return result;
    throw err;
  }
  const seenLinks = new Set<string>();
  const stack = [root];
  while (stack.length > 0) {
    if (performance.now() >= deadline) {
      result.complete = false;
      return result;
    }
    const dir = stack.pop()!;
    let entries;
    try {
      entries = await readdir(dir, { withFileTypes: true });
    } catch (err) {
      // Gone meanwhile (the trash is emptied as we count): nothing to add.
      if (errnoCode(err) === 'ENOENT' || errnoCode(err) === 'ENOTDIR') continue;
      throw err;
    }
    const candidates = entries.filter((e) => e.isFile() || e.isDirectory()).map((e) => path.join(dir, e.name));
    for (let i = 0; i < candidates.length; i += BATCH) {
      const stats = await Promise.all(candidates.slice(i, i + BATCH).map((p) => lstat(p).then((st) => ({ p, st }), () => null)));
      for (const entry of stats) {
        if (!entry) continue;
        const { p, st } = entry;
        if (st.isDirectory()) {
          if (st.dev === rootDev) stack.push(p);
        } else if (st.isFile()) {
          if (st.nlink > 1) {
            const id = `${st.dev}:${st.ino}`;
            if (seenLinks.has(id)) continue;
            seenLinks.add(id);
          }
          result.bytes += st.size;
          result.files++;
        }
      }
      if (performance.now() >= deadline && (i + BATCH < candidates.length || stack.length > 0)) {
        result.complete = false;
        return result;
      }
    }
  }
  return result;
}

/** Measure several trees against one deadline; each reports on its own. */
export async function measureTrees(roots: readonly string[], budgetMs: number, concurrency = 4): Promise<TreeSize[]> {
  const deadline = performance.now() + budgetMs;
  const results: TreeSize[] = new Array(roots.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < roots.length) {
      const i = next++;
      try {
        results[i] = await measureTree(roots[i]!, deadline);
      } catch {
        results[i] = { bytes: 0, files: 0, complete: false };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, roots.length) }, worker));
  return results;
}
