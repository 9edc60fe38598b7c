/**
 * The operation queue on its own: one operation at a time, in submission
 * order; failures stay with their operation; waiting operations merge by key;
 * drain waits for everything, operations submitted meanwhile included.
 */
import { describe, expect, it } from 'vitest';
import { OperationQueue, type Operation } from '../../src/engine/operation-queue.js';

type Kind = 'a' | 'b';

/** A piece of work the test finishes by hand, recording when it starts. */
function gate<T>(log: string[], label: string) {
  let open!: (value: T) => void;
  let fail!: (err: Error) => void;
  const done = new Promise<T>((resolve, reject) => {
    open = resolve;
    fail = reject;
  });
  return {
    work: () => {
      log.push(`start ${label}`);
      return done.finally(() => log.push(`end ${label}`));
    },
    open,
    fail,
  };
}

function newQueue() {
  let tick = 0;
  return new OperationQueue<Kind, string>({ monotonic: () => tick++ });
}

/** Let every pending promise callback run. */
const settle = () => new Promise<void>((resolve) => setImmediate(resolve));

describe('OperationQueue', () => {
  it('runs one operation at a time, in the order they were submitted', async () => {
    const queue = newQueue();
    const log: string[] = [];
    const gates = ['1', '2', '3'].map((l) => gate<string>(log, l));
    const ops = gates.map((g) => queue.submit('a', { work: g.work }));

    expect(ops.map((op) => op.started)).toEqual([true, false, false]);
    expect(queue.running).toBe(ops[0]);
    expect(queue.idle).toBe(false);

    // Finishing them out of order changes nothing: the third waits for the second.
    gates[2]!.open('three');
    gates[0]!.open('one');
    await expect(ops[0]!.promise).resolves.toBe('one');
    expect(queue.running).toBe(ops[1]);
    gates[1]!.open('two');
    await expect(ops[2]!.promise).resolves.toBe('three');
    expect(log).toEqual(['start 1', 'end 1', 'start 2', 'end 2', 'start 3', 'end 3']);
    expect(queue.running).toBeNull();
    expect(queue.idle).toBe(true);
    expect(new Set(ops.map((op) => op.id)).size).toBe(3);
  });

  it('a failing operation rejects its own promise only: the next one runs', async () => {
    const queue = newQueue();
    const log: string[] = [];
    const first = gate<string>(log, 'fails');
    const second = gate<string>(log, 'runs');
    const failing = queue.submit('a', { work: first.work });
    const next = queue.submit('b', { work: second.work });
    first.fail(new Error('disk on fire'));
    await expect(failing.promise).rejects.toThrow('disk on fire');
    second.open('fine');
    await expect(next.promise).resolves.toBe('fine');
    expect(log).toEqual(['start fails', 'end fails', 'start runs', 'end runs']);
  });

  it('work that throws before its first await fails its operation, not the queue', async () => {
    const queue = newQueue();
    const log: string[] = [];
    const blocker = gate<string>(log, 'blocker');
    queue.submit('a', { work: blocker.work });
    const throwing = queue.submit('a', {
      work: () => {
        throw new Error('thrown at once');
      },
    });
    const after = queue.submit('b', { work: () => Promise.resolve('after') });
    blocker.open('ok');
    await expect(throwing.promise).rejects.toThrow('thrown at once');
    await expect(after.promise).resolves.toBe('after');
    expect(queue.idle).toBe(true);
  });

  it('a submission merges with a waiting one of the same key, never with one that started', async () => {
    const queue = newQueue();
    const log: string[] = [];
    const running = gate<string>(log, 'merged-key running');
    // Started at once: nothing to merge with, so the next submission with its key queues anew.
    const first = queue.submit('a', { mergeKey: 'k', work: running.work });
    let calls = 0;
    const waiting = () => {
      calls++;
      return Promise.resolve('waited');
    };
    const second = queue.submit('a', { mergeKey: 'k', work: waiting });
    const third = queue.submit('a', { mergeKey: 'k', work: waiting });
    const otherKey = queue.submit('a', { mergeKey: 'other', work: () => Promise.resolve('other') });
    const noKey = queue.submit('b', { work: () => Promise.resolve('plain') });

    expect(second).not.toBe(first);
    expect(third).toBe(second);
    expect(otherKey).not.toBe(second);
    expect(noKey).not.toBe(second);

    running.open('first');
    await expect(third.promise).resolves.toBe('waited');
    await expect(noKey.promise).resolves.toBe('plain');
    expect(calls).toBe(1);
  });

  it('once the waiting operation of a key starts, a further submission with that key queues a new one', async () => {
    const queue = newQueue();
    const log: string[] = [];
    const blocker = gate<string>(log, 'blocker');
    const keyed = gate<string>(log, 'keyed');
    queue.submit('a', { work: blocker.work });
    const waiting = queue.submit('a', { name: 'x', mergeKey: 'k', work: keyed.work });
    blocker.open('done');
    await settle();
    expect(waiting.started).toBe(true);
    const later = queue.submit('a', { name: 'x', mergeKey: 'k', work: () => Promise.resolve('later') });
    expect(later).not.toBe(waiting);
    expect(later.started).toBe(false);
    expect(later.name).toBe('x');
    keyed.open('keyed');
    await expect(later.promise).resolves.toBe('later');
  });

  it('tells listeners of each start, progress line and success; a failure is not a success', async () => {
    const queue = newQueue();
    const events: string[] = [];
    const stop = queue.listen({
      started: (op) => events.push(`started ${op.kind}${op.name ?? ''}`),
      progress: (op, line) => events.push(`progress ${op.kind}: ${line}`),
      finished: (op, result, durationMs) => events.push(`finished ${op.kind}: ${result} (${durationMs >= 0 ? 'measured' : 'negative'})`),
    });
    const ok = queue.submit('a', {
      name: 'n',
      work: (progress) => {
        progress('half way');
        return Promise.resolve('ok');
      },
    });
    const bad = queue.submit('b', { work: () => Promise.reject(new Error('no')) });
    await ok.promise;
    await bad.promise.catch(() => {});
    stop();
    await queue.submit('a', { work: () => Promise.resolve('unheard') }).promise;
    expect(events).toEqual(['started an', 'progress a: half way', 'finished a: ok (measured)', 'started b']);
  });

  it('gives a listener told of a start the operation whose promise it may follow', async () => {
    const queue = newQueue();
    const seen: Promise<string>[] = [];
    queue.listen({ started: (op: Operation<Kind, string>) => seen.push(op.promise) });
    const op = queue.submit('a', { work: () => Promise.resolve('followed') });
    expect(seen).toEqual([op.promise]);
    await expect(seen[0]).resolves.toBe('followed');
  });

  it('drain waits for the running and the waiting operations, those submitted meanwhile too, failed ones included', async () => {
    const queue = newQueue();
    const log: string[] = [];
    const a = gate<string>(log, 'a');
    const b = gate<string>(log, 'b');
    const c = gate<string>(log, 'c');
    queue.submit('a', { work: a.work });
    queue.submit('a', { work: b.work }).promise.catch(() => {});
    let drained = false;
    const draining = queue.drain().then(() => {
      drained = true;
    });
    a.open('a');
    await settle();
    // Submitted during the drain: drained only after it too.
    queue.submit('b', { work: c.work });
    b.fail(new Error('b failed'));
    await settle();
    expect(drained).toBe(false);
    c.open('c');
    await draining;
    expect(log).toEqual(['start a', 'end a', 'start b', 'end b', 'start c', 'end c']);
    expect(queue.idle).toBe(true);
  });

  it('drain on an idle queue resolves at once', async () => {
    const queue = newQueue();
    await queue.drain();
    expect(queue.running).toBeNull();
  });
});
