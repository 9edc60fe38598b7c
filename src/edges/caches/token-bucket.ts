/** Pacing deletion: a token bucket with a clock tests can replace. */
import { sleep } from '../clock.js';

export interface Clock {
  now(): number;
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
}

export const realClock: Clock = {
  now: () => performance.now(),
  sleep: async (ms, signal) => {
    await sleep(ms, signal);
  },
};

/**
 * A token bucket: `rate` tokens a second, holding at most a tenth of a
 * second's worth, so deletion is paced smoothly instead of in one-second
 * bursts. One token is one unlink or rmdir.
 */
export class TokenBucket {
  readonly capacity: number;
  private tokens: number;
  private last: number;
  constructor(
    readonly rate: number,
    private readonly clock: Clock = realClock,
  ) {
    this.capacity = Math.max(1, Math.floor(rate / 10));
    this.tokens = this.capacity;
    this.last = clock.now();
  }

  /** Take `n` (at most `capacity`) tokens, waiting for them. False if aborted meanwhile. */
  async take(n: number, signal?: AbortSignal): Promise<boolean> {
    for (;;) {
      const now = this.clock.now();
      this.tokens = Math.min(this.capacity, this.tokens + ((now - this.last) * this.rate) / 1000);
      this.last = now;
      // Within a millionth of a token is enough: floating point may never add up to exactly n.
      if (this.tokens >= n - 1e-6) {
        this.tokens -= n;
        return true;
      }
      if (signal?.aborted) return false;
      await this.clock.sleep(((n - this.tokens) * 1000) / this.rate, signal);
      if (signal?.aborted) return false;
    }
  }

  /** Give back tokens taken for calls that were not made (a batch turned out shorter). */
  refund(n: number): void {
    if (n > 0) this.tokens = Math.min(this.capacity, this.tokens + n);
  }
}
