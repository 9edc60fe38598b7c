// @ts-check
/**
 * A deletion thread (started by delete-threads.ts): bare synchronous calls,
 * each on ONE name inside a directory held open — `/proc/self/fd/<fd>/<name>`,
 * Node's stand-in for openat/unlinkat. The main thread makes every decision.
 *
 * Names are bytes (Buffers) from the directory listing to the unlink: a name
 * that is not UTF-8 must reach the kernel exactly as the kernel gave it.
 * Directories are read through a streaming handle, a bounded batch at a time,
 * so a directory of millions of entries never sits in memory whole.
 *
 * Plain CommonJS so that the build copies it as it is and tests and production
 * run the same file.
 */
'use strict';
const { parentPort } = require('node:worker_threads');
const fs = require('node:fs');
const { O_RDONLY, O_DIRECTORY, O_NOFOLLOW, LIST_AS_BYTES, at, failure, identity, closeQuietly } = require('./delete-fs.cjs');
const subtreeOps = require('./delete-subtree.cjs');

/**
 * Unlink one entry of a held directory; returns the blocks it freed when
 * counting (a file with other links frees nothing yet). Throws what unlink throws.
 * @param {number} dirFd @param {Uint8Array} name @param {boolean} countBytes
 */
function unlinkCounted(dirFd, name, countBytes) {
  const p = at(dirFd, name);
  const st = countBytes ? fs.lstatSync(p, { throwIfNoEntry: false }) : null;
  fs.unlinkSync(p);
  return st && st.isFile() && st.nlink === 1 ? st.blocks * 512 : 0;
}

/** Directory listings being read, by id: each stays in this thread until it is read to the end. */
/** @type {Map<number, fs.Dir>} */
const streams = new Map();
let nextStream = 1;

const ops = {
  ...subtreeOps,
  /**
   * Open directory `name` inside `dirFd` (never through a symlink). Unless it
   * is on another filesystem or mount, or not the directory `expect` names,
   * start listing it.
   * @param {{ dirFd: number, name: Uint8Array, fs: { dev: string, mnt: string | null }, expect?: { dev: string, ino: string } }} a
   */
  open({ dirFd, name, fs: want, expect }) {
    let fd;
    try {
      fd = fs.openSync(at(dirFd, name), O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
    } catch (e) {
      return { fail: failure(e) };
    }
    /** @type {{ fd: number, dev: string, ino: string, mnt: string | null, stream?: number, replaced?: boolean, listFail?: object }} */
    const r = { fd, ...identity(fd) };
    if (r.dev !== want.dev || r.mnt !== want.mnt) return r;
    if (expect && (expect.dev !== r.dev || expect.ino !== r.ino)) return { ...r, replaced: true };
    try {
      const stream = nextStream++;
      streams.set(stream, fs.opendirSync(`/proc/self/fd/${fd}`, LIST_AS_BYTES));
      r.stream = stream;
    } catch (e) {
      r.listFail = failure(e);
    }
    return r;
  },

  /**
   * Read up to `max` entries of a listing: unlink each that is not a
   * directory (counting its blocks when asked), hand back the directories.
   * Entries named in `skip` (mount points, as latin1 strings) are left alone.
   * @param {{ stream: number, dirFd: number, max: number, countBytes: boolean, skip: string[] }} a
   */
  read({ stream, dirFd, max, countBytes, skip }) {
    const dir = streams.get(stream);
    /** @type {Buffer[]} */ const dirs = [];
    /** @type {Buffer[]} */ const skipped = [];
    /** @type {object[]} */ const fails = [];
    let removed = 0;
    let bytes = 0;
    let files = 0;
    let end = false;
    let listFail = null;
    const skipSet = skip.length > 0 ? new Set(skip) : null;
    if (!dir) return { dirs, skipped, fails, removed, bytes, files, end: true, listFail: { code: 'EBADF', message: 'the listing was closed' } };
    try {
      while (files + dirs.length < max) {
        const entry = dir.readSync();
        if (entry === null) {
          end = true;
          break;
        }
        const name = /** @type {Buffer} */ (/** @type {unknown} */ (entry.name));
        if (skipSet && skipSet.has(name.toString('latin1'))) {
          skipped.push(name);
          continue;
        }
        if (entry.isDirectory()) {
          dirs.push(name);
          continue;
        }
        files++;
        try {
          bytes += unlinkCounted(dirFd, name, countBytes);
          removed++;
        } catch (e) {
          // Replaced by a directory since it was listed: it is walked like any other.
          if (/** @type {any} */ (e).code === 'EISDIR') {
            files--;
            dirs.push(name);
          } else fails.push({ name, ...failure(e) });
        }
      }
    } catch (e) {
      listFail = failure(e);
      end = true;
    }
    if (end) {
      streams.delete(stream);
      closeQuietly(dir);
    }
    return { dirs, skipped, fails, removed, bytes, files, end, listFail };
  },

  /** @param {{ stream: number }} a */
  closeStream({ stream }) {
    const dir = streams.get(stream);
    streams.delete(stream);
    if (dir) closeQuietly(dir);
    return {};
  },

  /** Unlink names that turned out not to be directories (a symlink where one was listed). @param {{ dirFd: number, names: Uint8Array[], countBytes: boolean }} a */
  unlink({ dirFd, names, countBytes }) {
    let removed = 0;
    let bytes = 0;
    /** @type {object[]} */ const fails = [];
    for (const name of names) {
      try {
        bytes += unlinkCounted(dirFd, name, countBytes);
        removed++;
      } catch (e) {
        fails.push({ name, ...failure(e) });
      }
    }
    return { removed, bytes, fails };
  },

  /** @param {{ dirFd: number, name: Uint8Array }} a */
  rmdir({ dirFd, name }) {
    try {
      fs.rmdirSync(at(dirFd, name));
      return {};
    } catch (e) {
      return { fail: failure(e) };
    }
  },

  /**
   * Open the parent of directory `fd`, check it is the one we came down
   * through, and remove `name` (that directory) from it.
   * @param {{ fd: number, name: Uint8Array, dev: string, ino: string }} a
   */
  rmdirUp({ fd, name, dev, ino }) {
    let pfd;
    try {
      pfd = fs.openSync(`/proc/self/fd/${fd}/..`, O_RDONLY | O_DIRECTORY);
    } catch (e) {
      return { fail: failure(e) };
    }
    const id = identity(pfd);
    if (id.dev !== dev || id.ino !== ino) {
      fs.closeSync(pfd);
      return { fail: { code: 'EMOVED', message: 'the directory was moved away while it was being deleted' } };
    }
    try {
      fs.rmdirSync(at(pfd, name));
      return { fd: pfd };
    } catch (e) {
      return { fd: pfd, rmdirFail: failure(e) };
    }
  },
};

if (parentPort) {
  const port = parentPort;
  port.on('message', (/** @type {{ id: number, op: keyof typeof ops, args: any }} */ { id, op, args }) => {
    try {
      port.postMessage({ id, value: ops[op](args) });
    } catch (e) {
      port.postMessage({ id, error: failure(e) });
    }
  });
}
