/**
 * Placing a path read from /proc: which of the caches being judged contain
 * it. A process in the agent's mount namespace is placed directly; one in
 * another namespace (a container with the cache bind-mounted elsewhere) is
 * placed through its mountinfo, as device + path within the filesystem.
 *
 * Every lookup walks the ancestors of the path (O(depth)), never the list of
 * caches or of mounts, and each namespace's translation is built once per
 * scan and remembers its recent answers: a process holding thousands of
 * descriptors on the same few files costs a map lookup per descriptor.
 */
import path from 'node:path';
import { fsLocation, indexMounts, pathForms, type Mount, type MountIndex } from './proc.js';

/** A cache being judged, as the scan needs it. */
export interface Target {
  path: string;
  /** The path as given (resolved) and its realpath: /proc shows the latter. */
  forms: string[];
  stDev: bigint;
  dev: string;
  /** Lock key of the cache directory itself. */
  key: string;
  /** Device and path within the filesystem, for matching other mount namespaces. */
  location?: { dev: string; fsPath: string } | undefined;
}

/** The targets containing a path, as one process sees paths. */
export type View = (p: string) => readonly Target[];

const NONE: readonly Target[] = [];
/** Answers remembered per view; cleared when full, so memory stays bounded whatever the paths. */
const MEMO_LIMIT = 4096;

function memoised(place: (p: string) => readonly Target[]): View {
  const memo = new Map<string, readonly Target[]>();
  return (p) => {
    let hit = memo.get(p);
    if (hit === undefined) {
      hit = place(p);
      if (memo.size >= MEMO_LIMIT) memo.clear();
      memo.set(p, hit);
    }
    return hit;
  };
}

/** Walk `p` and its ancestors, collecting what `index` holds for each. */
function ancestorsIn<K>(p: string, index: ReadonlyMap<string, readonly K[]>, into: Set<K>): void {
  for (let at = p; ; at = path.posix.dirname(at)) {
    for (const t of index.get(at) ?? NONE) into.add(t as K);
    if (at === '/') break;
  }
}

/** Placement in the agent's own mount namespace: exact containment in any form of a cache's path. */
export function directView(targets: readonly Target[]): View {
  const byForm = new Map<string, Target[]>();
  for (const t of targets) for (const form of new Set(t.forms)) byForm.set(form, [...(byForm.get(form) ?? []), t]);
  return memoised((p) => {
    const hits = new Set<Target>();
    for (const form of pathForms(p)) if (form.startsWith('/')) ancestorsIn(form, byForm, hits);
    return hits.size === 0 ? NONE : [...hits];
  });
}

/** Set each target's location on its filesystem, from the agent's own mountinfo. */
export function locateTargets(targets: readonly Target[], ours: readonly Mount[]): void {
  const index = indexMounts(ours);
  for (const t of targets) {
    // The realpath, last of the forms: mountinfo shows resolved paths.
    const real = t.forms.at(-1);
    if (real !== undefined) t.location = fsLocation(real, index);
  }
}

/** Placement for a process in another mount namespace, given that namespace's mounts (targets located first). */
export function foreignView(targets: readonly Target[], theirs: readonly Mount[]): View {
  const mounts: MountIndex = indexMounts(theirs);
  const byLocation = new Map<string, Target[]>();
  for (const t of targets) {
    if (!t.location) continue;
    const k = `${t.location.dev}\0${t.location.fsPath}`;
    byLocation.set(k, [...(byLocation.get(k) ?? []), t]);
  }
  return memoised((p) => {
    const hits = new Set<Target>();
    for (const form of pathForms(p)) {
      const loc = fsLocation(form, mounts);
      if (!loc || !loc.fsPath.startsWith('/')) continue;
      for (let at = loc.fsPath; ; at = path.posix.dirname(at)) {
        for (const t of byLocation.get(`${loc.dev}\0${at}`) ?? NONE) hits.add(t);
        if (at === '/') break;
      }
    }
    return hits.size === 0 ? NONE : [...hits];
  });
}
