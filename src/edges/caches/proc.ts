/**
 * The pure half of the in-use check: parsing the text that Linux's /proc
 * exposes, and deciding whether a path lies inside a cache. No I/O here, so
 * every rule is unit-tested on sample text; src/edges/caches/inuse.ts reads /proc
 * and feeds these functions.
 */
import path from 'node:path';

/** One line of /proc/locks (or an fdinfo `lock:` line) for a lock that is held, not waited for. */
export interface ProcLock {
  /** FLOCK, POSIX, OFDLCK, LEASE, DELEG, ... as the kernel prints it. */
  type: string;
  /** READ (shared), WRITE (exclusive), UNLCK (a lease being broken). */
  access: string;
  /**
   * The pid the kernel recorded: the locker, which may have exited since
   * (flock(1) handing a lock to its parent, a fork that inherited the
   * descriptor). -1 for OFD locks, which belong to no process; 0 when the
   * holder is in a pid namespace we cannot see.
   */
  pid: number;
  /** "major:minor" in decimal: the same form devOf() gives for a stat result. */
  dev: string;
  ino: bigint;
}

/** The locks that say "in use": flock(2), POSIX fcntl and open-file-description locks. */
export const USE_LOCK_TYPES: ReadonlySet<string> = new Set(['FLOCK', 'POSIX', 'OFDLCK']);

// "12: POSIX  ADVISORY  WRITE 1234 fe:01:5678 0 EOF"; "12: -> FLOCK ..." is a
// waiter, which holds nothing. Locks on no inode print "<none>:0" and don't match.
const LOCK_LINE = /^\s*\d+:\s+(->\s+)?(\S+)\s+\S+\s+(\S+)\s+(-?\d+)\s+([0-9a-fA-F]+):([0-9a-fA-F]+):(\d+)\s/;

/** Parse /proc/locks. Waiting requests and malformed lines are skipped. */
export function parseProcLocks(text: string): ProcLock[] {
  const locks: ProcLock[] = [];
  for (const line of text.split('\n')) {
    const [, waiter, type, access, pid, major, minor, ino] = LOCK_LINE.exec(line) ?? [];
    // No match leaves every group undefined; a waiter ("->") holds nothing.
    if (waiter !== undefined || !type || !access || !pid || !major || !minor || !ino) continue;
    locks.push({ type, access, pid: Number(pid), dev: `${parseInt(major, 16)}:${parseInt(minor, 16)}`, ino: BigInt(ino) });
  }
  return locks;
}

/**
 * The locks shown in /proc/<pid>/fdinfo/<fd>: the kernel lists there only the
 * locks owned through that very open file, so a hit names the real holder even
 * when /proc/locks names a pid that has exited.
 */
export function parseFdinfoLocks(text: string): ProcLock[] {
  const lines = text.split('\n').filter((l) => l.startsWith('lock:'));
  return parseProcLocks(lines.map((l) => l.slice('lock:'.length)).join('\n'));
}

/** Major and minor of a userspace st_dev (glibc's gnu_dev_major/minor encoding), as "major:minor". */
export function devOf(stDev: bigint): string {
  const major = ((stDev >> 8n) & 0xfffn) | ((stDev >> 32n) & ~0xfffn);
  const minor = (stDev & 0xffn) | ((stDev >> 12n) & ~0xffn);
  return `${major}:${minor}`;
}

/** The key /proc/locks and a stat result share: "major:minor:inode". */
export function lockKey(dev: string, ino: bigint): string {
  return `${dev}:${ino}`;
}

// The mapping's path starts after the inode column; file paths are absolute
// and pseudo-mappings are bracketed, so skipping blanks never eats a name.
const MAPS_LINE = /^\S+\s+\S+\s+\S+\s+([0-9a-fA-F]+):([0-9a-fA-F]+)\s+(\d+)\s+(\/.*)$/;

/** One file mapping of /proc/<pid>/maps: its path, and the lock key of the file mapped. */
export interface MappedFile {
  path: string;
  key: string;
}

/**
 * One line of /proc/<pid>/maps, if it maps a file. The kernel escapes only a
 * newline in a name (as \012), which is decoded; a ` (deleted)` suffix is
 * kept, so callers see what the kernel said (see pathForms).
 */
export function parseMapsLine(line: string): MappedFile | undefined {
  const [, major, minor, ino, file] = MAPS_LINE.exec(line) ?? [];
  if (!major || !minor || !ino || !file) return undefined;
  const dev = `${parseInt(major, 16)}:${parseInt(minor, 16)}`;
  return { path: file.replaceAll('\\012', '\n'), key: lockKey(dev, BigInt(ino)) };
}

/** The distinct file paths in /proc/<pid>/maps. */
export function parseMaps(text: string): string[] {
  const paths = new Set<string>();
  for (const line of text.split('\n')) {
    const mapped = parseMapsLine(line);
    if (mapped) paths.add(mapped.path);
  }
  return [...paths];
}

const DELETED = ' (deleted)';

/**
 * The forms of a path read from /proc worth testing for containment: as given
 * and, when the kernel marked it deleted, without the marker. A file really
 * named "x (deleted)" stays ambiguous, so both are tried.
 */
export function pathForms(p: string): string[] {
  return p.endsWith(DELETED) ? [p, p.slice(0, -DELETED.length)] : [p];
}

/** Exact containment: `dir` itself or below it; "/c/a" does not contain "/c/ab/x". */
export function isInside(p: string, dir: string): boolean {
  if (dir === '/') return p.startsWith('/');
  return p === dir || (p.startsWith(dir) && p.charCodeAt(dir.length) === 0x2f);
}

/** /proc/<pid>/cmdline as one line: NULs become spaces, long lines are cut. */
export function formatCmdline(raw: string, max = 200): string {
  const line = raw
    .replace(/\0+$/, '')
    .replaceAll('\0', ' ')
    // C0 controls and DEL garble a log line; of the controls (\p{Cc}) only the C1 range is kept as it was.
    .replace(/\p{Cc}/gu, (c) => (c <= '\u001f' || c === '\u007f' ? '?' : c));
  return line.length > max ? `${line.slice(0, max - 1)}…` : line;
}

/** One mount from /proc/<pid>/mountinfo. */
export interface Mount {
  /** "major:minor" of the filesystem, as in devOf(). */
  dev: string;
  /** The directory of that filesystem mounted here ("/" unless a bind mount or subvolume). */
  root: string;
  /** Where it is mounted, as the namespace sees it. */
  mountPoint: string;
}

// mountinfo escapes space, tab, newline and backslash as octal.
function unescapeOctal(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, oct: string) => String.fromCharCode(parseInt(oct, 8)));
}

/** Parse /proc/<pid>/mountinfo, in the kernel's order (later mounts stack on earlier ones). */
export function parseMountinfo(text: string): Mount[] {
  const mounts: Mount[] = [];
  for (const line of text.split('\n')) {
    const [, , dev, root, mountPoint] = line.split(' ');
    if (dev === undefined || root === undefined || mountPoint === undefined || !/^\d+:\d+$/.test(dev)) continue;
    mounts.push({ dev, root: unescapeOctal(root), mountPoint: unescapeOctal(mountPoint) });
  }
  return mounts;
}

/** A namespace's mounts by mount point, the latest mount at each point winning (it hides the ones below). */
export type MountIndex = ReadonlyMap<string, Mount>;

export function indexMounts(mounts: readonly Mount[]): MountIndex {
  const index = new Map<string, Mount>();
  for (const m of mounts) index.set(m.mountPoint, m);
  return index;
}

function isMountIndex(mounts: readonly Mount[] | MountIndex): mounts is MountIndex {
  return mounts instanceof Map;
}

/**
 * Where a path of some mount namespace lives on its filesystem: the device and
 * the path from that filesystem's root. Two namespaces agree on this even when
 * they mount the cache at different places (a container's bind mount), which
 * is how a containerised process's paths are compared with the agent's. A
 * lookup per ancestor of `p`: the cost does not grow with the number of mounts.
 */
export function fsLocation(p: string, mounts: readonly Mount[] | MountIndex): { dev: string; fsPath: string } | undefined {
  const index = isMountIndex(mounts) ? mounts : indexMounts(mounts);
  if (!p.startsWith('/')) return undefined;
  let best: Mount | undefined;
  for (let at = p; ; at = path.posix.dirname(at)) {
    best = index.get(at);
    if (best || at === '/') break;
  }
  if (!best) return undefined;
  const rest = best.mountPoint === '/' ? p.slice(1) : p.slice(best.mountPoint.length + 1);
  return { dev: best.dev, fsPath: rest === '' ? best.root : path.posix.join(best.root, rest) };
}
