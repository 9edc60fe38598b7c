import { spawn } from 'node:child_process';
import { errnoCode } from './errors.js';

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

export class FlockUnavailableError extends Error {
  readonly code = 'PCA_FLOCK_UNAVAILABLE';
}

/**
 * Try to take a lock on `fd` without blocking. Resolves 'busy' when another
 * open file description holds a conflicting lock. Rejects with
 * FlockUnavailableError when flock(1) is not installed (util-linux).
 */
export function tryFlock(fd: number, mode: FlockMode): Promise<FlockResult> {
  return runFlock(fd, [mode === 'exclusive' ? '-x' : '-s', '-n']);
}

/** Release a lock early without closing the descriptor. */
export async function unflock(fd: number): Promise<void> {
  await runFlock(fd, ['-u']);
}

function runFlock(fd: number, flags: string[]): Promise<FlockResult> {
  return new Promise((resolve, reject) => {
    const child = spawn('flock', [...flags, '-E', String(CONFLICT_EXIT), '3'], {
      stdio: ['ignore', 'ignore', 'pipe', fd],
    });
    let stderr = '';
    child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    child.on('error', (err) => {
      if (errnoCode(err) === 'ENOENT') {
        reject(new FlockUnavailableError('flock(1) was not found on PATH; install util-linux to enable lock checks'));
      } else reject(err);
    });
    child.on('close', (code) => {
      if (code === 0) resolve('locked');
      else if (code === CONFLICT_EXIT) resolve('busy');
      else reject(new Error(`flock(1) ${flags.join(' ')} failed with exit code ${code}: ${stderr.trim()}`));
    });
  });
}
