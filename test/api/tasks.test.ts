/** The task registry behind the local API's long polls: retention, bounded output, waits that always end. */
import { describe, expect, it } from 'vitest';
import { TaskStore } from '../../src/api/tasks.js';

describe('TaskStore', () => {
  it('keeps finished tasks for the retention time, and at most maxFinished of them, oldest first', () => {
    let now = 0;
    const store = new TaskStore({ retentionMs: 1000, maxFinished: 3, now: () => now });
    const tasks = Array.from({ length: 5 }, () => store.create('sync'));
    const running = store.create('purge', 'x');
    for (const t of tasks) store.finish(t, { result: null, code: 0, error: '' });
    expect(tasks.map((t) => store.get(t.id) !== undefined)).toEqual([false, false, true, true, true]);
    now = 2000;
    expect(tasks.every((t) => store.get(t.id) === undefined)).toBe(true);
    expect(store.get(running.id)).toBe(running);
  });

  it('bounds the output, and wakes a waiter on new output or on finishing', async () => {
    const store = new TaskStore({ maxOutputLines: 2, maxLineChars: 5 });
    const task = store.create('sync');
    const waiting = store.wait(task, 0, 60_000);
    store.append(task, 'first line');
    await waiting;
    expect(task.output).toEqual(['first…']);
    store.append(task, 'b');
    store.append(task, 'c');
    const finishing = store.wait(task, 2, 60_000);
    store.finish(task, { result: { ok: true }, code: 0, error: '' });
    await finishing;
    expect(store.view(task, 1)).toMatchObject({ output: ['b', '(1 more output line(s) dropped)'], last: 3, finished: true, state: 'COMPLETED' });
  });

  it('ends every wait when closed or aborted', async () => {
    const store = new TaskStore();
    const task = store.create('sync');
    const controller = new AbortController();
    const aborted = store.wait(task, 0, 60_000, controller.signal);
    const closed = store.wait(task, 0, 60_000);
    controller.abort();
    await aborted;
    store.close();
    await closed;
    expect(task.finished).toBe(false);
  });
});
