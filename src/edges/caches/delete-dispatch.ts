/**
 * Handing out the walk's calls to the deletion threads: at most `maxInFlight`
 * at a time, paced by the rate limit, until the walk says it is done or the
 * signal aborts. Calls that finish a directory (`urgent`) go first, to release
 * descriptors and memory; then slices of subtrees under way (`continuing`);
 * then whatever the walk offers next.
 */
import type { Dir, Job } from './delete-dirs.js';
import { Threads } from './delete-threads.js';
import { TokenBucket } from './token-bucket.js';

export class Dispatcher {
  readonly urgent: Job[] = [];
  readonly continuing: Job[] = [];
  private inFlight = 0;
  private wake: (() => void) | null = null;
  /** Set when a thread dies: no further call is handed out. */
  private stopped = false;

  constructor(
    readonly threads: Threads,
    private readonly maxInFlight: number,
    readonly bucket: TokenBucket | null,
    private readonly signal: AbortSignal | undefined,
  ) {}

  /** Run until `done()`, or nothing is left, or the signal aborts. `crashed` hears of a thread that died (the walk then stops). */
  async run(offer: () => Job | null, done: () => boolean, crashed: (err: unknown) => void): Promise<void> {
    while (!this.stopped && !done() && !this.signal?.aborted) {
      const job = this.inFlight < this.maxInFlight ? (this.urgent.shift() ?? this.continuing.shift() ?? offer()) : null;
      if (!job) {
        if (this.inFlight === 0) break; // nothing left to do: only an abort or a bug gets here unfinished
        await new Promise<void>((resolve) => {
          this.wake = resolve;
        });
        continue;
      }
      if (this.bucket && job.cost > 0 && !(await this.bucket.take(job.cost, this.signal))) break;
      this.inFlight++;
      this.threads
        .call(job.op, job.args, job.pinned)
        .then(({ value, slot }) => job.done(value, slot))
        .catch((err: unknown) => {
          // A thread died (out of memory) or a bug: stop; what is left stays in the trash for the next run.
          crashed(err);
          this.stopped = true;
        })
        .finally(() => {
          this.inFlight--;
          this.notify();
        });
    }
    while (this.inFlight > 0) {
      await new Promise<void>((resolve) => {
        this.wake = resolve;
      });
    }
  }

  /** Close subtrees and listings left open (after an abort), then the threads. */
  async closeAll(subtrees: ReadonlyMap<number, number>, open: Iterable<Dir>, release: (dir: Dir) => void): Promise<void> {
    for (const [id, slot] of subtrees) await this.threads.call('subtreeClose', { id }, slot).catch(() => {});
    for (const dir of [...open]) {
      if (dir.stream !== null) await this.threads.call('closeStream', { stream: dir.stream }, dir.slot).catch(() => {});
      dir.stream = null;
      release(dir);
    }
    await this.threads.close();
  }

  notify(): void {
    const wake = this.wake;
    this.wake = null;
    wake?.();
  }
}
