/**
 * Filesystem faults ("Faults"): a cache removed, moved or replaced by someone
 * else between the listing and the rename, a deferred purge meeting a cache
 * recreated on the old inode, and a trash entry removed while it is deleted.
 */
import { describe, expect, it } from 'vitest';
import { lstat, mkdir, readdir, rename, rm, symlink, unlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { makeFixture, exists, hashTree, POOL, type Fixture } from '../helpers/fixture.js';
import { captureLogger } from '../helpers/servers.js';
import { loadSettings } from '../../src/config/index.js';
import { resolveSources } from '../../src/edges/caches/inventory.js';
import { emptyTrash } from '../../src/edges/caches/trash.js';
import { PurgeCacheClient } from '../../src/edges/upstream/index.js';
import { StateStore } from '../../src/edges/state.js';
import { runCycle, newObservations, type CycleContext } from '../../src/engine/cycle.js';
import { systemClock } from '../../src/edges/clock.js';
import type { UsageProbe } from '../../src/edges/caches/inuse.js';
import { record, skipBecause } from './support.js';
import { releaseAfterEach } from '../helpers/mounts.js';

let fx: Fixture;
releaseAfterEach(() => fx);

const trash = () => path.join(fx.root, '.purge-cache-agent-trash');

describe('a cache removed or replaced by someone else during a purge', () => {
  /** A cycle in-process whose in-use check (which runs between listing and renaming) lets `meddle` act. */
  async function cycleWith(meddle: (paths: string[]) => Promise<void>) {
    const log = captureLogger();
    const settings = await loadSettings({
      flags: { rootUrl: fx.service.url, workerPoolId: POOL, cacheRoot: [fx.root], stateDir: fx.stateDir, inUseChecks: 'locks' },
      env: {},
      cwd: fx.tmp.path,
    });
    const store = await StateStore.open(settings.stateDir, { logger: log.logger });
    const usage: UsageProbe = {
      async holdersOf(paths) {
        await meddle(paths);
        return new Map();
      },
    };
    const ctx: CycleContext = {
      settings,
      pool: { provisionerId: 'test-prov', workerType: 'test-worker' },
      sources: await resolveSources(settings.cacheRoots, settings.caches),
      client: new PurgeCacheClient({ rootUrl: fx.service.url, logger: log.logger }),
      usage,
      clock: systemClock,
      logger: log.logger,
      store,
      state: store.state,
      observed: newObservations(),
    };
    try {
      const report = await runCycle(ctx);
      return { report, log, state: ctx.state };
    } finally {
      await store.close();
    }
  }

  it('removed, moved, or replaced by a symlink, a file or another directory between listing and rename: never purged, never followed', async (ctx) => {
    fx = await makeFixture();
    const outsideHash = await hashTree(fx.outside);
    const variants: [string, (p: string) => Promise<void>, (p: string) => Promise<void>][] = [
      [
        'removed',
        (p) => rm(p, { recursive: true }),
        async (p) => {
          expect(await exists(p)).toBe(false);
        },
      ],
      [
        'moved aside',
        (p) => rename(p, `${p}-moved`),
        async (p) => {
          expect(await exists(`${p}-moved/data.txt`)).toBe(true);
        },
      ],
      [
        'replaced by a symlink out',
        async (p) => (await rm(p, { recursive: true }), symlink(fx.outside, p)),
        async (p) => {
          expect(await exists(p)).toBe(true);
        },
      ],
      [
        'replaced by a symlink to /',
        async (p) => (await rm(p, { recursive: true }), symlink('/', p)),
        async (p) => {
          expect(await exists(p)).toBe(true);
        },
      ],
      [
        'replaced by a file',
        async (p) => (await rm(p, { recursive: true }), writeFile(p, 'file')),
        async (p) => {
          expect(await exists(p)).toBe(true);
        },
      ],
      [
        'replaced by a new directory',
        // Made before the old one goes, so it cannot reuse its inode (that case is the next test's).
        async (p) => (await mkdir(`${p}-new`), await writeFile(path.join(`${p}-new`, 'new'), 'new'), await rm(p, { recursive: true }), rename(`${p}-new`, p)),
        async (p) => {
          expect(await exists(path.join(p, 'new'))).toBe(true);
        },
      ],
    ];
    for (const [name, meddle, check] of variants) {
      const dir = await fx.makeCache(`victim ${name}`);
      await fx.makeCache('bystander');
      await fx.request(`victim ${name}`);
      const { report, log, state } = await cycleWith(async (paths) => {
        expect(paths).toEqual([dir]);
        await meddle(dir);
      });
      expect(report.error, name).toBeUndefined();
      expect(report.purged, name).toEqual([]);
      expect(report.failed, name).toEqual([]);
      expect(state.pending, name).toEqual([]);
      expect(state.cursor, name).toEqual(expect.any(Number));
      expect(
        log.lines().some((l) => /disappeared or was replaced|changed under us/.test(l.msg)),
        `${name}: ${log.text()}`,
      ).toBe(true);
      await check(dir);
      expect(await exists(path.join(fx.root, 'bystander'))).toBe(true);
      expect(await hashTree(fx.outside), name).toBe(outsideHash);
      for (const p of [dir, `${dir}-moved`]) {
        const st = await lstat(p).catch(() => null);
        // A symlink is unlinked as a link: never followed out of the root.
        if (st?.isSymbolicLink() || st?.isFile()) await unlink(p);
        else if (st) await rm(p, { recursive: true });
      }
    }
    expect(await readdir(trash())).toEqual([]);
    record(ctx, {
      cases: variants.length,
      unit: 'kinds of interference',
      detail: variants.map((v) => v[0]).join('; ') + ' — between the in-use check and the rename; the cycle completes, nothing is purged or followed',
    });
  });

  it('a deferred purge does not follow a recreated cache that reuses the old inode', async (ctx) => {
    fx = await makeFixture();
    // The state after a purge of "reborn" was deferred an hour ago (in use), and its user has since
    // deleted and recreated it — with the same inode number, which filesystems reuse once freed.
    const dir = await fx.makeCache('reborn', { fresh: 'new contents' });
    const st = await lstat(dir, { bigint: true });
    if (Number(st.birthtimeMs) === 0) skipBecause(ctx, 'this filesystem reports no birth time, so a reused inode cannot be told apart');
    const hourAgo = Date.now() - 3_600_000;
    await mkdir(fx.stateDir, { recursive: true });
    await writeFile(
      path.join(fx.stateDir, 'state.json'),
      JSON.stringify({
        version: 1,
        cursor: Date.now() - 60_000,
        latestClock: Date.now() - 60_000,
        firstSeen: {},
        leases: [],
        lastUsed: {},
        pending: [{ name: 'reborn', path: dir, key: `${st.dev}:${st.ino}`, beforeMs: hourAgo, reason: 'in-use', since: hourAgo }],
      }),
      { mode: 0o600 },
    );
    const { report, log, state } = await cycleWith(async () => {});
    expect(report.purged).toEqual([]);
    expect(await exists(path.join(dir, 'fresh'))).toBe(true);
    expect(state.pending).toEqual([]);
    expect(log.lines().some((l) => l.msg.startsWith('pending purge dropped'))).toBe(true);
    record(ctx, {
      cases: 1,
      unit: 'crafted state',
      detail: 'a pending purge whose device:inode now belongs to a directory born after the request: dropped, not purged',
    });
  });

  it('a trash entry removed by someone else while it is being deleted is no failure', async (ctx) => {
    fx = await makeFixture();
    // The agent's own trash (mode 0700): it empties no other.
    await mkdir(trash(), { mode: 0o700 });
    const rounds = 5;
    for (let round = 0; round < rounds; round++) {
      const entry = path.join(trash(), `entry-${round}`);
      for (let d = 0; d < 20; d++) {
        await mkdir(path.join(entry, `d${d}`, 'sub'), { recursive: true });
        for (let f = 0; f < 20; f++) await writeFile(path.join(entry, `d${d}`, 'sub', `f${f}`), 'x');
      }
      const [report] = await Promise.all([emptyTrash([trash()]), rm(entry, { recursive: true, force: true })]);
      expect(report.failures).toEqual([]);
      expect(await readdir(trash())).toEqual([]);
    }
    record(ctx, { cases: rounds, unit: 'races', detail: '400 files in 40 directories, deleted concurrently by the agent and by rm -rf: no failure reported' });
  });
});
