// @ts-check
'use strict';
const fs = require('node:fs');
const { O_RDONLY, O_DIRECTORY, O_NOFOLLOW, LIST_AS_BYTES, at, failure, identity, closeQuietly } = require('./delete-fs.cjs');

/**
 * Whole subtrees, depth-first in a deletion thread: no message per directory,
 * so a chain 100,000 directories deep costs what its system calls cost. The
 * main thread hands out subtrees below the first levels and asks for `max`
 * calls at a time (its rate limit and its abort act between slices). State
 * per subtree: one frame per level (a name and an identity), at most
 * MAX_OPEN_FRAMES of them holding descriptors.
 */

/** Directories held open at once in one subtree; above that the oldest are closed and found again through `..`. */
const MAX_OPEN_FRAMES = 32;
/** Failures (and mounts) described per subtree; past that they are only counted. */
const MAX_DESCRIBED = 100;

/**
 * @typedef {{ name: Buffer, fd: number | null, dir: fs.Dir | null, dev: string, ino: string, kept: boolean }} Frame
 * @typedef {{ baseFd: number, want: { dev: string, mnt: string | null }, countBytes: boolean, mounts: Map<string, Set<string>>,
 *   frames: Frame[], open: number, firstOpen: number, removed: number, bytes: number, dirs: number, fails: object[], failCount: number, skipped: string[][], kept: boolean, done: boolean }} Subtree
 */
/** @type {Map<number, Subtree>} */
const subtrees = new Map();
let nextSubtree = 1;

/** The names from the subtree's top down to `entry` (for the few failures described). @param {Subtree} t @param {Buffer} [entry] */
function trail(t, entry) {
  const parts = t.frames.map((f) => f.name.toString('latin1'));
  if (entry) parts.push(entry.toString('latin1'));
  return parts;
}

/** @param {Subtree} t @param {Buffer | undefined} entry @param {any} e */
function subtreeFail(t, entry, e) {
  t.failCount++;
  if (t.fails.length < MAX_DESCRIBED) t.fails.push({ trail: trail(t, entry), ...failure(e) });
}

/** Something below `frame` stays: it is never removed (nor, in turn, its parents). @param {Subtree} _t @param {Frame} frame */
function keepUp(_t, frame) {
  frame.kept = true;
}

/** Close the listings and descriptors of the oldest frames beyond the limit (never the top one being read). @param {Subtree} t */
function limitOpen(t) {
  // Frames below `firstOpen` are all closed: the oldest go first, so the scan never starts over.
  let i = t.firstOpen;
  for (; t.open > MAX_OPEN_FRAMES && i < t.frames.length - 1; i++) {
    const f = t.frames[i];
    if (!f || f.fd === null) continue;
    if (f.dir) closeQuietly(f.dir);
    f.dir = null;
    fs.closeSync(f.fd);
    f.fd = null;
    t.open--;
  }
  t.firstOpen = i;
}

/** @param {Subtree} t @param {Frame} f @param {Buffer} name */
function unlinkEntry(t, f, name) {
  const p = at(/** @type {number} */ (f.fd), name);
  try {
    const st = t.countBytes ? fs.lstatSync(p, { throwIfNoEntry: false }) : null;
    fs.unlinkSync(p);
    t.removed++;
    if (st && st.isFile() && st.nlink === 1) t.bytes += st.blocks * 512;
    return true;
  } catch (e) {
    if (/** @type {any} */ (e).code === 'EISDIR') return false;
    if (/** @type {any} */ (e).code !== 'ENOENT') {
      subtreeFail(t, name, e);
      keepUp(t, f);
    }
    return true;
  }
}

/** Enter directory `name` of frame `f` (or of the base when `f` is null), unless it is not one or on another mount. @param {Subtree} t @param {Frame | null} f @param {Buffer} name */
function enter(t, f, name) {
  const parentFd = f ? /** @type {number} */ (f.fd) : t.baseFd;
  let fd;
  try {
    fd = fs.openSync(at(parentFd, name), O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
  } catch (e) {
    const code = /** @type {any} */ (e).code;
    if ((code === 'ELOOP' || code === 'ENOTDIR') && f) unlinkEntry(t, f, name);
    else if ((code === 'ELOOP' || code === 'ENOTDIR') && !f) {
      // The subtree's top is no longer a directory: removed as what it is.
      const dummy = { name, fd: t.baseFd, dir: null, dev: '', ino: '', kept: false };
      if (!unlinkEntry(t, dummy, name) || dummy.kept) t.kept = true;
    } else if (code !== 'ENOENT') {
      subtreeFail(t, name, e);
      if (f) keepUp(t, f);
      else t.kept = true;
    }
    return;
  }
  const id = identity(fd);
  if (id.dev !== t.want.dev || id.mnt !== t.want.mnt) {
    fs.closeSync(fd);
    if (t.skipped.length < MAX_DESCRIBED) t.skipped.push(trail(t, name));
    if (f) keepUp(t, f);
    else t.kept = true;
    return;
  }
  t.frames.push({ name: Buffer.from(name), fd, dir: null, dev: id.dev, ino: id.ino, kept: false });
  t.open++;
  limitOpen(t);
}

/** The top frame is read to the end: remove it through its parent (found again through `..` if it was closed). @param {Subtree} t */
function leave(t) {
  const f = /** @type {Frame} */ (t.frames.pop());
  if (f.dir) closeQuietly(f.dir);
  f.dir = null;
  const parent = t.frames.length > 0 ? t.frames[t.frames.length - 1] : null;
  try {
    if (parent && parent.fd === null) {
      const pfd = fs.openSync(`/proc/self/fd/${f.fd}/..`, O_RDONLY | O_DIRECTORY);
      const id = identity(pfd);
      if (id.dev !== parent.dev || id.ino !== parent.ino) {
        fs.closeSync(pfd);
        // Moved away under us: nothing above can be reached safely; the rest waits for the next run.
        t.frames.push(f);
        subtreeFail(t, undefined, { code: 'EMOVED', message: 'the directory was moved away while it was being deleted' });
        t.frames.pop();
        t.kept = true;
        t.done = true;
        return;
      }
      parent.fd = pfd;
      t.open++;
      // Every frame below a closed one is closed too.
      t.firstOpen = t.frames.length - 1;
    }
    if (f.kept) {
      if (parent) keepUp(t, parent);
      else t.kept = true;
      return;
    }
    const parentFd = parent ? /** @type {number} */ (parent.fd) : t.baseFd;
    try {
      fs.rmdirSync(at(parentFd, f.name));
      t.dirs++;
    } catch (e) {
      if (/** @type {any} */ (e).code !== 'ENOENT') {
        t.frames.push(f);
        subtreeFail(t, undefined, e);
        t.frames.pop();
        if (parent) keepUp(t, parent);
        else t.kept = true;
      }
    }
  } finally {
    if (f.fd !== null) {
      fs.closeSync(f.fd);
      t.open--;
    }
    if (!parent) t.done = true;
  }
}

/** Make at most `max` calls that remove something. @param {Subtree} t @param {number} max */
function step(t, max) {
  const start = t.removed + t.dirs + t.failCount;
  while (!t.done && t.removed + t.dirs + t.failCount - start < max) {
    const f = t.frames[t.frames.length - 1];
    if (!f) {
      t.done = true;
      break;
    }
    let entry;
    try {
      if (!f.dir) f.dir = fs.opendirSync(`/proc/self/fd/${f.fd}`, LIST_AS_BYTES);
      entry = f.dir.readSync();
    } catch (e) {
      subtreeFail(t, undefined, e);
      keepUp(t, f);
      entry = null;
    }
    if (entry === null) {
      leave(t);
      continue;
    }
    const name = /** @type {Buffer} */ (/** @type {unknown} */ (entry.name));
    // inode-key.ts's inodeKey() form, spelled out: a worker thread's CommonJS cannot import the agent's ES modules.
    const skip = t.mounts.get(`${f.dev}:${f.ino}`);
    if (skip && skip.has(name.toString('latin1'))) {
      if (t.skipped.length < MAX_DESCRIBED) t.skipped.push(trail(t, name));
      keepUp(t, f);
      continue;
    }
    if (entry.isDirectory() || !unlinkEntry(t, f, name)) enter(t, f, name);
  }
  const out = {
    removed: t.removed,
    bytes: t.bytes,
    dirs: t.dirs,
    fails: t.fails,
    failCount: t.failCount,
    skipped: t.skipped,
    kept: t.kept,
    done: t.done,
    ops: t.removed + t.dirs + t.failCount - start,
  };
  t.removed = t.bytes = t.dirs = t.failCount = 0;
  t.fails = [];
  t.skipped = [];
  return out;
}

/** @param {Subtree} t */
function closeSubtree(t) {
  for (const f of t.frames) {
    if (f.dir) closeQuietly(f.dir);
    if (f.fd !== null) fs.closeSync(f.fd);
  }
  t.frames = [];
}

module.exports = {
  /**
   * Start deleting directory `name` of `dirFd` and everything below it; `mounts` maps `<dev>:<ino>` of a
   * directory to the names of mount points in it.
   * @param {{ dirFd: number, name: Uint8Array, fs: { dev: string, mnt: string | null }, countBytes: boolean, mounts: [string, string[]][], max: number }} a
   */
  subtree({ dirFd, name, fs: want, countBytes, mounts, max }) {
    /** @type {Subtree} */
    const t = {
      baseFd: dirFd,
      want,
      countBytes,
      mounts: new Map(mounts.map(([k, v]) => [k, new Set(v)])),
      frames: [],
      open: 0,
      firstOpen: 0,
      removed: 0,
      bytes: 0,
      dirs: 0,
      fails: [],
      failCount: 0,
      skipped: [],
      kept: false,
      done: false,
    };
    enter(t, null, Buffer.from(name));
    if (t.frames.length === 0) t.done = true;
    const r = step(t, max);
    if (!r.done) {
      const id = nextSubtree++;
      subtrees.set(id, t);
      return { ...r, id };
    }
    return r;
  },
  /** @param {{ id: number, max: number }} a */
  subtreeStep({ id, max }) {
    const t = subtrees.get(id);
    if (!t) return { removed: 0, bytes: 0, dirs: 0, fails: [], failCount: 0, skipped: [], kept: true, done: true, ops: 0 };
    try {
      const r = step(t, max);
      if (r.done) subtrees.delete(id);
      return r;
    } catch (e) {
      subtrees.delete(id);
      closeSubtree(t);
      throw e;
    }
  },
  /** @param {{ id: number }} a */
  subtreeClose({ id }) {
    const t = subtrees.get(id);
    subtrees.delete(id);
    if (t) closeSubtree(t);
    return {};
  },
};
