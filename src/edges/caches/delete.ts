/**
 * Deleting a tree, safely and fast (used on the trash only).
 *
 * Safety (rule 5 of safety.ts). Every call acts on ONE name inside a directory
 * we hold open — `/proc/self/fd/<fd>/<name>`, Node's stand-in for the
 * openat/unlinkat that `rm -rf` uses — never on a long path resolved anew:
 * - A directory is entered with O_DIRECTORY|O_NOFOLLOW relative to its open
 *   parent, so a symlink is never followed (it fails to open, and is then
 *   unlinked as a link). A task still running inside a purged cache cannot
 *   win a race by swapping a directory for a symlink between our check and
 *   our unlink: there is no second lookup for it to redirect.
 * - Climbing back up to remove an emptied directory opens `<fd>/..` and checks
 *   it is the very directory (device, inode) we came down through.
 * - A directory on another filesystem than the top's parent — another st_dev,
 *   or another mount (mnt_id in /proc/self/fdinfo; a bind mount from the same
 *   filesystem has the same st_dev) — is never listed: it is left alone with
 *   everything below it and reported in `skippedMounts`. Entries listed in
 *   /proc/self/mountinfo as mount points (a file can be bind-mounted too) are
 *   skipped the same way, recognised by the directory that holds them and
 *   their name; that table follows renames, so a mount moved into the trash
 *   is found at its trash path.
 * - Names are bytes from the listing to the unlink, so a name that is not
 *   UTF-8 is deleted (and its bytes counted) like any other.
 * - A failure on one entry is recorded with its path and the walk goes on; the
 *   directories above it stay. ENOENT (someone else removed it) is no failure.
 *
 * How: delete-walk.ts (the schedule), delete-threads.ts and delete-thread.cjs
 * (the calls), token-bucket.ts (the rate limit).
 *
 * Requires Linux /proc (the agent's platform); without it deletion refuses to
 * start rather than fall back to path-based calls that can follow a swapped
 * symlink.
 */
import { constants, existsSync, type BigIntStats } from 'node:fs';
import { lstat, open, readFile, realpath } from 'node:fs/promises';
import path from 'node:path';
import { errnoCode, errorMessage, DeleteUnavailableError } from '../../errors.js';
import { isInside } from './proc.js';
import { mountIdOf, type HeldDir } from './held-dir.js';
import { inodeKey } from './inode-key.js';
import { Walk } from './delete-walk.js';
import type { WalkStart } from './delete-dirs.js';
import { describe, emptyReport, type DeleteOptions, type DeleteReport } from './delete-report.js';

export { DeleteUnavailableError, emptyReport, type DeleteOptions, type DeleteReport };
export { addReports } from './delete-report.js';
export { TokenBucket, realClock, type Clock } from './token-bucket.js';

/** Delete `top` and everything below it on its parent's filesystem. A symlink or file at `top` is unlinked itself. */
export function deleteTree(top: string, opts: DeleteOptions = {}): Promise<DeleteReport> {
  return walkFrom(top, false, opts);
}

/** Delete everything inside `dir` (on its parent's filesystem), keeping `dir` itself. */
export function deleteContents(dir: string, opts: DeleteOptions = {}): Promise<DeleteReport> {
  return walkFrom(dir, true, opts);
}

/**
 * Delete everything inside the entry `name` of a directory the caller holds
 * open, keeping that entry, provided it is still the directory `expect`
 * (a trash checked by its caller).
 */
export async function deleteContentsAt(parent: HeldDir, name: string, expect: BigIntStats, opts: DeleteOptions = {}): Promise<DeleteReport> {
  requireProc();
  const report = emptyReport();
  try {
    const realParent = await realpath(parent.at('.'));
    await new Walk(
      report,
      {
        parentFd: parent.fd,
        parentId: { dev: String(parent.st.dev), ino: String(parent.st.ino) },
        fs: { dev: String(parent.st.dev), mnt: parent.mnt },
        parentPath: path.dirname(path.join(parent.path, name)),
        topName: Buffer.from(name),
        keepTop: true,
        expectTop: { dev: String(expect.dev), ino: String(expect.ino) },
        mounts: await mountsBelow(path.join(realParent, name)),
      },
      opts,
    ).run();
  } catch (err) {
    report.failures.push({ path: path.join(parent.path, name), error: describe(err) });
  }
  return report;
}

function requireProc(): void {
  if (!existsSync('/proc/self/fd')) {
    throw new DeleteUnavailableError('cannot delete safely without /proc (Linux procfs): mount /proc; the trash is kept until then');
  }
}

/**
 * Mount points at or below `top` in this process's mount table, keyed by the
 * directory that holds each (`<dev>:<ino>`) with their names as latin1
 * strings (bytes): the walk recognises them without building a path per
 * directory, so its memory does not grow with the depth of the tree. A mount
 * whose parent cannot be looked up (a path past PATH_MAX) is still caught when
 * opened, by its device or mount id; a bind-mounted file there fails to unlink
 * (EBUSY) and is reported.
 */
async function mountsBelow(top: string): Promise<Map<string, string[]>> {
  const keyed = new Map<string, string[]>();
  let text: string;
  try {
    text = await readFile('/proc/self/mountinfo', 'latin1');
  } catch {
    return keyed;
  }
  const topBytes = Buffer.from(top).toString('latin1');
  for (const line of text.split('\n')) {
    const field = line.split(' ')[4];
    if (field === undefined) continue;
    const point = field.replace(/\\([0-7]{3})/g, (_, oct: string) => String.fromCharCode(parseInt(oct, 8)));
    if (!isInside(point, topBytes) || point === '/') continue;
    try {
      const st = await lstat(Buffer.from(path.dirname(point), 'latin1'), { bigint: true });
      const key = inodeKey(st);
      keyed.set(key, [...(keyed.get(key) ?? []), path.basename(point)]);
    } catch {
      // Unreachable by path: see above.
    }
  }
  return keyed;
}

async function walkFrom(target: string, keepTop: boolean, opts: DeleteOptions): Promise<DeleteReport> {
  requireProc();
  const report = emptyReport();
  const top = path.resolve(target);
  const parentPath = path.dirname(top);
  const name = path.basename(top);
  if (parentPath === top) throw new DeleteUnavailableError(`refusing to delete ${top}: it is a filesystem root`);
  // The path up to the last component is the caller's (a root or trash resolved at start); the last component is never followed.
  let parent: { fd: number; close(): Promise<void> };
  try {
    parent = await open(parentPath, constants.O_RDONLY | constants.O_DIRECTORY);
  } catch (err) {
    if (errnoCode(err) !== 'ENOENT') report.failures.push({ path: top, error: `cannot open its parent: ${errnoCode(err) ?? ''} ${errorMessage(err)}`.trim() });
    return report;
  }
  try {
    const st = await lstat(`/proc/self/fd/${parent.fd}/.`, { bigint: true });
    const start: WalkStart = {
      parentFd: parent.fd,
      parentId: { dev: String(st.dev), ino: String(st.ino) },
      fs: { dev: String(st.dev), mnt: await mountIdOf(parent.fd) },
      parentPath,
      topName: Buffer.from(name),
      keepTop,
      mounts: await mountsBelow(path.join(await realpath(parentPath), name)),
    };
    await new Walk(report, start, opts).run();
  } catch (err) {
    report.failures.push({ path: top, error: describe(err) });
  } finally {
    await parent.close();
  }
  return report;
}
