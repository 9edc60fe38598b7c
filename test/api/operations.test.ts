/**
 * Tasks and the agent's serialised operations, through the real socket: the
 * long poll, a sync that joins the cycle in flight, and concurrent purges of
 * one cache performing one purge. A gate in front of the purge-cache service
 * holds a cycle open for as long as a test needs — no sleeps, no timing.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import path from 'node:path';
import { readdir } from 'node:fs/promises';
import { makeFixture, exists, type Fixture } from '../helpers/fixture.js';
import { call, startDaemon, startGate, firstCycle, finishedTask, metrics, sample, type Daemon, type Gate } from '../helpers/api.js';
import { eventually } from '../helpers/wait.js';

let fx: Fixture;
let gate: Gate;
let d: Daemon | undefined;

beforeEach(async () => {
  fx = await makeFixture();
  gate = await startGate(fx.service.url);
});
afterEach(async () => {
  gate.release();
  const result = await d?.stop();
  d = undefined;
  await gate.close();
  await fx.close();
  if (result) expect(result.code, result.stderr).toBe(0);
});

/** Start the daemon with its cycle at start held at the gate (the query is waiting there). */
async function daemonWithCycleHeld(): Promise<Daemon> {
  gate.mode = 'hold';
  d = await startDaemon(fx, { serviceUrl: gate.url });
  await eventually(() => (gate.held() > 0 ? true : undefined), 'the cycle at start to reach the gate');
  return d;
}

const status = async (daemon: Daemon) => (await call(daemon.socket, 'GET', '/v1/status')).json;

describe('POST /v1/sync', () => {
  it('joins the cycle in flight instead of starting another', async () => {
    const daemon = await daemonWithCycleHeld();
    expect((await status(daemon)).running).toEqual({ kind: 'cycle' });
    const replies = await Promise.all([1, 2, 3].map(() => call(daemon.socket, 'POST', '/v1/sync')));
    for (const reply of replies) expect(reply.status).toBe(202);
    const ids = new Set(replies.map((r) => r.json.task_id));
    expect(ids.size).toBe(1);
    const [id] = [...ids] as [string];
    // It is the cycle at start: its task already has output.
    const before = (await call(daemon.socket, 'GET', `/v1/tasks/${id}`)).json;
    expect(before).toMatchObject({ finished: false, state: 'RUNNING', output: ['cycle started'], code: null, result: null });

    gate.release();
    const task = await finishedTask(daemon.socket, id);
    expect(task).toMatchObject({ finished: true, code: 0, error: '', state: 'COMPLETED' });
    expect(task.output[0]).toBe('cycle started');
    expect(task.output.some((l: string) => l.startsWith('queried purge requests'))).toBe(true);
    // One query served all three requests.
    expect(gate.queries).toBe(1);

    // With nothing in flight, a sync starts a new cycle: a new task.
    const next = await call(daemon.socket, 'POST', '/v1/sync');
    expect(next.json.task_id).not.toBe(id);
    expect((await finishedTask(daemon.socket, next.json.task_id)).code).toBe(0);
    expect(gate.queries).toBe(2);
  });

  it('reports a failed cycle as a failed task', async () => {
    d = await startDaemon(fx, { serviceUrl: gate.url });
    await firstCycle(d);
    gate.mode = 'fail';
    const reply = await call(d.socket, 'POST', '/v1/sync');
    const task = await finishedTask(d.socket, reply.json.task_id);
    expect(task).toMatchObject({ finished: true, code: 1, state: 'FAILED' });
    expect(task.error).toMatch(/could not be queried/);
    expect(task.result.error).toEqual(expect.any(String));
  });
});

describe('GET /v1/tasks/{id}?wait', () => {
  it('returns early with the new output and the right `last` when output appears, then when the task finishes', async () => {
    const daemon = await daemonWithCycleHeld();
    const id = (await call(daemon.socket, 'POST', '/v1/sync')).json.task_id;
    const first = (await call(daemon.socket, 'GET', `/v1/tasks/${id}`)).json;
    expect(first.last).toBe(1);

    // A poll that would wait 60 s; it must come back as soon as the cycle moves on.
    const polling = call(daemon.socket, 'GET', `/v1/tasks/${id}?first=${first.last}&wait=60`);
    // Nothing is answered while the cycle is held (the poll is still open).
    expect(
      await Promise.race([
        polling.then(() => 'answered'),
        new Promise((r) =>
          setImmediate(() => {
            r('open');
          }),
        ),
      ]),
    ).toBe('open');
    gate.release();
    const early = await polling;
    expect(early.status).toBe(200);
    expect(early.json.output.length).toBeGreaterThan(0);
    expect(early.json.output[0]).toMatch(/^queried purge requests/);
    expect(early.json.last).toBe((first.last as number) + (early.json.output.length as number));

    // Keep polling from `last`: lines never repeat and never go missing.
    const all = [...first.output, ...early.json.output];
    let last: number = early.json.last;
    let view = early.json;
    while (!view.finished) {
      view = (await call(daemon.socket, 'GET', `/v1/tasks/${id}?first=${last}&wait=60`)).json;
      all.push(...view.output);
      expect(view.last).toBe(last + (view.output.length as number));
      last = view.last;
    }
    expect((await call(daemon.socket, 'GET', `/v1/tasks/${id}`)).json.output).toEqual(all);
    // On a finished task a long poll answers at once.
    const done = await call(daemon.socket, 'GET', `/v1/tasks/${id}?first=${last}&wait=60`);
    expect(done.json).toMatchObject({ finished: true, output: [], last });
  });

  it('a poll from an earlier `first` returns at once with the lines it missed', async () => {
    const daemon = await daemonWithCycleHeld();
    const id = (await call(daemon.socket, 'POST', '/v1/sync')).json.task_id;
    const reply = await call(daemon.socket, 'GET', `/v1/tasks/${id}?first=0&wait=60`);
    expect(reply.json).toMatchObject({ output: ['cycle started'], last: 1, finished: false });
  });

  it('a client that goes away mid-poll does not disturb the agent', async () => {
    const daemon = await daemonWithCycleHeld();
    const id = (await call(daemon.socket, 'POST', '/v1/sync')).json.task_id;
    const controller = new AbortController();
    const poll = call(daemon.socket, 'GET', `/v1/tasks/${id}?first=1&wait=60`, { signal: controller.signal }).catch((e: unknown) => e);
    controller.abort();
    expect(await poll).toBeInstanceOf(Error);
    gate.release();
    expect((await finishedTask(daemon.socket, id)).code).toBe(0);
  });
});

describe('DELETE /v1/caches/{name} while others run', () => {
  it('concurrent DELETEs of one cache perform one purge', async () => {
    const dir = await fx.makeCache('contended', { 'big/file': 'x'.repeat(4096) });
    await fx.makeCache('bystander');
    const daemon = await daemonWithCycleHeld();
    // Every DELETE waits behind the held cycle, so all of them find the same waiting purge.
    const replies = await Promise.all(Array.from({ length: 8 }, () => call(daemon.socket, 'DELETE', '/v1/caches/contended')));
    for (const reply of replies) expect(reply.status).toBe(202);
    const ids = new Set(replies.map((r) => r.json.task_id));
    expect(ids.size).toBe(1);
    const [id] = [...ids] as [string];
    expect((await call(daemon.socket, 'GET', `/v1/tasks/${id}`)).json.state).toBe('PENDING');

    gate.release();
    const task = await finishedTask(daemon.socket, id);
    expect(task.code).toBe(0);
    expect(task.result.purged).toEqual([expect.objectContaining({ name: 'contended', path: dir })]);
    expect(await exists(dir)).toBe(false);
    expect(await exists(path.join(fx.root, 'bystander'))).toBe(true);
    const m = await metrics(daemon.socket);
    expect(sample(m, 'purge_cache_agent_caches_purged_total')).toBe(1);
  });

  it('with nothing in flight, concurrent DELETEs still purge once: later ones find it gone', async () => {
    const dir = await fx.makeCache('raced');
    d = await startDaemon(fx, { serviceUrl: gate.url });
    await firstCycle(d);
    const replies = await Promise.all(Array.from({ length: 8 }, () => call(d!.socket, 'DELETE', '/v1/caches/raced')));
    const accepted = replies.filter((r) => r.status === 202);
    // A DELETE that arrives after the purge finished finds no such cache (404); none is refused otherwise.
    for (const reply of replies) expect([202, 404]).toContain(reply.status);
    expect(accepted.length).toBeGreaterThan(0);
    const ids = [...new Set(accepted.map((r) => r.json.task_id as string))];
    const tasks = await Promise.all(ids.map((id) => finishedTask(d!.socket, id)));
    const purged = tasks.flatMap((t) => t.result.purged);
    expect(purged).toEqual([expect.objectContaining({ name: 'raced', path: dir })]);
    expect(await exists(dir)).toBe(false);
    const trash = path.join(fx.root, '.purge-cache-agent-trash');
    // At most the one purged directory ever reached the trash (it may already be emptied).
    expect((await readdir(trash).catch(() => [])).length).toBeLessThanOrEqual(1);
    expect(sample(await metrics(d.socket), 'purge_cache_agent_caches_purged_total')).toBe(1);
  });

  it('a purge waits for the cycle in flight, and a sync meanwhile joins the cycle, not the purge', async () => {
    await fx.makeCache('local');
    const daemon = await daemonWithCycleHeld();
    const purge = await call(daemon.socket, 'DELETE', '/v1/caches/local');
    // The cycle at start is in flight: this sync joins it.
    const joined = await call(daemon.socket, 'POST', '/v1/sync');
    gate.release();
    const cycleTask = await finishedTask(daemon.socket, joined.json.task_id);
    expect(cycleTask.kind).toBe('sync');
    const purgeTask = await finishedTask(daemon.socket, purge.json.task_id);
    expect(purgeTask.kind).toBe('purge');
    expect(purgeTask.id).not.toBe(cycleTask.id);
    expect(purgeTask.result.purged).toEqual([expect.objectContaining({ name: 'local' })]);
    expect(gate.queries).toBe(1);
  });
});
