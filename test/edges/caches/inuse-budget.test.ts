/**
 * The in-use scan's budget, in-process: a pass that runs out of entries says
 * 'unknown' for every cache it could not judge (never "free"), keeps the
 * holders it did find, and for a while answers without scanning again. And
 * placing paths through another namespace's mounts costs a lookup per
 * ancestor, however many mounts there are.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { createUsageProbe } from '../../../src/edges/caches/inuse.js';
import { foreignView, locateTargets, type Target } from '../../../src/edges/caches/proc-view.js';
import type { Mount } from '../../../src/edges/caches/proc.js';
import { makeTempDir, type TempDir } from '../../helpers/tmp.js';

let tmp: TempDir;
let children: ChildProcess[] = [];
beforeEach(async () => {
  tmp = await makeTempDir('pca-budget-');
});
afterEach(async () => {
  for (const c of children) c.kill('SIGKILL');
  children = [];
  await tmp.cleanup();
});

async function cache(name: string): Promise<string> {
  const dir = path.join(tmp.path, name);
  await mkdir(dir, { recursive: true });
  return dir;
}

describe('the scan budget', () => {
  it('a pass that runs out says unknown for the caches it could not judge, and holds that verdict for a while', async () => {
    const free = await cache('free');
    const probe = createUsageProbe({ sources: { locks: true, processes: true }, budget: 5 });
    const first = await probe.holdersOf([free]);
    expect(first.get(free)).toEqual([
      {
        kind: 'unknown',
        detail: expect.stringMatching(/^in-use scan budget exhausted after \d+ entries; deferred rather than purged on incomplete knowledge$/),
      },
    ]);
    const again = await probe.holdersOf([free]);
    expect(again.get(free)).toEqual([{ kind: 'unknown', detail: expect.stringContaining('a recent in-use scan ran out of its budget') }]);
  });

  it('with no cooldown, every pass scans; with enough budget, a free cache is free and a held one names its holder', async () => {
    const free = await cache('free');
    const held = await cache('held');
    const child = spawn('sleep', ['30'], { cwd: held, stdio: 'ignore' });
    children.push(child);
    await new Promise((r) => child.once('spawn', r));
    const starved = createUsageProbe({ sources: { locks: false, processes: true }, budget: 1, exhaustedCooldownMs: 0 });
    for (let i = 0; i < 2; i++) expect((await starved.holdersOf([free])).get(free)![0]!.detail).toContain('in-use scan budget exhausted');
    const ample = createUsageProbe({ sources: { locks: true, processes: true } });
    const map = await ample.holdersOf([free, held]);
    expect(map.get(free)).toEqual([]);
    expect(map.get(held)!.map((h) => h.pid)).toEqual([child.pid]);
  });
});

describe('placing paths of another mount namespace', () => {
  it('finds the cache through a bind mount among 20,000 others, and nothing else', () => {
    const target: Target = { path: '/caches/c', forms: ['/caches/c'], stDev: 0n, dev: '8:1', key: '8:1:2' };
    locateTargets([target], [{ dev: '8:1', root: '/', mountPoint: '/' }]);
    const theirs: Mount[] = [{ dev: '8:1', root: '/', mountPoint: '/' }];
    for (let i = 0; i < 20_000; i++) theirs.push({ dev: '0:99', root: '/', mountPoint: `/noise/${i}` });
    theirs.push({ dev: '8:1', root: '/caches', mountPoint: '/builds' });
    const view = foreignView([target], theirs);
    expect(view('/builds/c/deep/file')).toEqual([target]);
    expect(view('/builds/cx/file')).toEqual([]);
    expect(view('/noise/7/c/file')).toEqual([]);
    expect(view('/caches/c/file')).toEqual([target]);
  });
});
