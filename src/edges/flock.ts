import { spawn } from 'node:child_process';
import type { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { errnoCode, FlockUnavailableError } from '../errors.js';

export { FlockUnavailableError } from '../errors.js';

/**
 * flock(2) from Node, which has no binding for it.
 *
 * A flock lock belongs to the open file description, not to the process. We
 * open the file ourselves and hand that descriptor to flock(1) as fd 3: the
 * child locks the shared description and exits, and the lock stays held for as
 * long as *our* descriptor is open. Closing it (or dying, even by SIGKILL)
 * releases the lock — exactly the kernel semantics we want, without a native
 * addon. Cost: one short-lived process per lock (a few ms).
 *
 * Note for readers of /proc/locks: the lock is recorded under the pid of the
 * flock(1) child, which has already exited; identify locks by device:inode.
 */

export type FlockMode = 'exclusive' | 'shared';

export type FlockResult = 'locked' | 'busy';

/** flock(1) exits with this when the lock is held elsewhere (`-E 75`). */
const CONFLICT_EXIT = 75;

/**
 * Try to take a lock on `fd` without blocking. Resolves 'busy' when another
 * open file description holds a conflicting lock. Uses flock(1), or perl when
 * flock(1) is missing; rejects with FlockUnavailableError when neither is
 * installed.
 */
export async function tryFlock(fd: number, mode: FlockMode): Promise<FlockResult> {
  try {
    return await runFlock(fd, [mode === 'exclusive' ? '-x' : '-s', '-n']);
  } catch (err) {
    if (!(err instanceof FlockUnavailableError) || !(await perlAvailable())) throw err;
    const [result] = await perlFlock([fd], mode);
    if (result === undefined) throw new Error('internal error: perl answered no lock result for one descriptor');
    return result;
  }
}

/** Release a lock early without closing the descriptor. */
export async function unflock(fd: number): Promise<void> {
  await runFlock(fd, ['-u']);
}

/** What a child writes to a piped stream, as it arrives (a 'pipe' in stdio always gives a stream). */
function collect(stream: Readable | null): { text: string } {
  const collected = { text: '' };
  stream?.setEncoding('utf8').on('data', (chunk: string) => {
    collected.text += chunk;
  });
  return collected;
}

const NO_LOCK_TOOL = 'neither flock(1) nor perl was found on PATH, so the agent cannot take flock(2) locks; install util-linux (flock) or perl';

function runFlock(fd: number, flags: string[]): Promise<FlockResult> {
  return new Promise((resolve, reject) => {
    const child = spawn('flock', [...flags, '-E', String(CONFLICT_EXIT), '3'], {
      stdio: ['ignore', 'ignore', 'pipe', fd],
    });
    const stderr = collect(child.stderr);
    child.on('error', (err) => {
      if (errnoCode(err) === 'ENOENT') {
        reject(new FlockUnavailableError(NO_LOCK_TOOL));
      } else reject(err);
    });
    child.on('close', (code) => {
      if (code === 0) resolve('locked');
      else if (code === CONFLICT_EXIT) resolve('busy');
      else reject(new Error(`flock(1) ${flags.join(' ')} failed with exit code ${code}: ${stderr.text.trim()}`));
    });
  });
}

/**
 * Lock many descriptors at once. Purging a thousand caches in one cycle must
 * not cost a thousand process spawns (≈2 ms each, measured), so when perl is
 * installed — Debian and Ubuntu ship it in the essential perl-base package —
 * one perl process takes every lock with its flock builtin (1,000 locks in
 * ≈30 ms). The locks land on the same shared open file descriptions, exactly
 * as with flock(1). Without perl, falls back to flock(1) per descriptor;
 * rejects with FlockUnavailableError when neither is installed.
 */
export async function tryFlockMany(fds: readonly number[], mode: FlockMode): Promise<FlockResult[]> {
  if (fds.length === 0) return [];
  // Perl is tried directly rather than probed first: a probe is one more spawn
  // in every cycle that purges. Where it is missing, the first batch says so
  // (ENOENT) and flock(1) takes over; locks perl took before failing sit on
  // the same open files, so taking them again with flock(1) changes nothing.
  if (fds.length > 1 && !perlMissing) {
    try {
      const results: FlockResult[] = [];
      // Bounded batches keep the child's descriptor table and argv small.
      for (let i = 0; i < fds.length; i += PERL_BATCH) results.push(...(await perlFlock(fds.slice(i, i + PERL_BATCH), mode)));
      return results;
    } catch (err) {
      if (!(err instanceof FlockUnavailableError)) throw err;
      perlMissing = true;
    }
  }
  const results: FlockResult[] = [];
  for (const fd of fds) results.push(await tryFlock(fd, mode));
  return results;
}

const PERL_BATCH = 512;
/** Set once a batch found no perl to run: later batches go straight to flock(1). */
let perlMissing = false;
/** The batch locker, beside this module in src/ and in dist/ (the build copies it). */
const PERL_FLOCK_SCRIPT = fileURLToPath(new URL('./flock.pl', import.meta.url));

let perlChecked: Promise<boolean> | undefined;
function perlAvailable(): Promise<boolean> {
  perlChecked ??= new Promise((resolve) => {
    const child = spawn('perl', ['-e', 'exit 0'], { stdio: 'ignore' });
    child.on('error', () => {
      resolve(false);
    });
    child.on('close', (code) => {
      resolve(code === 0);
    });
  });
  return perlChecked;
}

function perlFlock(fds: readonly number[], mode: FlockMode): Promise<FlockResult[]> {
  return new Promise((resolve, reject) => {
    // The child sees our descriptors as 3, 4, 5, ... in order.
    const childFds = fds.map((_, i) => String(i + 3));
    const child = spawn('perl', [PERL_FLOCK_SCRIPT, mode === 'exclusive' ? '2' : '1', ...childFds], {
      stdio: ['ignore', 'pipe', 'pipe', ...fds],
    });
    const out = collect(child.stdout);
    const err = collect(child.stderr);
    child.on('error', (e) => {
      reject(errnoCode(e) === 'ENOENT' ? new FlockUnavailableError(NO_LOCK_TOOL) : e);
    });
    child.on('close', (code) => {
      const lines = out.text.split('\n').filter(Boolean);
      if (code !== 0 || lines.length !== fds.length) reject(new Error(`perl flock batch failed (exit ${code}): ${err.text.trim()}`));
      else resolve(lines.map((l) => (l === 'L' ? 'locked' : 'busy')));
    });
  });
}
