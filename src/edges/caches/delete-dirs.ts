/** The walk's model of the tree: the directories it is working on, and the calls it hands out. */
import type { FsId, Op } from './delete-threads.js';

/** Entries per read: large enough that messaging costs nothing next to the calls. */
export const BATCH = 256;
/**
 * Directories this deep below the top (a trash's caches' subdirectories) are
 * deleted whole by one thread, a slice of calls at a time: parallel enough
 * across siblings, and a deep chain costs no message per level.
 */
export const SUBTREE_DEPTH = 2;
export const DEFAULT_THREADS = 4;

/** A directory being deleted. */
export interface Dir {
  name: Uint8Array;
  parent: Dir | null;
  /** 0 for the top. */
  depth: number;
  /** Open descriptor, or null while only its subdirectories are at work (they climb back to reopen it). */
  fd: number | null;
  dev: string;
  ino: string;
  /** Its listing, open in deletion thread `slot`, until read to the end. */
  stream: number | null;
  slot: number;
  /** Subdirectories listed and not yet started (at most one batch). */
  subdirs: Uint8Array[];
  /** Names to unlink that were listed as directories but are not (a symlink swapped in). */
  links: Uint8Array[];
  /** Calls in flight that use `fd` (a read among them): it is never closed under them. */
  using: number;
  reading: boolean;
  /** Subdirectories opened (or being opened) and not finished. */
  children: number;
  /** Something below stays (a mount, a failure): never removed. */
  kept: boolean;
  queued: boolean;
  finished: boolean;
}

export function newDir(name: Uint8Array, parent: Dir | null, fd: number, id: Pick<FsId, 'dev' | 'ino'>): Dir {
  return {
    name,
    parent,
    depth: parent ? parent.depth + 1 : -1,
    fd,
    dev: id.dev,
    ino: id.ino,
    stream: null,
    slot: 0,
    subdirs: [],
    links: [],
    using: 0,
    reading: false,
    children: 0,
    kept: false,
    queued: false,
    finished: false,
  };
}

export interface Job {
  op: Op;
  args: object;
  /** Rate-limit tokens the call may spend. */
  cost: number;
  pinned?: number;
  done(result: unknown, slot: number): Promise<void> | void;
}

export interface WalkStart {
  /** The top's parent, held open by the caller for the whole walk. */
  parentFd: number;
  parentId: Pick<FsId, 'dev' | 'ino'>;
  /** The filesystem everything must be on: the top's parent's. */
  fs: { dev: string; mnt: string | null };
  parentPath: string;
  topName: Uint8Array;
  /** deleteContents: the top itself stays. */
  keepTop: boolean;
  /** The directory the top must be, when the caller checked it (a trash). */
  expectTop?: { dev: string; ino: string };
  /** Mount points, as `<dev>:<ino of the directory holding it>` → entry names (latin1). */
  mounts: ReadonlyMap<string, string[]>;
}

/** Something below `dir` stays (a mount, a failure): it is never removed, nor are its ancestors. */
export function keepUp(dir: Dir): void {
  for (let d: Dir | null = dir; d && !d.kept; d = d.parent) d.kept = true;
}
