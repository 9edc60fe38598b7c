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
