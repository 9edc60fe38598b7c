/**
 * Time enters the agent only through a Clock, so the pure core never reads it
 * and tests can drive it. Wall time is what purge requests are compared with;
 * monotonic time measures durations that must not jump with the wall clock.
 */
export interface Clock {
  /** Wall-clock milliseconds since the epoch. */
  now(): number;
  /** Monotonic milliseconds, for measuring elapsed time. */
  monotonic(): number;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  monotonic: () => performance.now(),
};

/**
 * Wait `ms`, or less if `signal` aborts: resolves true when the time passed,
 * false when the wait was cut short. Never rejects, so a caller that must stop
 * on abort checks the answer (or the signal) itself.
 */
export function sleep(ms: number, signal?: AbortSignal): Promise<boolean> {
  return new Promise((resolve) => {
    if (signal?.aborted) {
      resolve(false);
      return;
    }
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve(true);
    }, ms);
    const onAbort = (): void => {
      clearTimeout(timer);
      resolve(false);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
