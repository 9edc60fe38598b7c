/**
 * Tasks: the local API's record of an asynchronous operation (a cycle or a
 * purge). A caller gets a task id at once and polls the task with an output
 * cursor and a long-poll wait, as with the cache-management APIs operators
 * know: `GET /v1/tasks/{id}?first=N&wait=S` returns the output lines from N
 * on, and `last`, the `first` to send next.
 *
 * Finished tasks are kept for an hour, and at most `maxFinished` of them (the
 * oldest go first); unfinished ones are bounded by the agent, which runs one
 * operation at a time and joins duplicates.
 */
import { randomUUID } from 'node:crypto';

export type TaskKind = 'sync' | 'purge';

/** `R`: what a finished task carries as its result (for the agent's operations, the cycle report). */
export interface TaskOutcome<R = unknown> {
  result: R | null;
  /** 0 on success, non-zero on failure. */
  code: number;
  /** "" on success, the reason otherwise. */
  error: string;
}

export interface Task<R = unknown> {
  readonly id: string;
  readonly kind: TaskKind;
  /** For a purge: the cache. */
  readonly name?: string;
  readonly createdAt: string;
  output: string[];
  /** Lines dropped because the output reached its bound. */
  dropped: number;
  started: boolean;
  finished: boolean;
  result: R | null;
  code: number | null;
  error: string;
  /** Monotonic time of finishing, for retention. */
  finishedAtMono?: number;
}

/** The answer of GET /v1/tasks/{id}. */
export interface TaskView<R = unknown> {
  id: string;
  kind: TaskKind;
  name?: string;
  state: 'PENDING' | 'RUNNING' | 'COMPLETED' | 'FAILED';
  createdAt: string;
  output: string[];
  result: R | null;
  finished: boolean;
  code: number | null;
  error: string;
  last: number;
}

export interface TaskStoreOptions {
  retentionMs?: number;
  maxFinished?: number;
  maxOutputLines?: number;
  maxLineChars?: number;
  /** Monotonic milliseconds. */
  now?: () => number;
}

export const MAX_WAIT_SECONDS = 60;

// Function-valued properties, not methods: `done` is handed to setTimeout and addEventListener as it is.
interface Waiter {
  check: () => void;
  done: () => void;
}

export class TaskStore<R = unknown> {
  private readonly tasks = new Map<string, Task<R>>();
  private readonly waiters = new Map<string, Set<Waiter>>();
  private readonly retentionMs: number;
  private readonly maxFinished: number;
  private readonly maxOutputLines: number;
  private readonly maxLineChars: number;
  private readonly now: () => number;

  constructor(options: TaskStoreOptions = {}) {
    this.retentionMs = options.retentionMs ?? 60 * 60 * 1000;
    this.maxFinished = options.maxFinished ?? 1000;
    this.maxOutputLines = options.maxOutputLines ?? 10_000;
    this.maxLineChars = options.maxLineChars ?? 4096;
    this.now = options.now ?? (() => performance.now());
  }

  create(kind: TaskKind, name?: string): Task<R> {
    this.prune();
    const task: Task<R> = {
      id: randomUUID(),
      kind,
      ...(name !== undefined ? { name } : {}),
      createdAt: new Date().toISOString(),
      output: [],
      dropped: 0,
      started: false,
      finished: false,
      result: null,
      code: null,
      error: '',
    };
    this.tasks.set(task.id, task);
    return task;
  }

  get(id: string): Task<R> | undefined {
    this.prune();
    return this.tasks.get(id);
  }

  get size(): number {
    return this.tasks.size;
  }

  markStarted(task: Task<R>): void {
    task.started = true;
  }

  append(task: Task<R>, line: string): void {
    if (task.finished) return;
    if (task.output.length >= this.maxOutputLines) {
      task.dropped++;
      return;
    }
    task.output.push(line.length > this.maxLineChars ? `${line.slice(0, this.maxLineChars)}…` : line);
    this.wake(task);
  }

  finish(task: Task<R>, outcome: TaskOutcome<R>): void {
    if (task.finished) return;
    if (task.dropped > 0) task.output.push(`(${task.dropped} more output line(s) dropped)`);
    task.started = true;
    task.finished = true;
    task.result = outcome.result;
    task.code = outcome.code;
    task.error = outcome.error;
    task.finishedAtMono = this.now();
    this.wake(task);
    this.prune();
  }

  /**
   * Resolve when the task has output from `first` on, or has finished, or
   * after `waitMs`, or when `signal` aborts (the client went away), or the
   * store closes — whichever comes first.
   */
  wait(task: Task<R>, first: number, waitMs: number, signal?: AbortSignal): Promise<void> {
    if (task.finished || task.output.length > first || waitMs <= 0 || signal?.aborted) return Promise.resolve();
    return new Promise((resolve) => {
      let set = this.waiters.get(task.id);
      if (!set) this.waiters.set(task.id, (set = new Set()));
      const waiter: Waiter = {
        check: () => {
          if (task.finished || task.output.length > first) waiter.done();
        },
        done: () => {
          clearTimeout(timer);
          signal?.removeEventListener('abort', waiter.done);
          set.delete(waiter);
          if (set.size === 0 && this.waiters.get(task.id) === set) this.waiters.delete(task.id);
          resolve();
        },
      };
      const timer = setTimeout(waiter.done, waitMs);
      signal?.addEventListener('abort', waiter.done, { once: true });
      set.add(waiter);
    });
  }

  view(task: Task<R>, first: number): TaskView<R> {
    const output = task.output.slice(first);
    return {
      id: task.id,
      kind: task.kind,
      ...(task.name !== undefined ? { name: task.name } : {}),
      state: !task.started ? 'PENDING' : !task.finished ? 'RUNNING' : task.code === 0 ? 'COMPLETED' : 'FAILED',
      createdAt: task.createdAt,
      output,
      result: task.result,
      finished: task.finished,
      code: task.code,
      error: task.error,
      last: first + output.length,
    };
  }

  /** End every wait now (the server is closing). */
  close(): void {
    for (const set of [...this.waiters.values()]) for (const waiter of [...set]) waiter.done();
  }

  private wake(task: Task<R>): void {
    const set = this.waiters.get(task.id);
    if (set) for (const waiter of [...set]) waiter.check();
  }

  private prune(): void {
    const now = this.now();
    let finished = 0;
    for (const task of this.tasks.values()) if (task.finished) finished++;
    for (const [id, task] of this.tasks) {
      if (!task.finished) continue;
      // Map order is creation order: the oldest go first.
      const age = task.finishedAtMono === undefined ? 0 : now - task.finishedAtMono;
      if (finished > this.maxFinished || age > this.retentionMs) {
        this.tasks.delete(id);
        finished--;
      }
    }
  }
}
