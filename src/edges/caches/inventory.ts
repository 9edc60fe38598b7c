/**
 * Which caches exist: the immediate subdirectories of each root (names
 * decoded, see names.ts) and the configured single caches. Read-only.
 *
 * Cost: one readdir per root and one lstat per candidate; findCaches looks
 * only at the names a response asks for (their encoded and literal directory
 * names), never listing. The lstats are synchronous, in batches with a yield
 * to the event loop between them: for metadata the kernel has cached, a
 * thread-pool round trip per call cost more than the call itself (10,000
 * caches listed in less than half the time), and a batch blocks the loop for
 * at most a few milliseconds on a local disk.
 */
import { isUtf8 } from 'node:buffer';
import { lstatSync, type BigIntStats } from 'node:fs';
import { lstat, readdir } from 'node:fs/promises';
import path from 'node:path';
import { errnoCode, errorMessage } from '../../errors.js';
import { decodeDirName, dirNamesFor, isAgentEntry } from '../../core/names.js';
import { assertSourcesSafe, cacheDirProblem, resolveRoot, resolveSinglePath } from './safety.js';
import { inodeKey } from './inode-key.js';
import { SYNC_CALLS_PER_TURN, yieldToEventLoop } from './concurrency.js';
import { singleLocationId } from '../../core/cursor.js';
import type { LocationRead } from '../../core/records.js';

export interface CacheSources {
  /** Resolved (realpath) roots. */
  roots: string[];
  singles: { name: string; path: string }[];
}

export interface CacheDir {
  /** The decoded cache name. */
  name: string;
  path: string;
  /** The root it lives in; null for a single cache. */
  root: string | null;
  /** `${dev}:${ino}` from a bigint lstat. */
  key: string;
  /** Null when the filesystem reports no birth time (Node reports 0 then). */
  birthtimeMs: number | null;
  mtimeMs: number;
}

export interface InventoryProblem {
  path: string;
  error: string;
}

export interface Inventory {
  caches: CacheDir[];
  problems: InventoryProblem[];
  /**
   * How each configured location read. A location that could not be read is
   * not the same as an empty one: its caches still owe every request.
   */
  locations: LocationRead[];
}

interface Candidate {
  name: string;
  path: string;
  root: string | null;
  parentDev: bigint;
  location: LocationRead;
}

export async function resolveSources(roots: readonly string[], singles: readonly { name: string; path: string }[]): Promise<CacheSources> {
  const resolvedRoots = [...new Set(await Promise.all(roots.map(resolveRoot)))];
  const resolvedSingles = await Promise.all(singles.map(async (s) => ({ name: s.name, path: await resolveSinglePath(s.path) })));
  const sources = { roots: resolvedRoots, singles: resolvedSingles };
  assertSourcesSafe(sources);
  return sources;
}

/** Every cache of every root and every single cache that exists. */
export async function listCaches(sources: CacheSources): Promise<Inventory> {
  const problems: InventoryProblem[] = [];
  const locations: LocationRead[] = [];
  const candidates: Candidate[] = [];
  for (const root of sources.roots) {
    const opened = await openRoot(root, problems, locations, true);
    if (!opened) continue;
    const { rootDev, location, entries } = opened;
    for (const entry of entries) {
      // Hidden entries are the agent's; symlinks and files are never caches.
      if (!entry.isDirectory()) continue;
      const dirName = entry.name.toString('utf8');
      if (isAgentEntry(dirName)) continue;
      if (!isUtf8(entry.name)) {
        problems.push({
          path: path.join(root, dirName),
          error: `not used as a cache: its name is not valid UTF-8 (bytes ${entry.name.toString('hex')}); rename it`,
        });
        continue;
      }
      candidates.push({ name: decodeDirName(dirName), path: path.join(root, dirName), root, parentDev: rootDev, location });
    }
  }
  const singles = await singleCandidates(sources.singles, problems, locations);
  return statCandidates([...candidates, ...singles], problems, locations);
}

/**
 * Read a root's identity (and, when listing, its entries), recording how the
 * location read. Null when it could not be read: its caches keep every request
 * they owe until it can be.
 */
async function openRoot(
  root: string,
  problems: InventoryProblem[],
  locations: LocationRead[],
  list: boolean,
): Promise<{ rootDev: bigint; location: LocationRead; entries: import('node:fs').Dirent<Buffer>[] } | null> {
  try {
    const st = await lstat(root, { bigint: true });
    // Raw bytes: a name that isn't UTF-8 would come back with U+FFFD in it, a path to some other entry.
    const entries = list ? await readdir(root, { withFileTypes: true, encoding: 'buffer' }) : [];
    const location = { id: root, instance: inodeKey(st) };
    locations.push(location);
    return { rootDev: st.dev, location, entries };
  } catch (err) {
    const error = `cannot read cache root: ${errorMessage(err)}`;
    problems.push({ path: root, error });
    locations.push({ id: root, instance: null, error });
    return null;
  }
}

/** Only the caches with the given names (roots looked up by encoded name, no listing). */
export async function findCaches(sources: CacheSources, names: Iterable<string>): Promise<Inventory> {
  const wanted = new Set(names);
  const problems: InventoryProblem[] = [];
  const locations: LocationRead[] = [];
  const candidates: Candidate[] = [];
  for (const root of sources.roots) {
    const opened = await openRoot(root, problems, locations, false);
    if (!opened) continue;
    const { rootDev, location } = opened;
    for (const name of wanted) {
      for (const dirName of dirNamesFor(name)) candidates.push({ name, path: path.join(root, dirName), root, parentDev: rootDev, location });
    }
  }
  const singles = await singleCandidates(
    sources.singles.filter((s) => wanted.has(s.name)),
    problems,
    locations,
  );
  return statCandidates([...candidates, ...singles], problems, locations, { missingIsFine: true });
}

/**
 * A single cache is read through its parent directory: an absent cache in a
 * readable parent is simply not there, but a parent that cannot be read (a
 * disk not mounted yet) leaves the cache's requests owed.
 */
async function singleCandidates(singles: CacheSources['singles'], problems: InventoryProblem[], locations: LocationRead[]): Promise<Candidate[]> {
  const out: Candidate[] = [];
  for (const single of singles) {
    const id = singleLocationId(single.name, single.path);
    try {
      const st = await lstat(path.dirname(single.path), { bigint: true });
      const location = { id, instance: inodeKey(st) };
      locations.push(location);
      out.push({ name: single.name, path: single.path, root: null, parentDev: st.dev, location });
    } catch (err) {
      const error = `cannot read the directory of single cache ${single.name}: ${errorMessage(err)}`;
      problems.push({ path: single.path, error });
      locations.push({ id, instance: null, error });
    }
  }
  return out;
}

async function statCandidates(
  candidates: Candidate[],
  problems: InventoryProblem[],
  locations: LocationRead[],
  opts: { missingIsFine?: boolean } = {},
): Promise<Inventory> {
  const found: InventoryProblem[] = [];
  const results: (CacheDir | null)[] = [];
  for (const [index, candidate] of candidates.entries()) {
    if (index > 0 && index % SYNC_CALLS_PER_TURN === 0) await yieldToEventLoop();
    let st: BigIntStats;
    try {
      st = lstatSync(candidate.path, { bigint: true });
    } catch (err) {
      // Gone since the listing (or never there, for single caches and lookups): not a cache now.
      if (!(errnoCode(err) === 'ENOENT' || (opts.missingIsFine && errnoCode(err) === 'ENOTDIR'))) {
        found.push({ path: candidate.path, error: errorMessage(err) });
        // This cache could not be examined: its requests stay owed by the location.
        (candidate.location.unreadNames ??= []).push(candidate.name);
      }
      results.push(null);
      continue;
    }
    const problem = cacheDirProblem(st, candidate.parentDev);
    if (problem) {
      // A symlink or file in place of a single cache, or a mount point: say so, never touch it.
      if (candidate.root === null || !st.isSymbolicLink()) found.push({ path: candidate.path, error: `not used as a cache: it ${problem}` });
      results.push(null);
      continue;
    }
    const birth = Number(st.birthtimeMs);
    results.push({
      name: candidate.name,
      path: candidate.path,
      root: candidate.root,
      key: inodeKey(st),
      birthtimeMs: birth > 0 ? birth : null,
      mtimeMs: Number(st.mtimeMs),
    });
  }
  // One directory is one cache, even if two candidates reached it.
  const byKey = new Map<string, CacheDir>();
  for (const c of results) if (c !== null && !byKey.has(c.key)) byKey.set(c.key, c);
  problems.push(...found);
  return { caches: [...byKey.values()], problems, locations };
}
