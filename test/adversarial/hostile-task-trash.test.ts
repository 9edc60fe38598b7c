/**
 * A build task that can write to the cache root (it runs as nobody; the agent
 * as root) attacks the trash: it swaps the trash with a symlink to its own
 * directory while the agent purges, or plants a trash of its own in advance.
 * Nothing the agent renames may ever land outside the agent's own 0700 trash.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { chown, lstat, mkdir, readdir, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { listCaches, type CacheDir } from '../../src/edges/caches/inventory.js';
import { moveToTrash, TRASH_DIR_NAME } from '../../src/edges/caches/trash.js';
import { runCli } from '../helpers/cli.js';
import { makeFixture, readState, type Fixture } from '../helpers/fixture.js';
import { encodeCacheName } from '../../src/core/names.js';
import { hostileTempDir, record, skipBecause } from './support.js';
import { NOBODY, asNobodySync, attackerUnavailable, exchangeLoop, openUp, stop, whenReady } from './attacker.js';
import type { TempDir } from '../helpers/tmp.js';

const VICTIM_UID = 4242;
let tmp: TempDir | undefined;
let fx: Fixture | undefined;
afterEach(async () => {
  await tmp?.cleanup();
  await fx?.close();
  tmp = fx = undefined;
});

/** Everything below `dir`, as paths relative to it. */
async function listAll(dir: string): Promise<string[]> {
  const out: string[] = [];
  const stack = [dir];
  while (stack.length) {
    const d = stack.pop()!;
    for (const e of await readdir(d, { withFileTypes: true })) {
      out.push(path.relative(dir, path.join(d, e.name)));
      if (e.isDirectory()) stack.push(path.join(d, e.name));
    }
  }
  return out;
}

/** A cache belonging to another user: mode 0700, one file. */
async function victimCache(dir: string): Promise<void> {
  await mkdir(dir, { mode: 0o700 });
  await writeFile(path.join(dir, 'secret'), 'private build output');
  await chown(path.join(dir, 'secret'), VICTIM_UID, VICTIM_UID);
  await chown(dir, VICTIM_UID, VICTIM_UID);
}

describe('the trash swapped for a symlink during purges', () => {
  for (const kind of ['root', 'single cache parent'] as const) {
    it(`never moves a cache outside its ${kind} (renameat2 RENAME_EXCHANGE loop as nobody)`, async (ctx) => {
      const why = attackerUnavailable();
      if (why) skipBecause(ctx, why);
      tmp = await hostileTempDir('pca-adv-trash-race-');
      const parent = path.join(tmp.path, 'parent');
      const loot = path.join(tmp.path, 'loot');
      await mkdir(parent);
      await mkdir(loot);
      await openUp([tmp.path], [parent, loot]);
      const COUNT = 150;
      const names = Array.from({ length: COUNT + 1 }, (_, i) => `c${i}`);
      for (const n of names) await victimCache(path.join(parent, n));
      let caches: CacheDir[];
      if (kind === 'root') caches = (await listCaches({ roots: [parent], singles: [] })).caches;
      else caches = (await listCaches({ roots: [], singles: names.map((n) => ({ name: n, path: path.join(parent, n) })) })).caches;
      expect(caches).toHaveLength(COUNT + 1);
      // The agent's trash exists (made by an earlier purge); the attacker's symlink points at its own directory.
      const first = caches.shift()!;
      await moveToTrash(first, first.key);
      const decoy = path.join(parent, '.decoy');
      await symlink(loot, decoy);
      const attacker = exchangeLoop(path.join(parent, TRASH_DIR_NAME), decoy);
      let purged = 0;
      let refused = 0;
      try {
        await whenReady(attacker);
        for (const cache of caches) {
          // A fresh open per purge: each purge faces the race at the trash's path anew.
          const ok = await moveToTrash(cache, cache.key).then(
            () => true,
            () => false,
          );
          if (ok) purged++;
          else refused++;
        }
      } finally {
        await stop(attacker);
      }
      // Whichever name the agent's trash ended up under, nothing reached the attacker's directory.
      expect(await listAll(loot)).toEqual([]);
      const [a, b] = [path.join(parent, TRASH_DIR_NAME), decoy];
      const realTrash = (await lstat(a)).isDirectory() ? a : b;
      const st = await lstat(realTrash);
      expect({ uid: st.uid, mode: st.mode & 0o7777 }).toEqual({ uid: 0, mode: 0o700 });
      const inTrash = (await readdir(realTrash)).length - 1;
      const inPlace = (await readdir(parent)).filter((n) => n.startsWith('c')).length;
      expect(inTrash + inPlace).toBe(COUNT);
      expect(inTrash).toBe(purged);
      record(ctx, {
        cases: COUNT,
        unit: 'purges',
        detail: `${kind}: the trash exchanged with a symlink to the attacker's directory in a tight renameat2 loop during ${COUNT} purges of other users' 0700 caches: ${purged} went into the agent's own trash, ${refused} were refused, none reached the attacker`,
      });
    });
  }
});

describe('a trash the task made in advance', () => {
  it('is refused for its root (a failed entry naming it and the fix; exit 1); other roots purge on', { timeout: 120_000 }, async (ctx) => {
    const why = attackerUnavailable();
    if (why) skipBecause(ctx, why);
    fx = await makeFixture();
    const second = path.join(fx.tmp.path, 'second');
    await mkdir(second);
    await openUp([fx.tmp.path], [fx.root]);
    const victim = await fx.makeCache('victim');
    await chown(victim, VICTIM_UID, VICTIM_UID);
    await mkdir(path.join(second, encodeCacheName('elsewhere')!));
    // The task's own trash, open to it: anything renamed into it would be the task's to read.
    asNobodySync('mkdir', ['-m', '0777', path.join(fx.root, TRASH_DIR_NAME)]);
    await fx.request('victim');
    await fx.request('elsewhere');
    const result = await runCli(['once', '--json', ...fx.args('--in-use-checks', 'locks', '--cache-root', second)]);
    expect(result.code, result.stderr).toBe(1);
    const report = JSON.parse(result.stdout);
    expect(report.purged.map((p: { name: string }) => p.name)).toEqual(['elsewhere']);
    expect(report.failed).toEqual([
      expect.objectContaining({
        name: 'victim',
        path: victim,
        error: expect.stringMatching(new RegExp(`refusing the trash ${path.join(fx.root, TRASH_DIR_NAME)}: it is owned by uid ${NOBODY}.*removed`)),
      }),
    ]);
    expect((await lstat(victim)).isDirectory()).toBe(true);
    expect(await readdir(path.join(fx.root, TRASH_DIR_NAME))).toEqual([]);
    expect((await readState(fx.stateDir)).pending.map((p: { name: string }) => p.name)).toEqual(['victim']);
    record(ctx, {
      cases: 1,
      unit: 'trash',
      detail:
        "nobody's own 0777 directory planted as the trash before the agent made one: that root's purge fails naming the trash and the fix, the cache stays, the other root purges",
    });
  });
});
