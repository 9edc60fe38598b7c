/**
 * Eviction on real directories: a size budget on a temp dir, and a real small
 * tmpfs for --min-free where the sandbox lets us mount one.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdir, readdir, utimes, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { runEviction, type EvictionContext } from '../../src/engine/eviction.js';
import { resolveSources } from '../../src/edges/caches/inventory.js';
import { createUsageProbe } from '../../src/edges/caches/inuse.js';
import { emptyState } from '../../src/edges/state.js';
import { DEFAULTS, type Settings } from '../../src/config/index.js';
import { silentLogger } from '../../src/log.js';
import { makeTempDir, type TempDir } from '../helpers/tmp.js';
import { exists, hashTree } from '../helpers/fixture.js';

const DAY = 86_400_000;
const MB = 1024 * 1024;
/**
 * The agent's clock in these tests, 100 days ahead. A cache's last use is at
 * least its creation (its birth time, now), so mtimes are placed relative to
 * this later "now" to give each cache a controlled last use.
 */
const NOW = Date.now() + 100 * DAY;
let tmp: TempDir;
let root: string;
const children: ChildProcess[] = [];

beforeEach(async () => {
  tmp = await makeTempDir('pca-evict-');
  root = path.join(tmp.path, 'caches');
  await mkdir(root);
});
afterEach(async () => {
  for (const child of children.splice(0)) child.kill('SIGKILL');
  await tmp.cleanup();
});

/** A cache of `mb` megabytes whose last use (mtime) was `daysAgo` days ago. */
async function makeCache(name: string, mb: number, daysAgo: number, at = root): Promise<string> {
  const dir = path.join(at, name);
  await mkdir(dir, { recursive: true });
  if (mb > 0) await writeFile(path.join(dir, 'blob'), Buffer.alloc(mb * MB, 1));
  const t = new Date(NOW - daysAgo * DAY);
  await utimes(dir, t, t);
  return dir;
}

async function context(overrides: Partial<Settings>, at = root, state = emptyState()): Promise<EvictionContext> {
  const settings = { ...DEFAULTS, ...overrides };
  return {
    settings,
    sources: await resolveSources([at], []),
    usage: createUsageProbe({ sources: { locks: true, processes: true }, logger: silentLogger() }),
    state,
    logger: silentLogger(),
    clock: { now: () => NOW, monotonic: () => performance.now() },
  };
}

const remaining = async (at = root) => (await readdir(at)).filter((n) => !n.startsWith('.')).sort();

describe('--max-size', () => {
  it('evicts least recently used first, to 10% below the limit, and leaves the rest', async () => {
    await makeCache('newest', 3, 1);
    await makeCache('middle', 3, 5);
    await makeCache('oldest', 3, 9);
    await makeCache('ancient', 3, 20);
    // 12 MB > 10 MB; the target is 9 MB: 'ancient' goes (9 MB left, at the target).
    const result = await runEviction(await context({ maxSize: 10 * MB }), { dryRun: false });
    expect(result.evicted.map((e) => [e.name, e.reason])).toEqual([['ancient', 'max-size']]);
    expect(result.evicted[0]!.bytes).toBeGreaterThanOrEqual(3 * MB);
    expect(await remaining()).toEqual(['middle', 'newest', 'oldest']);
  });

  it('holds with hysteresis: a second pass right after evicts nothing, and a small growth does not trigger one', async () => {
    for (const [i, age] of [5, 4, 3, 2, 1].entries()) await makeCache(`c${i}`, 2, age);
    const ctx = await context({ maxSize: 9 * MB });
    const first = await runEviction(ctx, { dryRun: false });
    expect(first.evicted.length).toBeGreaterThan(0);
    await makeCache('small-new', 0, 0);
    await writeFile(path.join(root, 'small-new', 'x'), Buffer.alloc(MB / 2));
    await utimes(path.join(root, 'small-new'), new Date(NOW), new Date(NOW));
    const second = await runEviction(ctx, { dryRun: false });
    expect(second.evicted).toEqual([]);
  });

  it('never evicts a cache in use, and says the limit is still crossed', async () => {
    const held = await makeCache('held', 8, 30);
    await makeCache('idle', 3, 1);
    const sleeper = spawn('sleep', ['600'], { cwd: held, stdio: 'ignore' });
    children.push(sleeper);
    await new Promise((r) => sleeper.once('spawn', r));
    const result = await runEviction(await context({ maxSize: 5 * MB }), { dryRun: false });
    expect(result.evicted.map((e) => e.name)).toEqual(['idle']);
    expect(await exists(held)).toBe(true);
  });
});

describe('--max-unused', () => {
  it('evicts exactly the caches unused for longer than the limit', async () => {
    await makeCache('fresh', 0, 1);
    await makeCache('borderline', 0, 6.9);
    await makeCache('stale', 0, 8);
    await makeCache('very-stale', 0, 40);
    const result = await runEviction(await context({ maxUnused: 7 * DAY }), { dryRun: false });
    expect(result.evicted.map((e) => e.name).sort()).toEqual(['stale', 'very-stale']);
    expect(result.evicted.every((e) => e.reason === 'max-unused')).toBe(true);
    expect(await remaining()).toEqual(['borderline', 'fresh']);
  });

  it('counts a recent lease release as use', async () => {
    await makeCache('released-lately', 0, 30);
    const state = { ...emptyState(), lastUsed: { 'released-lately': NOW - DAY } };
    const result = await runEviction(await context({ maxUnused: 7 * DAY }, root, state), { dryRun: false });
    expect(result.evicted).toEqual([]);
  });

  it('never evicts a cache with a live lease', async () => {
    await makeCache('leased', 0, 30);
    const state = { ...emptyState(), leases: [{ cacheName: 'leased', owner: 'task-1', expiresAt: NOW + 600_000, ttlSeconds: 600, acquiredAt: NOW }] };
    const result = await runEviction(await context({ maxUnused: 7 * DAY }, root, state), { dryRun: false });
    expect(result.evicted).toEqual([]);
  });
});

describe('dry run', () => {
  it('reports what would be evicted and why, and changes nothing', async () => {
    await makeCache('old', 2, 30);
    await makeCache('new', 2, 0);
    const before = await hashTree(tmp.path);
    const result = await runEviction(await context({ maxUnused: 7 * DAY, maxSize: 3 * MB }), { dryRun: true });
    expect(result.evicted.map((e) => [e.name, e.reason])).toEqual([['old', 'max-unused']]);
    expect(await hashTree(tmp.path)).toBe(before);
  });

  it('shows the size each eviction would free, also under a limit that needs no sizes', async () => {
    const dir = await makeCache('old', 2, 30);
    const result = await runEviction(await context({ maxUnused: 7 * DAY }), { dryRun: true });
    expect(result.evicted).toEqual([{ name: 'old', path: dir, reason: 'max-unused', bytes: 2 * MB }]);
  });
});

describe('--min-free on a small filesystem of its own', () => {
  let mountPoint: string;
  let mounted = false;
  beforeEach(async () => {
    mountPoint = path.join(tmp.path, 'fs');
    await mkdir(mountPoint);
    mounted = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=16m', 'tmpfs', mountPoint]).status === 0;
  });
  afterEach(() => {
    if (mounted) spawnSync('umount', ['-l', mountPoint]);
  });

  it('evicts least recently used caches until free space is 10% above the limit', async (test) => {
    if (!mounted) test.skip('this sandbox cannot mount a tmpfs (needs root and mount rights)');
    const fsRoot = path.join(mountPoint, 'caches');
    await mkdir(fsRoot);
    await makeCache('a-newest', 3, 1, fsRoot);
    await makeCache('b-middle', 3, 2, fsRoot);
    await makeCache('c-older', 3, 3, fsRoot);
    await makeCache('d-oldest', 3, 4, fsRoot);
    // 16 MB with 12 MB used: ~4 MB free. Want 6 MB free → target 6.6 MB: evict d (→ ~7 MB free).
    const result = await runEviction(await context({ minFree: { bytes: 6 * MB } }, fsRoot), { dryRun: false });
    expect(result.evicted.map((e) => [e.name, e.reason])).toEqual([['d-oldest', 'min-free']]);
    expect(await remaining(fsRoot)).toEqual(['a-newest', 'b-middle', 'c-older']);
    // Bytes still in the trash count as free: a second pass evicts nothing more.
    const again = await runEviction(await context({ minFree: { bytes: 6 * MB } }, fsRoot), { dryRun: false });
    expect(again.evicted).toEqual([]);
  });

  it('accepts a percentage', async (test) => {
    if (!mounted) test.skip('this sandbox cannot mount a tmpfs');
    const fsRoot = path.join(mountPoint, 'caches');
    await mkdir(fsRoot);
    for (const [i, age] of [4, 3, 2, 1].entries()) await makeCache(`c${i}`, 3, age, fsRoot);
    const result = await runEviction(await context({ minFree: { percent: 50 } }, fsRoot), { dryRun: false });
    // 50% of 16 MB = 8 MB, target 8.8 MB: from ~4 MB free, two 3 MB caches go.
    expect(result.evicted.map((e) => e.name)).toEqual(['c0', 'c1']);
  });
});

describe('through the CLI', () => {
  it('once --json reports evictions (and a dry run only shows them)', async () => {
    const { runCli } = await import('../helpers/cli.js');
    const { makeFixture } = await import('../helpers/fixture.js');
    const fx = await makeFixture();
    try {
      const older = await fx.makeCache('older', { blob: 'x'.repeat(MB) });
      await new Promise((r) => setTimeout(r, 20));
      const newer = await fx.makeCache('newer', { blob: 'y'.repeat(MB) });
      const dry = await runCli(['once', '--json', ...fx.args('--max-size', '1.5M', '--dry-run')]);
      expect(dry.code, dry.stderr).toBe(0);
      expect(JSON.parse(dry.stdout).evicted.map((e: { name: string; reason: string }) => [e.name, e.reason])).toEqual([['older', 'max-size']]);
      expect(await exists(older)).toBe(true);
      const real = await runCli(['once', '--json', ...fx.args('--max-size', '1.5M')]);
      expect(real.code, real.stderr).toBe(0);
      const evicted = JSON.parse(real.stdout).evicted;
      expect(evicted.map((e: { name: string }) => e.name)).toEqual(['older']);
      expect(evicted[0].bytes).toBeGreaterThanOrEqual(MB);
      expect(await exists(older)).toBe(false);
      expect(await exists(newer)).toBe(true);
    } finally {
      await fx.close();
    }
  });
});
