/** What deletion takes and what it tells: options, the report, and how failures and byte names are shown. */
import { errnoCode, errorMessage } from '../../errors.js';
import type { Logger } from '../../log.js';
import type { Clock } from './token-bucket.js';

export interface DeleteOptions {
  /** Worker threads making filesystem calls (default 4). */
  concurrency?: number | undefined;
  /** Files (and directories) removed per second; 0 or absent = unlimited. */
  rateLimit?: number | undefined;
  signal?: AbortSignal;
  logger?: Logger;
  /** lstat each file to count the bytes freed (one extra call per file). Default true. */
  countBytes?: boolean;
  /** Time source for the rate limit; tests pass a virtual one. */
  clock?: Clock;
}

export interface DeleteReport {
  files: number;
  dirs: number;
  /** Disk space of the files removed (allocated blocks; a file with other hard links frees none), when counted. */
  bytes: number;
  failures: { path: string; error: string }[];
  skippedMounts: string[];
}

/** At most this many failures (and skipped mounts) are kept in a report; the count goes on. */
export const MAX_KEPT = 100;

export function emptyReport(): DeleteReport {
  return { files: 0, dirs: 0, bytes: 0, failures: [], skippedMounts: [] };
}

export function addReports(into: DeleteReport, from: DeleteReport): DeleteReport {
  into.files += from.files;
  into.dirs += from.dirs;
  into.bytes += from.bytes;
  into.failures.push(...from.failures);
  into.skippedMounts.push(...from.skippedMounts);
  return into;
}

const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * A directory entry's name for a report: as is when it is UTF-8, else with
 * each byte that is not printable ASCII written `\xNN` (the name itself is
 * only ever used as bytes).
 */
export function displayName(name: Uint8Array): string {
  try {
    return strictUtf8.decode(name);
  } catch {
    let out = '';
    for (const b of name) out += b >= 0x20 && b < 0x7f && b !== 0x5c ? String.fromCharCode(b) : `\\x${b.toString(16).padStart(2, '0')}`;
    return out;
  }
}

/**
 * `EPERM: operation not permitted (unlink)`: the code, the reason and the call,
 * without the /proc/self/fd/N path Node puts in its messages (the report
 * names the real path).
 */
export function describe(err: unknown): string {
  const code = errnoCode(err) ?? 'error';
  const message = typeof err === 'object' && err !== null && 'message' in err ? String(err.message) : errorMessage(err);
  const m = /^[A-Z0-9_]+: (.*?), (\w+) '/.exec(message);
  return m ? `${code}: ${m[1]} (${m[2]})` : `${code}: ${message.replace(new RegExp(`^${code}: `), '')}`;
}
