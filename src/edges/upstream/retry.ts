/**
 * The retry policy of Taskcluster's own clients: network errors, timeouts,
 * 5xx and 429 are retried with exponential backoff and jitter (so a fleet
 * that lost the service doesn't come back in lockstep); other 4xx are final.
 */

export const MAX_DELAY_MS = 30_000;
const JITTER = 0.25;

/**
 * Delay before retry number `retry` (1 for the first retry):
 * base × 2^retry, ±25 % jitter, at most 30 s. Same curve as taskcluster-client.
 */
export function backoffDelay(retry: number, baseDelayMs: number, random: () => number): number {
  const delay = baseDelayMs * 2 ** retry;
  const jittered = delay * (1 - JITTER + random() * 2 * JITTER);
  return Math.min(Math.max(0, jittered), MAX_DELAY_MS);
}

export function isRetryableStatus(status: number): boolean {
  return status === 429 || (status >= 500 && status <= 599);
}

/**
 * Retry-After as milliseconds from now: delay-seconds or an HTTP-date.
 * Undefined when absent or unparseable (then the backoff applies).
 */
export function retryAfterMs(header: string | string[] | undefined, now: number): number | undefined {
  const value = Array.isArray(header) ? header[0] : header;
  if (value === undefined) return undefined;
  const trimmed = value.trim();
  if (/^\d+$/.test(trimmed)) return Number(trimmed) * 1000;
  const date = Date.parse(trimmed);
  if (!Number.isFinite(date)) return undefined;
  return Math.max(0, date - now);
}

export const defaultSleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
