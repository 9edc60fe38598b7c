/**
 * `exec --purge-on-exit CODES`: which endings of the command condemn its
 * caches — Taskcluster generic-worker's onExitStatus.purgeCaches, for any
 * worker. A cache a failed build may have left half-written must not be
 * handed to the next build.
 *
 * CODES is a comma-separated list of exit codes (0-255) and the word `signal`.
 * A code matches the exit code exec reports, which is the command's own, or
 * 128+N when signal N killed it (so `137` catches an OOM kill, as an operator
 * reading exec's exit codes would expect); `signal` matches any signal, as an
 * aborted task is.
 */
import { UsageError } from '../../errors.js';

export interface PurgeOnExit {
  codes: ReadonlySet<number>;
  signal: boolean;
}

/** How the command ended; null when it never started (not found, not executable). */
export type Ending = { kind: 'exit'; code: number } | { kind: 'signal'; signal: string; code: number };

const MAX_EXIT_CODE = 255;

export function parsePurgeOnExit(text: string): PurgeOnExit {
  const parts = text.split(',').map((part) => part.trim());
  const codes = new Set<number>();
  let signal = false;
  for (const part of parts) {
    if (part.toLowerCase() === 'signal') signal = true;
    else if (/^\d{1,3}$/.test(part) && Number(part) <= MAX_EXIT_CODE) codes.add(Number(part));
    else {
      const what = part === '' ? 'an empty entry' : JSON.stringify(part);
      throw new UsageError(
        `invalid --purge-on-exit ${JSON.stringify(text)}: ${what} is neither an exit code (0-${MAX_EXIT_CODE}) nor the word signal; ` +
          'give exit codes and the word signal, comma-separated (for example 1,137,signal)',
      );
    }
  }
  return { codes, signal };
}

export function purgesOn(policy: PurgeOnExit, ending: Ending): boolean {
  return policy.codes.has(ending.code) || (ending.kind === 'signal' && policy.signal);
}

export function describeEnding(ending: Ending): string {
  return ending.kind === 'signal' ? `was killed by ${ending.signal} (exit code ${ending.code})` : `exited with code ${ending.code}`;
}
