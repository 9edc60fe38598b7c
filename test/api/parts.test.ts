/** The API's pieces on their own: token check, target parsing, addresses, task store, tree sizes, schedule intervals, socket paths. */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { link, lstat, mkdir, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import fc from 'fast-check';
import { TokenCheck } from '../../src/api/auth.js';
import { splitTarget } from '../../src/api/http.js';
import { isLoopback, clientSocketCandidates, serverSocketPath, SYSTEMD_SOCKET } from '../../src/api/config.js';
import { TaskStore } from '../../src/api/tasks.js';
import { measureTree } from '../../src/edges/caches/size.js';
import { scheduleInterval } from '../../src/api/readiness.js';
import { encodeSegment } from '../../src/api/client.js';
import { DEFAULTS, type Settings } from '../../src/config/index.js';
import { makeTempDir, type TempDir } from '../helpers/tmp.js';

describe('TokenCheck', () => {
  const token = 'a-token-of-exactly-32-characters';
  const check = new TokenCheck(token);
  it('accepts exactly "Bearer <token>"', () => {
    expect(check.accepts(`Bearer ${token}`)).toBe(true);
    expect(check.accepts(`bearer ${token}`)).toBe(true);
  });
  it('refuses anything else without throwing, whatever its length', () => {
    for (const header of [undefined, '', 'Bearer', `Bearer ${token}x`, `Bearer ${token.slice(1)}`, `Token ${token}`, token, `Bearer ${token} extra`]) {
      expect(check.accepts(header)).toBe(false);
    }
    fc.assert(fc.property(fc.string({ maxLength: 200 }), (s) => check.accepts(`Bearer ${s}`) === (s.trim() === token)));
  });
});

describe('splitTarget', () => {
  it('decodes segments without normalising dot segments', () => {
    expect(splitTarget('/v1/caches/%2E%2E').segments).toEqual(['v1', 'caches', '..']);
    expect(splitTarget('/v1/caches/a%2Fb/leases/x%20y').segments).toEqual(['v1', 'caches', 'a/b', 'leases', 'x y']);
    expect(splitTarget('/v1/status/').segments).toEqual(['v1', 'status']);
    expect(splitTarget('http://localhost/v1/status?x=1').segments).toEqual(['v1', 'status']);
    expect(splitTarget('/v1/tasks/a?first=2&wait=1').query.get('first')).toBe('2');
  });
  it('round-trips any name through the client encoding', () => {
    fc.assert(
      fc.property(fc.string({ minLength: 1, maxLength: 100, unit: 'grapheme' }), (name) => {
        expect(splitTarget(`/v1/caches/${encodeSegment(name)}`).segments).toEqual(['v1', 'caches', name]);
      }),
    );
  });
  it('refuses malformed percent-encoding', () => {
    expect(() => splitTarget('/v1/caches/%E0%A4%A')).toThrow(/percent-encoding/);
  });
});

describe('isLoopback', () => {
  it('knows loopback addresses from the rest', () => {
    for (const host of ['127.0.0.1', '127.1.2.3', '::1', '0:0:0:0:0:0:0:1', 'localhost', '::ffff:127.0.0.1']) expect(isLoopback(host), host).toBe(true);
    for (const host of ['0.0.0.0', '::', '10.0.0.1', '192.168.1.1', 'example.com', '::ffff:10.0.0.1', 'localhost.example.com'])
      expect(isLoopback(host), host).toBe(false);
  });
});

describe('socket paths', () => {
  const settings = (extra: Partial<Settings> = {}): Settings => ({ ...DEFAULTS, ...extra });
  it('defaults to $RUNTIME_DIRECTORY/api.sock, else <state dir>/api.sock', () => {
    expect(serverSocketPath(settings({ stateDir: '/x/state' }), {})).toBe('/x/state/api.sock');
    expect(serverSocketPath(settings({ stateDir: '/x/state' }), { RUNTIME_DIRECTORY: '/run/a:/run/b' })).toBe('/run/a/api.sock');
    expect(serverSocketPath(settings({ apiSocket: '/y/s.sock' }), { RUNTIME_DIRECTORY: '/run/a' })).toBe('/y/s.sock');
  });
  it('clients also try the systemd location, but only with the default state directory', () => {
    expect(clientSocketCandidates(settings(), {})).toEqual([path.join(DEFAULTS.stateDir, 'api.sock'), SYSTEMD_SOCKET]);
    expect(clientSocketCandidates(settings({ stateDir: '/x/state' }), {})).toEqual(['/x/state/api.sock']);
    expect(clientSocketCandidates(settings({ stateDir: '/x/state' }), { RUNTIME_DIRECTORY: '/run/a' })).toEqual(['/run/a/api.sock', '/x/state/api.sock']);
  });
});

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

describe('measureTree', () => {
  let tmp: TempDir;
  beforeEach(async () => {
    tmp = await makeTempDir('pca-size-');
  });
  afterEach(async () => {
    await tmp.cleanup();
  });

  it('counts regular files once, follows no symlink, and reports a missing tree as empty', async () => {
    const root = path.join(tmp.path, 'tree');
    await mkdir(path.join(root, 'a', 'b'), { recursive: true });
    await writeFile(path.join(root, 'one'), 'x'.repeat(100));
    await writeFile(path.join(root, 'a', 'b', 'two'), 'y'.repeat(50));
    await link(path.join(root, 'one'), path.join(root, 'a', 'hardlink'));
    const outside = path.join(tmp.path, 'outside');
    await mkdir(outside);
    await writeFile(path.join(outside, 'big'), 'z'.repeat(10_000));
    await symlink(outside, path.join(root, 'escape'));
    await symlink(path.join(outside, 'big'), path.join(root, 'a', 'file-link'));
    // Sizes are the blocks files occupy (st_blocks × 512), and a hard-linked file counts once.
    const occupied = async (p: string): Promise<number> => (await lstat(p)).blocks * 512;
    const expected = (await occupied(path.join(root, 'one'))) + (await occupied(path.join(root, 'a', 'b', 'two')));
    expect(expected).toBeGreaterThan(0);
    expect(await measureTree(root, Infinity)).toEqual({ bytes: expected, files: 2, complete: true });
    expect(await measureTree(path.join(tmp.path, 'nothing'), Infinity)).toEqual({ bytes: 0, files: 0, complete: true });
  });

  it('stops at the deadline and says so', async () => {
    const root = path.join(tmp.path, 'tree');
    await mkdir(path.join(root, 'sub'), { recursive: true });
    await writeFile(path.join(root, 'sub', 'f'), 'data');
    const partial = await measureTree(root, performance.now() - 1);
    expect(partial.complete).toBe(false);
  });
});

describe('scheduleInterval', () => {
  it('is the longest gap between runs', async () => {
    expect(await scheduleInterval('*/1 * * * * *')).toBe(1000);
    expect(await scheduleInterval('* * * * *')).toBe(60_000);
    expect(await scheduleInterval('*/5 * * * *')).toBe(300_000);
    expect(await scheduleInterval('0,10 * * * *')).toBe(50 * 60_000);
  });
});
