/**
 * Subtrees deleted whole in one deletion thread (below SUBTREE_DEPTH): the
 * walk hands one out, then continues it a slice of `max` calls at a time on
 * the same thread until it is done, so a deep chain costs no message per level
 * while the rate limit and an abort still act between slices.
 */
import { faultPoint } from '../../fault.js';
import type { Dispatcher } from './delete-dispatch.js';
import type { Dir, Job, WalkStart } from './delete-dirs.js';
import type { Findings } from './delete-findings.js';
import type { OpResults } from './delete-threads.js';

export class Subtrees {
  /** Subtrees under way in a thread (id → thread). */
  readonly inThread = new Map<number, number>();

  constructor(
    private readonly calls: Dispatcher,
    private readonly found: Findings,
    private readonly start: WalkStart,
    private readonly slice: { max: number; countBytes: boolean },
    /** The subtree `parent` started is done; `kept` when something in it stays. */
    private readonly done: (parent: Dir, kept: boolean) => void,
  ) {}

  /** The call that starts deleting the subdirectory `name` of `parent` (which counts it as a child in use). */
  job(parent: Dir, name: Uint8Array): Job {
    const { max, countBytes } = this.slice;
    return {
      op: 'subtree',
      args: { dirFd: parent.fd, name, fs: this.start.fs, countBytes, mounts: [...this.start.mounts], max },
      cost: max,
      done: (value, slot) => this.progress(parent, value as OpResults['subtree'], slot),
    };
  }

  /** A slice of a subtree was done: count it, and continue it on the same thread until it is finished. */
  private async progress(parent: Dir, r: OpResults['subtree'], slot: number, id = r.id): Promise<void> {
    const { max } = this.slice;
    this.calls.bucket?.refund(max - r.ops);
    this.found.countSubtree(parent, r);
    if (r.dirs > 0) await faultPoint('trash-delete');
    if (!r.done && id !== undefined) {
      this.inThread.set(id, slot);
      this.calls.continuing.push({
        op: 'subtreeStep',
        args: { id, max },
        cost: max,
        pinned: slot,
        done: (value) => this.progress(parent, value as OpResults['subtree'], slot, id),
      });
      return;
    }
    if (id !== undefined) this.inThread.delete(id);
    this.done(parent, r.kept);
  }
}
