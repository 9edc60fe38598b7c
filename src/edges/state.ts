/**
 * The agent's persisted state and the lock on its directory.
 *
 * - One agent per state directory: an exclusive flock(2) on `<dir>/lock`, held
 *   for the process's life and released by the kernel even on SIGKILL. The
 *   file also holds the holder's pid, so a second agent can say who it is.
 * - The state file is written atomically (temporary file, fsync, rename, fsync
 *   of the directory), mode 0600: a crash leaves either the old or the new
 *   state, never a torn one.
 * - A state file that can't be read back is moved aside and the agent starts
 *   fresh (a full query without `since`), loudly: refusing to start would stop
 *   all purging on that worker, while a full query only repeats purges.
 */
import { open, readFile, readdir, rename, mkdir, unlink, chmod, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import * as z from '../validation.js';
import { StateLockedError, StateWriteError, errnoCode, errorMessage } from '../errors.js';
import { tryFlock, FlockUnavailableError } from './flock.js';
import type { Logger } from '../log.js';
import type { PendingPurge } from '../core/judge.js';
import { faultPoint } from '../fault.js';

const pendingSchema = z.object({
  name: z.string(),
  path: z.string(),
  key: z.string(),
  beforeMs: z.number(),
  reason: z.enum(['in-use', 'failed']),
  since: z.number(),
  lastError: z.exactOptional(z.string()),
  location: z.exactOptional(z.string()),
});

const leaseSchema = z.object({
  cacheName: z.string(),
  owner: z.string(),
  expiresAt: z.number(),
  ttlSeconds: z.number(),
  acquiredAt: z.number(),
});

const recordSchema = z.object({
  cacheName: z.string(),
  beforeMs: z.number(),
  receivedAt: z.number(),
  judged: z.array(z.string()),
  purged: z.number(),
  appliedAt: z.nullable(z.number()),
});

const identitySchema = z.object({
  service: z.string(),
  workerPool: z.string(),
  locations: z.array(z.string()),
});

const stateSchema = z.object({
  version: z.literal(2),
  /** What the cursor was taken for (src/core/cursor.ts); null when unknown. */
  identity: z.nullable(identitySchema),
  /** Local start time (ms) of the last successful, applied query. */
  cursor: z.nullable(z.number()),
  /** The latest wall-clock time the agent has seen: detects the clock jumping back. */
  latestClock: z.nullable(z.number()),
  firstSeen: z.record(z.string(), z.number()),
  pending: z.array(pendingSchema),
  /** The purge requests received and which locations judged them (src/core/records.ts). */
  records: z.array(recordSchema),
  leases: z.array(leaseSchema),
  /** When each cache (by name) was last released by a lease or exec: eviction's notion of last use. */
  lastUsed: z._default(z.record(z.string(), z.number()), {}),
});

/**
 * The first version had no identity and no records. It is read as a state
 * whose cursor was taken for something unknown, so the first query after an
 * upgrade is a full one, and every request it returns is recorded afresh.
 */
const versionOneSchema = z.extend(stateSchema, { version: z.literal(1), identity: z._default(z.null(), null), records: z._default(z.array(recordSchema), []) });

export type AgentState = z.infer<typeof stateSchema>;
export type StoredPending = PendingPurge;

export function emptyState(): AgentState {
  return { version: 2, identity: null, cursor: null, latestClock: null, firstSeen: {}, pending: [], records: [], leases: [], lastUsed: {} };
}

function parseState(value: unknown): ReturnType<typeof stateSchema.safeParse> {
  const parsed = stateSchema.safeParse(value);
  if (parsed.success) return parsed;
  const old = versionOneSchema.safeParse(value);
  return old.success ? { success: true, data: { ...old.data, version: 2 } } : parsed;
}

export const STATE_FILE = 'state.json';
export const LOCK_FILE = 'lock';

export interface OpenOptions {
  logger: Logger;
  /** For short-lived commands: retry a busy lock for this long before giving up. */
  waitMs?: number;
}

export class StateStore {
  private constructor(
    readonly dir: string,
    private lockHandle: FileHandle | null,
    public state: AgentState,
  ) {}

  get file(): string {
    return path.join(this.dir, STATE_FILE);
  }

  /** Lock the state directory and load the state. Throws StateLockedError when another agent holds it. */
  static async open(dir: string, options: OpenOptions): Promise<StateStore> {
    await mkdir(dir, { recursive: true, mode: 0o700 });
    const handle = await lockDirectory(dir, options);
    try {
      await removeStaleTemporaries(dir);
      const state = await loadState(dir, options.logger);
      return new StateStore(dir, handle, state);
    } catch (err) {
      await handle.close();
      throw err;
    }
  }

  /** Read the state without taking the lock (for read-only commands such as `caches`). */
  static async peek(dir: string, logger: Logger): Promise<AgentState> {
    return loadState(dir, logger, { moveAside: false });
  }

  async save(state: AgentState = this.state): Promise<void> {
    await writeAtomic(this.file, JSON.stringify(state) + '\n');
    this.state = state;
  }

  async close(): Promise<void> {
    const handle = this.lockHandle;
    this.lockHandle = null;
    if (handle === null) return;
    // Clear the pid while still holding the lock: an agent that takes the lock
    // next writes its own, but one that loses to it in between must not read
    // ours and name a process that has gone.
    await handle.truncate(0).catch(() => undefined);
    await handle.close();
  }
}

async function lockDirectory(dir: string, options: OpenOptions): Promise<FileHandle> {
  const lockPath = path.join(dir, LOCK_FILE);
  const handle = await open(lockPath, 'a+', 0o600);
  const deadline = Date.now() + (options.waitMs ?? 0);
  try {
    for (;;) {
      let result: 'locked' | 'busy';
      try {
        result = await tryFlock(handle.fd, 'exclusive');
      } catch (err) {
        if (!(err instanceof FlockUnavailableError)) throw err;
        // Without flock(1) fall back to the pid in the file: weaker (a stale
        // pid could be reused), so say so once.
        options.logger.warn({ lock: lockPath }, 'flock(1) not found; falling back to a pid check for the state lock (install util-linux)');
        const holder = await readHolderPid(lockPath);
        result = holder !== null && holder !== process.pid && isAlive(holder) ? 'busy' : 'locked';
      }
      if (result === 'locked') break;
      if (Date.now() >= deadline) throw new StateLockedError(dir, await holderPid(lockPath));
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    await writeHolderPid(handle, lockPath, options.logger);
    await chmod(lockPath, 0o600);
    return handle;
  } catch (err) {
    await handle.close();
    throw err;
  }
}

/**
 * The holder's pid, as it wrote it into the lock file. A holder writes it
 * right after taking the lock, so an agent that lost the race by a moment may
 * find the file empty, or still naming a holder that crashed: wait, a few
 * seconds at most and only on this failure path, for a live pid before
 * saying "unknown".
 */
async function holderPid(lockPath: string): Promise<number | null> {
  for (let attempt = 0; attempt < 60; attempt++) {
    const pid = await readHolderPid(lockPath);
    if (pid !== null && pid !== process.pid && isAlive(pid)) return pid;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return null;
}

/**
 * The pid is a courtesy to the next agent's error message; the flock is the
 * lock. So a disk too full to take four bytes must not stop the agent: it
 * runs, and a second agent reports the holder as unknown.
 */
async function writeHolderPid(handle: FileHandle, lockPath: string, logger: Logger): Promise<void> {
  try {
    await handle.truncate(0);
    await handle.write(`${process.pid}\n`, 0);
  } catch (err) {
    logger.warn(
      { lock: lockPath, err: errorMessage(err) },
      "cannot write this agent's pid into the state lock file; a second agent will not be able to name it",
    );
  }
}

async function readHolderPid(lockPath: string): Promise<number | null> {
  try {
    const pid = Number.parseInt((await readFile(lockPath, 'utf8')).trim(), 10);
    return Number.isSafeInteger(pid) && pid > 0 ? pid : null;
  } catch {
    return null;
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return errnoCode(err) === 'EPERM';
  }
}

async function loadState(dir: string, logger: Logger, opts = { moveAside: true }): Promise<AgentState> {
  const file = path.join(dir, STATE_FILE);
  let text: string | null = null;
  let reason = '';
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return emptyState();
    // A directory where the state file should be is as unreadable as garbage in it:
    // move it aside like any corrupt state, rather than refuse to start.
    if (errnoCode(err) !== 'EISDIR') throw err;
    reason = errorMessage(err);
  }
  if (text !== null) {
    try {
      const parsed = parseState(JSON.parse(text));
      if (parsed.success) return parsed.data;
      reason = parsed.error.issues.map((issue) => `${issue.path.join('.') || '(root)'}: ${issue.message}`).join('; ');
    } catch (err) {
      reason = errorMessage(err);
    }
  }
  if (!opts.moveAside) return emptyState();
  const aside = `${file}.corrupt-${new Date().toISOString().replace(/[:.]/g, '-')}`;
  await rename(file, aside);
  logger.error(
    { stateFile: file, movedTo: aside, reason },
    'STATE FILE CORRUPT: moved it aside and starting fresh; the next query asks for every open purge request (no since)',
  );
  return emptyState();
}

/**
 * A process killed between writing its temporary state file and renaming it
 * (writeAtomic) leaves `state.json.tmp-<pid>` behind, and each crash of a
 * crash loop would add one. Only the lock
 * holder writes the state, so once we hold the lock any such file is debris.
 */
async function removeStaleTemporaries(dir: string): Promise<void> {
  const prefix = `${STATE_FILE}.tmp-`;
  for (const name of await readdir(dir)) {
    if (name.startsWith(prefix)) await unlink(path.join(dir, name)).catch(() => {});
  }
}

/** Write a file so that readers see the old or the new content, never a mix: temp file, fsync, rename, fsync dir. */
export async function writeAtomic(file: string, content: string, mode = 0o600): Promise<void> {
  const tmp = `${file}.tmp-${process.pid}`;
  let handle: FileHandle | undefined;
  try {
    handle = await open(tmp, 'w', mode);
    await handle.writeFile(content);
    await handle.sync();
    await handle.close();
    handle = undefined;
    await faultPoint('state-write');
    await rename(tmp, file);
    await fsyncDir(path.dirname(file));
  } catch (err) {
    await handle?.close().catch(() => {});
    await unlink(tmp).catch(() => {});
    const code = errnoCode(err);
    const hint =
      code === 'ENOSPC' ? ' (the disk is full: free space on it)' : code === 'EACCES' || code === 'EPERM' ? " (check the directory's owner and mode)" : '';
    throw new StateWriteError(`cannot write ${file}: ${errorMessage(err)}${hint}; the previous state is kept`, { cause: err });
  }
}

async function fsyncDir(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
