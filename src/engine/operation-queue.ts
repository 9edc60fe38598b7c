/**
 * Operations on the caches and the state run one at a time, in the order they
 * were submitted: a cycle, a recheck, a local purge and an eviction pass never
 * overlap, so none of them judges a disk another is changing.
 *
 * Submissions may merge: while an operation submitted with a merge key still
 * waits for its turn, a further submission with that key gets it instead of a
 * new one (it has not started, so it serves both). Once it starts, the next
 * submission with that key queues a new operation.
 *
 * A failing operation rejects its own promise only: the next one starts all
 * the same.
 */
import type { Clock } from '../edges/clock.js';

export interface Operation<Kind extends string, Result> {
  readonly id: number;
  readonly kind: Kind;
  /** What the operation is about (for a purge: the cache), if anything. */
  readonly name?: string;
  /** Turns true when the operation begins. */
  started: boolean;
  /** Settles when the operation ends; exists before it starts, so listeners told of its start may use it. */
  readonly promise: Promise<Result>;
}

export interface OperationListener<Kind extends string, Result> {
  started?(op: Operation<Kind, Result>): void;
  progress?(op: Operation<Kind, Result>, line: string): void;
  /** An operation that succeeded, with its result and how long it ran. */
  finished?(op: Operation<Kind, Result>, result: Result, durationMs: number): void;
}

export interface Submission<Result> {
  name?: string;
  /** Merge with a waiting operation submitted with the same key (see above). */
  mergeKey?: string;
  /** The work; `progress` tells the listeners a line of human-readable progress. */
  work: (progress: (line: string) => void) => Promise<Result>;
}

interface Waiting<Kind extends string, Result> {
  op: Operation<Kind, Result>;
  submission: Submission<Result>;
  settle: { resolve: (result: Result) => void; reject: (err: unknown) => void };
}

export class OperationQueue<Kind extends string, Result> {
  private current: Operation<Kind, Result> | null = null;
  /** Submitted, not yet started, in order. Never empty while nothing runs: the next starts as the current one ends. */
  private readonly waiting: Waiting<Kind, Result>[] = [];
  private readonly mergeable = new Map<string, Operation<Kind, Result>>();
  private readonly listeners: OperationListener<Kind, Result>[] = [];
  private nextId = 1;

  constructor(private readonly clock: Pick<Clock, 'monotonic'>) {}

  /** The operation running now, if any. */
  get running(): Operation<Kind, Result> | null {
    return this.current;
  }

  /** Nothing runs, so nothing waits either. */
  get idle(): boolean {
    return this.current === null;
  }

  /** Tell `listener` of every operation from now on; returns what stops that. */
  listen(listener: OperationListener<Kind, Result>): () => void {
    this.listeners.push(listener);
    return () => {
      const at = this.listeners.indexOf(listener);
      if (at >= 0) this.listeners.splice(at, 1);
    };
  }

  /** Queue `submission`: it starts at once when nothing runs, else after everything submitted before it. */
  submit(kind: Kind, submission: Submission<Result>): Operation<Kind, Result> {
    const key = submission.mergeKey;
    const merged = key === undefined ? undefined : this.mergeable.get(key);
    if (merged) return merged;
    // Assigned by the executor, which runs at once.
    let settle!: Waiting<Kind, Result>['settle'];
    const promise = new Promise<Result>((resolve, reject) => {
      settle = { resolve, reject };
    });
    const name = submission.name;
    const op: Operation<Kind, Result> = { id: this.nextId++, kind, ...(name !== undefined ? { name } : {}), started: false, promise };
    const entry = { op, submission, settle };
    if (this.current) {
      this.waiting.push(entry);
      if (key !== undefined) this.mergeable.set(key, op);
    } else {
      this.begin(entry);
    }
    return op;
  }

  /** Resolves once nothing runs or waits, operations submitted meanwhile included. Failures are their callers' to see. */
  async drain(): Promise<void> {
    while (this.current) {
      await this.current.promise.then(
        () => {},
        () => {},
      );
    }
  }

  private begin({ op, submission, settle }: Waiting<Kind, Result>): void {
    this.current = op;
    op.started = true;
    if (submission.mergeKey !== undefined && this.mergeable.get(submission.mergeKey) === op) this.mergeable.delete(submission.mergeKey);
    const mono = this.clock.monotonic();
    // Runs at once up to the work's first await; a listener or work that throws fails this operation only.
    const run = (async () => {
      for (const l of [...this.listeners]) l.started?.(op);
      return submission.work((line) => {
        for (const l of [...this.listeners]) l.progress?.(op, line);
      });
    })();
    run
      .then((result) => {
        const durationMs = this.clock.monotonic() - mono;
        for (const l of [...this.listeners]) l.finished?.(op, result, durationMs);
        return result;
      })
      .finally(() => {
        // The next starts before this one's callers hear of its end, so the queue is never seen empty while something waits.
        this.current = null;
        const next = this.waiting.shift();
        if (next) this.begin(next);
      })
      .then(settle.resolve, settle.reject);
  }
}
