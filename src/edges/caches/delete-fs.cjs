// @ts-check
/** What both kinds of deletion call share: one name inside a held directory, and a descriptor's identity. */
'use strict';
const fs = require('node:fs');

const { O_RDONLY, O_DIRECTORY, O_NOFOLLOW } = fs.constants;

/** `/proc/self/fd/<fd>/<name>`, as bytes. @param {number} fd @param {Uint8Array} name */
const at = (fd, name) => Buffer.concat([Buffer.from(`/proc/self/fd/${fd}/`), name]);

/** @param {any} e */
const failure = (e) => ({ code: (e && e.code) || 'EUNKNOWN', message: String((e && e.message) || e) });

/** @param {number} fd */
function mountId(fd) {
  try {
    const m = /^mnt_id:\s*(\d+)/m.exec(fs.readFileSync(`/proc/self/fdinfo/${fd}`, 'latin1'));
    return m?.[1] ?? null;
  } catch {
    return null;
  }
}

/** @param {number} fd */
function identity(fd) {
  const st = fs.fstatSync(fd, { bigint: true });
  return { dev: String(st.dev), ino: String(st.ino), mnt: mountId(fd) };
}

/**
 * Listing options that give names as bytes (a name need not be UTF-8). Node accepts the encoding 'buffer' here,
 * though its type declarations list only text encodings.
 */
const LIST_AS_BYTES = /** @type {fs.OpenDirOptions} */ (/** @type {unknown} */ ({ encoding: 'buffer', bufferSize: 128 }));

/** @param {fs.Dir} dir */
function closeQuietly(dir) {
  try {
    dir.closeSync();
  } catch {
    // Already closed: nothing to release.
  }
}

module.exports = { O_RDONLY, O_DIRECTORY, O_NOFOLLOW, LIST_AS_BYTES, at, failure, identity, closeQuietly };
