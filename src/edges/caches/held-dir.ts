/**
 * Directories the agent holds open while it acts inside them.
 *
 * Node has no renameat/unlinkat, but a path through `/proc/self/fd/<fd>/`
 * resolves the held descriptor itself, not the path it was opened by: renaming
 * `/proc/self/fd/<parent>/<entry>` to `/proc/self/fd/<trash>/<name>` is
 * renameat(2). Whatever a task does to the names meanwhile (swapping a
 * directory for a symlink), the call lands in the directories we checked.
 */
import { constants } from 'node:fs';
import type { BigIntStats } from 'node:fs';
import { open, readFile, type FileHandle } from 'node:fs/promises';

const DIRECTORY_NO_FOLLOW = constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW;

export interface HeldDir {
  /** The path it was opened by (for messages; never used again to reach it). */
  readonly path: string;
  readonly fd: number;
  readonly st: BigIntStats;
  /** The mount it is on (mnt_id from /proc/self/fdinfo), or null where that cannot be read. */
  readonly mnt: string | null;
  /** `/proc/self/fd/<fd>/<name>`: one name inside this very directory. */
  at(name: string): string;
  close(): Promise<void>;
}

/** `/proc/self/fd/<fd>/<name>`. */
export function atFd(fd: number, name: string): string {
  return `/proc/self/fd/${fd}/${name}`;
}

/** The mount a descriptor is on: a bind mount of the same filesystem has the same st_dev, but not the same mnt_id. */
export async function mountIdOf(fd: number): Promise<string | null> {
  try {
    return /^mnt_id:\s*(\d+)/m.exec(await readFile(`/proc/self/fdinfo/${fd}`, 'latin1'))?.[1] ?? null;
  } catch {
    return null;
  }
}

/**
 * Open a directory without following a symlink at its last component (ELOOP
 * for a symlink, ENOTDIR for anything else that is not a directory).
 */
export async function holdDir(dirPath: string, displayPath = dirPath): Promise<HeldDir> {
  const handle: FileHandle = await open(dirPath, DIRECTORY_NO_FOLLOW);
  try {
    const st = await handle.stat({ bigint: true });
    const mnt = await mountIdOf(handle.fd);
    return {
      path: displayPath,
      fd: handle.fd,
      st,
      mnt,
      at: (name) => atFd(handle.fd, name),
      close: () => handle.close(),
    };
  } catch (err) {
    await handle.close();
    throw err;
  }
}

/** `held` and `other` are on the same mount (same device, and the same mount id where both are known). */
export function sameMount(held: Pick<HeldDir, 'st' | 'mnt'>, other: Pick<HeldDir, 'st' | 'mnt'>): boolean {
  return held.st.dev === other.st.dev && (held.mnt === null || other.mnt === null || held.mnt === other.mnt);
}
