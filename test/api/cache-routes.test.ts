/**
 * The local API's cache, lease and task routes — listing, purging now,
 * leases, syncs and their tasks — against the `run` daemon as a child process.
 */
import { describe, expect, it } from 'vitest';
import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { exists, readState } from '../helpers/fixture.js';
import { encodeCacheName } from '../../src/core/names.js';
import { call, finishedTask } from '../helpers/api.js';
import { eventually } from '../helpers/wait.js';
import { fx, d, auth, both } from './routes-daemon.js';

describe('GET /v1/caches', () => {
  it('lists every cache with its fields', async () => {
    for (const [, target, headers] of both()) {
      const reply = await call(target, 'GET', '/v1/caches', { headers });
      expect(reply.status).toBe(200);
      const names = reply.json.caches.map((c: { name: string }) => c.name);
      expect(names).toEqual(expect.arrayContaining(['plain', 'a/b', '..', 'sized']));
      const ab = reply.json.caches.find((c: { name: string }) => c.name === 'a/b');
      expect(ab).toEqual({
        name: 'a/b',
        path: path.join(fx.root, encodeCacheName('a/b')!),
        created: expect.any(String),
        inUse: false,
        holders: [],
        pendingPurge: null,
      });
      expect(ab.sizeBytes).toBeUndefined();
    }
  });

  it('?size=1 counts bytes without following symlinks', async () => {
    const { symlink } = await import('node:fs/promises');
    await symlink(fx.outside, path.join(fx.root, 'sized', 'escape'));
    const reply = await call(d.socket, 'GET', '/v1/caches?size=1');
    const sized = reply.json.caches.find((c: { name: string }) => c.name === 'sized');
    // The blocks its regular files occupy (data.txt from makeCache and the two files added); the link to `outside` adds nothing.
    const { lstat, readdir } = await import('node:fs/promises');
    let occupied = 0;
    for (const entry of await readdir(path.join(fx.root, 'sized'), { recursive: true, withFileTypes: true })) {
      if (entry.isFile()) occupied += (await lstat(path.join(entry.parentPath, entry.name))).blocks * 512;
    }
    expect(occupied).toBeGreaterThan(0);
    expect(sized.sizeBytes).toBe(occupied);
    expect(sized.sizePartial).toBeUndefined();
  });

  it('shows a lease as a holder', async () => {
    const put = await call(d.socket, 'PUT', '/v1/caches/leased/leases/worker-1', { body: '{"ttlSeconds":600}' });
    expect(put.status).toBe(200);
    const reply = await call(d.tcp, 'GET', '/v1/caches', { headers: auth });
    const leased = reply.json.caches.find((c: { name: string }) => c.name === 'leased');
    expect(leased.inUse).toBe(true);
    expect(leased.holders).toEqual([expect.objectContaining({ kind: 'lease', owner: 'worker-1' })]);
    expect((await call(d.socket, 'DELETE', '/v1/caches/leased/leases/worker-1')).status).toBe(204);
  });
});

describe('DELETE /v1/caches/{name}', () => {
  it('?dry_run=1 lists the paths and deletes nothing', async () => {
    for (const [, target, headers] of both()) {
      const reply = await call(target, 'DELETE', '/v1/caches/dry?dry_run=1', { headers });
      expect(reply.status).toBe(200);
      expect(reply.json).toEqual({ name: 'dry', task_id: null, paths: [path.join(fx.root, 'dry')] });
    }
    expect(await exists(path.join(fx.root, 'dry'))).toBe(true);
  });

  it('purges a cache now (202 and a task), names URL-encoded', async () => {
    for (const [name, target, headers] of [
      ['a/b', d.socket, {}],
      ['..', d.tcp, auth],
    ] as const) {
      const dir = path.join(fx.root, encodeCacheName(name)!);
      expect(await exists(dir)).toBe(true);
      const encoded = name === '..' ? '%2E%2E' : encodeURIComponent(name);
      const reply = await call(target, 'DELETE', `/v1/caches/${encoded}`, { headers });
      expect(reply.status, reply.text).toBe(202);
      expect(reply.json).toEqual({ name, task_id: expect.any(String) });
      const task = await finishedTask(target, reply.json.task_id, headers);
      expect(task.code).toBe(0);
      expect(task.error).toBe('');
      expect(task.result.purged).toEqual([expect.objectContaining({ name, path: dir })]);
      expect(task.output.some((l: string) => l.startsWith('purged '))).toBe(true);
      expect(await exists(dir)).toBe(false);
    }
    // Nothing outside the root moved, and the root's other caches stayed.
    expect(await readdir(fx.outside)).toContain('precious.txt');
    expect(await exists(path.join(fx.root, 'plain'))).toBe(true);
  });

  it('defers a cache in use (a lease), says so in the task, and purges it once released', async () => {
    expect((await call(d.socket, 'PUT', '/v1/caches/doomed/leases/builder', { body: '{"ttlSeconds":300}' })).status).toBe(200);
    const reply = await call(d.socket, 'DELETE', '/v1/caches/doomed');
    expect(reply.status).toBe(202);
    const task = await finishedTask(d.socket, reply.json.task_id);
    expect(task.code).toBe(0);
    expect(task.result.purged).toEqual([]);
    expect(task.result.deferred).toEqual([expect.objectContaining({ name: 'doomed', reason: expect.stringContaining('builder') })]);
    expect(task.output.some((l: string) => l.startsWith('deferred doomed'))).toBe(true);
    expect(await exists(path.join(fx.root, 'doomed'))).toBe(true);
    const status = await call(d.socket, 'GET', '/v1/status');
    expect(status.json.pending).toEqual([expect.objectContaining({ name: 'doomed', reason: 'in-use' })]);
    const listed = (await call(d.socket, 'GET', '/v1/caches')).json.caches.find((c: { name: string }) => c.name === 'doomed');
    expect(listed.pendingPurge).toEqual(expect.objectContaining({ reason: 'in-use' }));

    expect((await call(d.socket, 'DELETE', '/v1/caches/doomed/leases/builder')).status).toBe(204);
    // The daemon's recheck (--recheck 250ms) purges it now that nobody holds it.
    await eventually(async () => ((await exists(path.join(fx.root, 'doomed'))) ? undefined : true), 'the deferred purge');
  });
});

describe('leases', () => {
  it('PUT returns the lease, extends it, and DELETE releases it (204); the state keeps it meanwhile', async () => {
    for (const [, target, headers] of both()) {
      const put = await call(target, 'PUT', `/v1/caches/${encodeURIComponent('my cache')}/leases/${encodeURIComponent('task 42')}`, {
        headers,
        body: '{"ttlSeconds":120}',
      });
      expect(put.status).toBe(200);
      expect(put.json).toEqual({ cacheName: 'my cache', owner: 'task 42', expiresAt: expect.any(String), ttlSeconds: 120 });
      expect(Object.keys(put.json).sort()).toEqual(['cacheName', 'expiresAt', 'owner', 'ttlSeconds']);
      const state = await readState(fx.stateDir);
      expect(state.leases).toEqual([expect.objectContaining({ cacheName: 'my cache', owner: 'task 42', ttlSeconds: 120 })]);
      // Extending never shortens.
      const again = await call(target, 'PUT', `/v1/caches/${encodeURIComponent('my cache')}/leases/${encodeURIComponent('task 42')}`, {
        headers,
        body: '{"ttlSeconds":60}',
      });
      expect(Date.parse(again.json.expiresAt)).toBeGreaterThanOrEqual(Date.parse(put.json.expiresAt));
      const status = await call(target, 'GET', '/v1/status', { headers });
      expect(status.json.leases).toEqual([expect.objectContaining({ cacheName: 'my cache', owner: 'task 42' })]);
      const del = await call(target, 'DELETE', `/v1/caches/${encodeURIComponent('my cache')}/leases/${encodeURIComponent('task 42')}`, { headers });
      expect(del.status).toBe(204);
      expect(del.text).toBe('');
      expect((await readState(fx.stateDir)).leases).toEqual([]);
    }
  });

  it('an empty body takes the default TTL (10 minutes)', async () => {
    const put = await call(d.socket, 'PUT', '/v1/caches/plain/leases/default-ttl');
    expect(put.status).toBe(200);
    expect(put.json.ttlSeconds).toBe(600);
    expect((await call(d.socket, 'DELETE', '/v1/caches/plain/leases/default-ttl')).status).toBe(204);
  });
});

describe('POST /v1/sync and GET /v1/tasks/{id}', () => {
  it('runs a cycle and reports it as the once --json report', async () => {
    await fx.request('plain');
    for (const [, target, headers] of both()) {
      const reply = await call(target, 'POST', '/v1/sync', { headers });
      expect(reply.status).toBe(202);
      expect(reply.json).toEqual({ task_id: expect.any(String), task_state: 'PENDING' });
      const task = await finishedTask(target, reply.json.task_id, headers);
      expect(task).toMatchObject({ id: reply.json.task_id, finished: true, code: 0, error: '' });
      expect(Object.keys(task.result).sort()).toEqual(expect.arrayContaining(['since', 'queriedAt', 'requests', 'purged', 'failed', 'deferred']));
    }
    expect(await exists(path.join(fx.root, 'plain'))).toBe(false);
  });

  it('serves output from `first` on, with the right `last`', async () => {
    const reply = await call(d.socket, 'POST', '/v1/sync', { body: '{}' });
    const task = await finishedTask(d.socket, reply.json.task_id);
    const n: number = task.output.length;
    expect(n).toBeGreaterThanOrEqual(3);
    const all = (await call(d.socket, 'GET', `/v1/tasks/${task.id}`)).json;
    expect(all.output).toEqual(task.output);
    expect(all.last).toBe(n);
    const tail = (await call(d.socket, 'GET', `/v1/tasks/${task.id}?first=1`)).json;
    expect(tail.output).toEqual(task.output.slice(1));
    expect(tail.last).toBe(n);
    const beyond = (await call(d.socket, 'GET', `/v1/tasks/${task.id}?first=${n + 5}&wait=30`)).json;
    expect(beyond.output).toEqual([]);
    expect(beyond.last).toBe(n + 5);
  });
});
