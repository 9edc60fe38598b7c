/**
 * One cycle end to end, in process, on real things: the embedded service on
 * 127.0.0.1, real cache directories, the real state file. Query → records
 * saved → look → purge into the trash; the cursor moves only when every
 * request of the query is accounted for.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { mkdir, readdir, readFile, rename, stat } from 'node:fs/promises';
import path from 'node:path';
import { makeFixture, exists, POOL, POOL_PARTS, type Fixture } from '../helpers/fixture.js';
import { loadSettings } from '../../src/config/index.js';
import { silentLogger } from '../../src/log.js';
import { systemClock } from '../../src/edges/clock.js';
import { StateStore } from '../../src/edges/state.js';
import { resolveSources } from '../../src/edges/caches/inventory.js';
import { PurgeCacheClient } from '../../src/edges/upstream/client.js';
import { encodeCacheName } from '../../src/core/names.js';
import { adoptIdentity, newObservations, runCycle, runRecheck, type CycleContext } from '../../src/engine/cycle.js';
import { localContext } from '../../src/engine/context.js';

const TRASH = '.purge-cache-agent-trash';
const logger = silentLogger();

let fx: Fixture | undefined;
let store: StateStore | undefined;
afterEach(async () => {
  await store?.close();
  store = undefined;
  await fx?.close();
  fx = undefined;
});

/** The context a cycle runs in, over the fixture's service and state directory, with these cache roots. */
async function cycleContext(f: Fixture, roots: string[]): Promise<CycleContext> {
  const settings = await loadSettings({
    flags: { rootUrl: f.service.url, workerPoolId: POOL, cacheRoot: roots, stateDir: f.stateDir, inUseChecks: 'locks' },
    env: {},
    cwd: f.tmp.path,
  });
  store = await StateStore.open(settings.stateDir, { logger });
  const sources = await resolveSources(settings.cacheRoots, settings.caches);
  const local = localContext({ settings, logger, clock: systemClock, sources, store, state: store.state, observed: newObservations() });
  const ctx: CycleContext = { ...local, pool: POOL_PARTS, client: new PurgeCacheClient({ rootUrl: f.service.url, logger }) };
  adoptIdentity(ctx);
  return ctx;
}

/** What the state file says now (read as the next start would). */
const saved = (f: Fixture) => StateStore.peek(f.stateDir, logger);

async function makeCacheIn(root: string, name: string): Promise<string> {
  const encoded = encodeCacheName(name);
  if (encoded === null) throw new Error(`cache name ${name} cannot exist on disk`);
  const dir = path.join(root, encoded);
  await mkdir(dir, { recursive: true });
  return dir;
}

describe('one cycle', () => {
  it('queries, saves the records, looks, and renames the condemned cache into the trash, contents and all', async () => {
    const f = (fx = await makeFixture());
    const kept = await f.makeCache('kept');
    const doomed = await f.makeCache('doomed', { 'data.txt': 'old build output' });
    await f.request('doomed');
    const ctx = await cycleContext(f, [f.root]);

    const report = await runCycle(ctx);

    expect(report.error).toBeUndefined();
    expect(report.requests).toBe(1);
    expect(report.newRequests).toBe(1);
    expect(report.purged.map((p) => [p.name, p.path])).toEqual([['doomed', doomed]]);
    expect(report.failed).toEqual([]);
    expect(await exists(doomed)).toBe(false);
    expect(await exists(kept)).toBe(true);
    // Renamed, not deleted: the trash holds it until the trash runner empties it.
    const trashed = await readdir(path.join(f.root, TRASH));
    expect(trashed).toHaveLength(1);
    expect(await readFile(path.join(f.root, TRASH, trashed[0]!, 'data.txt'), 'utf8')).toBe('old build output');

    const state = await saved(f);
    expect(state.records.map((r) => ({ cacheName: r.cacheName, purged: r.purged, applied: r.appliedAt !== null }))).toEqual([
      { cacheName: 'doomed', purged: 1, applied: true },
    ]);
    expect(state.cursor).not.toBeNull();
    expect(state.cursor).toBe(ctx.state.cursor);
  });

  it('a failed query leaves the cursor where it was, and the next good one catches up', async () => {
    const f = (fx = await makeFixture());
    const ctx = await cycleContext(f, [f.root]);
    expect((await runCycle(ctx)).error).toBeUndefined();
    const cursor = (await saved(f)).cursor;
    expect(cursor).not.toBeNull();

    const doomed = await f.makeCache('doomed');
    await f.request('doomed');
    const working = ctx.client;
    // Nothing listens on port 1: the query fails at once.
    ctx.client = new PurgeCacheClient({ rootUrl: 'http://127.0.0.1:1', logger, maxRetries: 0 });
    const failed = await runCycle(ctx);
    expect(failed.error).toBeDefined();
    expect(failed.purged).toEqual([]);
    expect(await exists(doomed)).toBe(true);
    expect((await saved(f)).cursor).toBe(cursor);
    expect((await saved(f)).records).toEqual([]);

    ctx.client = working;
    const next = await runCycle(ctx);
    expect(next.error).toBeUndefined();
    expect(next.purged.map((p) => p.name)).toEqual(['doomed']);
    expect(await exists(doomed)).toBe(false);
    expect((await saved(f)).cursor).toBeGreaterThanOrEqual(cursor ?? Infinity);
  });

  it('an unreadable location keeps what it owes; once readable it is applied without the service, and a directory made after the request arrived is kept', async (test) => {
    const f = (fx = await makeFixture());
    const second = path.join(f.tmp.path, 'second');
    await mkdir(second);
    const here = await makeCacheIn(f.root, 'shared');
    const there = await makeCacheIn(second, 'shared');
    await f.request('shared');
    await f.request('late');
    const ctx = await cycleContext(f, [f.root, second]);

    // The second root goes away (a disk not mounted yet) for the cycle that receives the requests.
    await rename(second, `${second}-away`);
    const first = await runCycle(ctx);
    expect(first.error).toBeUndefined();
    expect(first.purged.map((p) => p.path)).toEqual([here]);
    expect(first.failed.map((e) => e.path)).toEqual([second]);
    const afterFirst = await saved(f);
    // The query succeeded, so the cursor moves; the requests stay on record, owed by the second root.
    expect(afterFirst.cursor).not.toBeNull();
    expect(afterFirst.records.map((r) => [r.cacheName, r.appliedAt]).sort()).toEqual([
      ['late', null],
      ['shared', null],
    ]);

    await rename(`${second}-away`, second);
    const late = await makeCacheIn(second, 'late');
    const lateBirth = (await stat(late)).birthtimeMs;
    if (!(lateBirth > 0)) test.skip('this filesystem reports no birth time, so a new directory cannot be told from an old one');

    const recheck = await runRecheck(ctx);
    expect(recheck.failed).toEqual([]);
    expect(recheck.purged.map((p) => p.path)).toEqual([there]);
    expect(await exists(there)).toBe(false);
    expect(await exists(late)).toBe(true);
    const afterRecheck = await saved(f);
    expect(afterRecheck.records.every((r) => r.appliedAt !== null)).toBe(true);
    // A recheck asks nothing of the service, so it never moves the cursor.
    expect(afterRecheck.cursor).toBe(afterFirst.cursor);
  });
});
