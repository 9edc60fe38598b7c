/**
 * Opening a trash directory, and deciding whether the agent may use it.
 *
 * Tasks may be able to write to a cache root, so the name
 * `<root>/.purge-cache-agent-trash` proves nothing: a task can put its own
 * directory there, or a symlink, or swap the two while the agent works. The
 * agent therefore holds the root (or a single cache's parent) and its trash
 * open — each opened without following a symlink — and acts only through those
 * descriptors (held-dir.ts). A trash is used only if it is a directory on the
 * same mount as its parent, owned by the agent's effective uid, with mode
 * exactly 0700: then no one else can reach what is renamed into it.
 *
 * A trash that fails those checks is refused, with an error that names it and
 * says how to fix it, and purges in that directory fail (other roots go on).
 * We do not move it aside or make a private one under another name: any name
 * the agent could pick beside it can be taken by a task beforehand just the
 * same, and renaming a task's entry around is one more action on names a task
 * controls. Only a task that can write to the root can cause this, and the
 * cure is the operator's: remove it, and make the root sticky (chmod +t) so
 * tasks cannot replace what the agent owns.
 */
import type { BigIntStats } from 'node:fs';
import { chmod, mkdir } from 'node:fs/promises';
import path from 'node:path';
import { errnoCode, errorMessage, TrashUnavailableError } from '../../errors.js';
import { TRASH_DIR_NAME } from '../../core/names.js';
import { holdDir, sameMount, type HeldDir } from './held-dir.js';

/** A trash and its parent (a root, or a single cache's parent), both held open. */
export interface OpenTrash {
  parent: HeldDir;
  trash: HeldDir;
  /** `<parent>/.purge-cache-agent-trash`, for messages and reports. */
  path: string;
}

const TRASH_MODE = 0o700n;

/** Why a directory may not serve as the agent's trash, or null when it may. Pure: stats in, reason out. */
export function trashProblem(trash: Pick<HeldDir, 'st' | 'mnt'>, parent: Pick<HeldDir, 'st' | 'mnt'>, euid: number): string | null {
  const st: BigIntStats = trash.st;
  if (!st.isDirectory()) return 'is not a directory';
  if (!sameMount(trash, parent)) return 'is a mount point (another filesystem than the caches)';
  if (st.uid !== BigInt(euid)) return `is owned by uid ${st.uid}, not by the agent (uid ${euid})`;
  const mode = st.mode & 0o7777n;
  if (mode !== TRASH_MODE) return `has mode ${mode.toString(8).padStart(4, '0')}, not 0700`;
  return null;
}

function refusal(trashPath: string, reason: string): TrashUnavailableError {
  return new TrashUnavailableError(
    `refusing the trash ${trashPath}: it ${reason}; purges in ${path.dirname(trashPath)} are refused until it is removed ` +
      `(the agent then creates its own, mode 0700). If tasks can write to ${path.dirname(trashPath)}, make it sticky (chmod +t) so they cannot replace it`,
  );
}

function euid(): number {
  return process.geteuid?.() ?? 0;
}

async function holdParent(parentPath: string): Promise<HeldDir> {
  try {
    return await holdDir(parentPath);
  } catch (err) {
    const why = errnoCode(err) === 'ELOOP' ? 'it is now a symlink (never followed)' : errorMessage(err);
    throw new TrashUnavailableError(`cannot open ${parentPath} to purge in it: ${why}`, { cause: err });
  }
}

/**
 * Hold `<parentPath>/.purge-cache-agent-trash` open, creating it if `create`
 * and it is missing. Null when it is missing and not created. Throws
 * TrashUnavailableError when it exists but is not the agent's.
 */
export async function openTrash(parentPath: string, opts: { create: boolean }): Promise<OpenTrash | null> {
  const trashPath = path.join(parentPath, TRASH_DIR_NAME);
  const parent = await holdParent(parentPath);
  let trash: HeldDir | undefined;
  try {
    let created = false;
    if (opts.create) {
      try {
        await mkdir(parent.at(TRASH_DIR_NAME), { mode: 0o700 });
        created = true;
      } catch (err) {
        if (errnoCode(err) !== 'EEXIST') throw new TrashUnavailableError(`cannot create the trash ${trashPath}: ${errorMessage(err)}`, { cause: err });
      }
    }
    try {
      trash = await holdDir(parent.at(TRASH_DIR_NAME), trashPath);
    } catch (err) {
      const code = errnoCode(err);
      if (code === 'ENOENT' && !opts.create) return null;
      if (code === 'ELOOP') throw refusal(trashPath, 'is a symlink (never followed)');
      if (code === 'ENOTDIR') throw refusal(trashPath, 'is not a directory');
      throw new TrashUnavailableError(`cannot open the trash ${trashPath}: ${errorMessage(err)}`, { cause: err });
    }
    // A umask may have narrowed the mode of the directory we just made; it is ours, so set it exactly.
    if (created && trash.st.isDirectory() && trash.st.uid === BigInt(euid()) && (trash.st.mode & 0o7777n) !== TRASH_MODE) {
      await chmod(trash.at('.'), 0o700);
      const reopened = await holdDir(parent.at(TRASH_DIR_NAME), trashPath);
      await trash.close();
      trash = reopened;
    }
    const problem = trashProblem(trash, parent, euid());
    if (problem) throw refusal(trashPath, problem);
    return { parent, trash, path: trashPath };
  } catch (err) {
    await trash?.close();
    await parent.close();
    throw err;
  }
}

/** Release both descriptors. Never throws: a failed close is no reason to fail a purge or a cycle. */
export async function closeTrash(open: OpenTrash): Promise<void> {
  await open.trash.close().catch(() => {});
  await open.parent.close().catch(() => {});
}

/**
 * The trashes opened for one batch of purges, by parent directory: a thousand
 * purges open each trash once. A failed open is not remembered: the next
 * purge tries again. close() releases every descriptor.
 */
export class TrashHandles {
  private readonly opened = new Map<string, Promise<OpenTrash>>();
  private salt: string | null = null;
  private count = 0;

  /**
   * A fresh name for an entry of a trash, of bounded length (the cache's own
   * name may already be 255 bytes long): the time, a random salt drawn once
   * per batch, and a counter. Unique without asking the kernel for
   * randomness on every purge of a batch of thousands. node:crypto is loaded
   * on the first purge only: a cycle with nothing to purge never needs it.
   */
  async entryName(): Promise<string> {
    this.salt ??= (await import('node:crypto')).randomBytes(6).toString('hex');
    return `${Date.now()}-${this.salt}-${(this.count++).toString(36)}`;
  }

  get(parentPath: string): Promise<OpenTrash> {
    let open = this.opened.get(parentPath);
    if (!open) {
      open = openTrash(parentPath, { create: true }) as Promise<OpenTrash>;
      this.opened.set(parentPath, open);
      open.catch(() => this.opened.delete(parentPath));
    }
    return open;
  }

  async close(): Promise<void> {
    const all = [...this.opened.values()];
    this.opened.clear();
    for (const open of await Promise.allSettled(all)) if (open.status === 'fulfilled') await closeTrash(open.value);
  }
}
