/**
 * Cache names ↔ directory names.
 *
 * A cache name is any string at all and arrives from the network, so it never
 * becomes a path component as it is. Its directory name is a reversible,
 * filesystem-safe encoding of its UTF-8 bytes:
 * - `A–Z a–z 0–9 _ . -` stand for themselves,
 * - except the dots of the run that begins a name (so no name encodes to `.`,
 *   `..` or a hidden entry, which belong to the agent),
 * - and every other byte is `%XX` in uppercase hex.
 * `a/b` ↔ `a%2Fb`, `..` ↔ `%2E%2E`, `.x` ↔ `%2Ex`, `a..b` ↔ `a..b`.
 *
 * A directory name that is not the canonical encoding of anything is taken
 * literally, so workers that name directories plainly keep working.
 */

/** The agent's trash, in each root and beside single caches (see trash.ts): hidden, so never a cache. */
export const TRASH_DIR_NAME = '.purge-cache-agent-trash';

/** NAME_MAX on Linux filesystems. */
export const MAX_DIR_NAME_BYTES = 255;

const PERCENT = 0x25;
const DOT = 0x2e;

function isPlainByte(b: number): boolean {
  return (
    (b >= 0x41 && b <= 0x5a) || // A-Z
    (b >= 0x61 && b <= 0x7a) || // a-z
    (b >= 0x30 && b <= 0x39) || // 0-9
    b === 0x5f || // _
    b === 0x2d || // -
    b === DOT
  );
}

const HEX = '0123456789ABCDEF';
const encoder = new TextEncoder();
const strictDecoder = new TextDecoder('utf-8', { fatal: true });

/**
 * The directory name for a cache name, or null when the name cannot be stored
 * exactly: empty, not well-formed Unicode (a lone surrogate would be silently
 * replaced by U+FFFD, making a different name), or longer than 255 bytes once
 * encoded.
 */
export function encodeCacheName(name: string): string | null {
  if (name.length === 0 || !name.isWellFormed()) return null;
  const bytes = encoder.encode(name);
  let out = '';
  let leadingDots = true;
  for (const b of bytes) {
    if (b !== DOT) leadingDots = false;
    if (isPlainByte(b) && !(b === DOT && leadingDots)) out += String.fromCharCode(b);
    else out += '%' + HEX.charAt(b >> 4) + HEX.charAt(b & 15);
    if (out.length > MAX_DIR_NAME_BYTES) return null;
  }
  return out;
}

/**
 * A name of plain characters that does not begin with a dot is its own
 * canonical encoding: no decoding to do. Most cache names are like this, and
 * a listing of ten thousand caches decodes every one of them.
 */
const PLAIN_NAME = /^[A-Za-z0-9_-][A-Za-z0-9_.-]*$/;

/** The cache name a directory name stands for (decoded if canonical, else literal). */
export function decodeDirName(dirName: string): string {
  if (PLAIN_NAME.test(dirName)) return dirName;
  const decoded = tryDecode(dirName);
  return decoded !== null && encodeCacheName(decoded) === dirName ? decoded : dirName;
}

/** True when `dirName` is the canonical encoding of some name. */
export function isCanonical(dirName: string): boolean {
  const decoded = tryDecode(dirName);
  return decoded !== null && encodeCacheName(decoded) === dirName;
}

function tryDecode(dirName: string): string | null {
  const bytes: number[] = [];
  for (let i = 0; i < dirName.length; i++) {
    const c = dirName.charCodeAt(i);
    if (c === PERCENT) {
      const hex = dirName.slice(i + 1, i + 3);
      if (!/^[0-9A-F]{2}$/.test(hex)) return null;
      bytes.push(parseInt(hex, 16));
      i += 2;
    } else if (c < 0x80 && isPlainByte(c)) {
      bytes.push(c);
    } else {
      return null;
    }
  }
  try {
    return strictDecoder.decode(new Uint8Array(bytes));
  } catch {
    return null;
  }
}

/** Entries whose names start with `.` belong to the agent (trash, locks): never caches. */
export function isAgentEntry(dirName: string): boolean {
  return dirName.startsWith('.');
}

/** Whether a string can be a directory entry that may be a cache at all. */
export function isLegalCacheDirName(dirName: string): boolean {
  return (
    dirName.length > 0 &&
    !dirName.includes('/') &&
    !dirName.includes('\0') &&
    !isAgentEntry(dirName) &&
    dirName.isWellFormed() &&
    Buffer.byteLength(dirName) <= MAX_DIR_NAME_BYTES
  );
}

/**
 * Every directory name in a root that stands for `name`: its encoding, and the
 * literal name when that is a legal directory name that is not itself the
 * canonical encoding of some other name.
 */
export function dirNamesFor(name: string): string[] {
  const out: string[] = [];
  const encoded = encodeCacheName(name);
  if (encoded !== null) out.push(encoded);
  if (name !== encoded && isLegalCacheDirName(name) && decodeDirName(name) === name) out.push(name);
  return out;
}
