/**
 * The deletion threads: a few worker threads running delete-thread.cjs, each
 * making plain synchronous calls. Each system call through the libuv pool costs
 * a thread hand-off and a promise, which made deletion CPU-bound at 2–3× the
 * CPU time of `rm -rf`; here a message carries a batch of calls. A directory
 * listing lives in the thread that opened it, so calls on it are pinned there.
 */
import { Worker } from 'node:worker_threads';
import { fileURLToPath } from 'node:url';

/** The thread's code, beside this module in src/ and in dist/ (the build copies it). */
const THREAD_SCRIPT = fileURLToPath(new URL('./delete-thread.cjs', import.meta.url));

export interface Failure {
  code: string;
  message: string;
}
export interface FsId {
  dev: string;
  ino: string;
  mnt: string | null;
}
export interface OpenResult extends FsId {
  fd: number;
  /** A listing of it was started (same filesystem, and the expected directory). */
  stream?: number;
  replaced?: boolean;
  listFail?: Failure;
}
export interface ReadResult {
  dirs: Uint8Array[];
  skipped: Uint8Array[];
  fails: (Failure & { name: Uint8Array })[];
  removed: number;
  bytes: number;
  /** Entries that were not directories (each an unlink, done or failed). */
  files: number;
  end: boolean;
  listFail: Failure | null;
}
export interface OpResults {
  open: { fail: Failure } | OpenResult;
  read: ReadResult;
  closeStream: object;
  unlink: { removed: number; bytes: number; fails: (Failure & { name: Uint8Array })[] };
  rmdir: { fail?: Failure };
  rmdirUp: { fail: Failure } | { fd: number; rmdirFail?: Failure };
  subtree: SubtreeResult;
  subtreeStep: SubtreeResult;
  subtreeClose: object;
}
/** Progress of a subtree deleted in one thread, since its last slice. */
export interface SubtreeResult {
  /** Set while the subtree is not done: continue it with subtreeStep on the same thread. */
  id?: number;
  removed: number;
  bytes: number;
  dirs: number;
  /** Described failures, each with the names (latin1) from the subtree's top to the entry. */
  fails: (Failure & { trail: string[] })[];
  failCount: number;
  skipped: string[][];
  /** Something in it stays, so its parent does too. */
  kept: boolean;
  done: boolean;
  /** Calls made that remove something (the rate limit's unit). */
  ops: number;
}
export type Op = keyof OpResults;

interface Slot {
  worker: Worker;
  load: number;
  index: number;
}

/** Worker threads, started as work appears (a small tree never starts more than one). */
export class Threads {
  private readonly slots: Slot[] = [];
  private readonly calls = new Map<number, { resolve(v: unknown): void; reject(e: Error): void; slot: Slot }>();
  private nextId = 1;
  constructor(private readonly max: number) {}

  /** Run `op` on the least-loaded thread, or on thread `pinned`; resolves with the result and the thread that ran it. */
  call<K extends Op>(op: K, args: object, pinned?: number): Promise<{ value: OpResults[K]; slot: number }> {
    let slot = pinned === undefined ? this.slots.reduce<Slot | undefined>((a, b) => (a && a.load <= b.load ? a : b), undefined) : this.slots[pinned];
    if (pinned === undefined && (!slot || (slot.load > 0 && this.slots.length < this.max))) slot = this.spawn();
    if (!slot) return Promise.reject(new Error(`internal error: no deletion thread ${pinned}`));
    const id = this.nextId++;
    slot.load++;
    const target = slot;
    return new Promise((resolve, reject) => {
      this.calls.set(id, {
        resolve: (v) => {
          resolve({ value: v as OpResults[K], slot: target.index });
        },
        reject,
        slot: target,
      });
      target.worker.postMessage({ id, op, args });
    });
  }

  async close(): Promise<void> {
    await Promise.all(this.slots.map((s) => s.worker.terminate()));
  }

  private spawn(): Slot {
    // The threads' descriptors are closed by the main thread; without trackUnmanagedFds: false, a thread's
    // exit would close every descriptor number it ever opened — by then perhaps reused for something else.
    const slot: Slot = { worker: new Worker(THREAD_SCRIPT, { trackUnmanagedFds: false }), load: 0, index: this.slots.length };
    slot.worker.on('message', (m: { id: number; value?: unknown; error?: Failure }) => {
      const call = this.calls.get(m.id);
      if (!call) return;
      this.calls.delete(m.id);
      call.slot.load--;
      if (m.error) call.reject(Object.assign(new Error(m.error.message), { code: m.error.code }));
      else call.resolve(m.value);
    });
    const die = (err: Error): void => {
      for (const [id, call] of this.calls) {
        if (call.slot !== slot) continue;
        this.calls.delete(id);
        call.reject(err);
      }
    };
    slot.worker.on('error', die);
    slot.worker.on('exit', (code) => {
      die(new Error(`a deletion thread exited (code ${code})`));
    });
    this.slots.push(slot);
    return slot;
  }
}
