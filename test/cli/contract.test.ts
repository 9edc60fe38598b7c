/**
 * The purge contract as a user meets it, through the built CLI against the
 * embedded service: the four ways a purge used to be missed or repeated.
 * A skew margin of one second, and a wait just past it, put each request
 * behind the cursor, where only the contract (and not the margin) can find it.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { mkdir, rename, readdir } from 'node:fs/promises';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { runCli, logLines } from '../helpers/cli.js';
import { makeFixture, exists, readState, type Fixture } from '../helpers/fixture.js';

let fx: Fixture;
let second: string;
beforeEach(async () => {
  fx = await makeFixture();
  second = path.join(fx.tmp.path, 'second-disk');
  await mkdir(second);
});
afterEach(async () => {
  spawnSync('umount', ['-l', second]);
  await fx.close();
});

const MARGIN = ['--skew-margin', '1s'];
/** Past the margin: a request filed before now is behind the next `since`. */
const pastMargin = () => sleep(1_200);
const once = (...extra: string[]) => runCli(['once', '--json', ...fx.args(...MARGIN, ...extra)]);
const report = (stdout: string) => JSON.parse(stdout) as Record<string, any>;

async function cacheIn(dir: string, name: string): Promise<string> {
  const at = path.join(dir, name);
  await mkdir(at, { recursive: true });
  return at;
}

describe('the purge contract through the CLI', () => {
  it('a location that cannot be read fails the run and keeps its requests until it can be read', async () => {
    const stale = await cacheIn(second, 'deps');
    const elsewhere = await fx.makeCache('deps');
    const away = `${second}.away`;
    await rename(second, away); // the disk is not there this time
    await fx.request('deps');

    const first = await once('--cache-root', second);
    expect(first.code, first.stderr).toBe(1);
    const r = report(first.stdout);
    expect(r.failed).toEqual([expect.objectContaining({ name: '(location)', path: second })]);
    // The rest goes on: the readable root's cache is purged.
    expect(r.purged.map((p: { path: string }) => p.path)).toEqual([elsewhere]);
    expect(r.records).toEqual([expect.objectContaining({ cacheName: 'deps', applied: null, awaiting: [second] })]);

    await pastMargin();
    expect((await once('--cache-root', second)).code).toBe(1);
    // The agent never creates a missing root: that would hide a missing mount.
    expect(await exists(second)).toBe(false);

    await rename(away, second);
    const back = await once('--cache-root', second);
    expect(back.code, back.stderr).toBe(0);
    expect(report(back.stdout).purged.map((p: { path: string }) => p.path)).toEqual([stale]);
    expect(await exists(stale)).toBe(false);
  });

  it('a disk mounted late is judged, not the empty mount point beneath it', async (ctx) => {
    const disk = path.join(fx.tmp.path, 'disk');
    const stale = path.join(second, 'deps');
    await cacheIn(disk, 'deps');
    await fx.request('deps');
    expect((await once('--cache-root', second)).code).toBe(0); // the mount point, empty
    await pastMargin();
    if (spawnSync('mount', ['--bind', disk, second]).status !== 0) return ctx.skip(); // needs root
    const mounted = await once('--cache-root', second);
    expect(mounted.code, mounted.stderr).toBe(0);
    expect(report(mounted.stdout).purged.map((p: { path: string }) => p.path)).toEqual([stale]);
  });

  it('a change of worker pool asks the new pool for everything it holds', async () => {
    const other = 'test-prov/other-worker';
    const cache = await fx.makeCache('toolchain');
    const res = await fetch(`${fx.service.url}/api/purge-cache/v1/purge-cache/${other}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ cacheName: 'toolchain' }),
    });
    expect(res.status).toBe(204);
    expect((await once()).code).toBe(0); // the old pool: nothing for it
    await pastMargin();

    const moved = await runCli(['once', '--json', ...fx.args(...MARGIN), '--worker-pool-id', other]);
    expect(moved.code, moved.stderr).toBe(0);
    const r = report(moved.stdout);
    expect(r.since).toBeNull();
    expect(r.purged.map((p: { path: string }) => p.path)).toEqual([cache]);
    expect(
      logLines(moved.stderr).some((l) => /cursor was taken for another configuration/.test(String(l.msg)) && /worker pool changed/.test(String(l.msg))),
    ).toBe(true);
    expect((await readState(fx.stateDir)).identity.workerPool).toBe(other);
  });

  it('a location added later is judged against the requests filed before it', async () => {
    const stale = await cacheIn(second, 'deps');
    await fx.request('deps');
    expect((await once()).code).toBe(0);
    await pastMargin();
    const added = await once('--cache-root', second);
    expect(added.code, added.stderr).toBe(0);
    expect(report(added.stdout).since).toBeNull();
    expect(report(added.stdout).purged.map((p: { path: string }) => p.path)).toEqual([stale]);
  });

  it('a cache re-created right after its purge is not purged again, by once or by exec --sync', async () => {
    const cache = await fx.makeCache('warm');
    await fx.request('warm');
    expect(report((await once('--skew-margin', '5m')).stdout).purged).toHaveLength(1);
    await mkdir(cache); // the next task warms it again, well inside the margin
    const again = await once('--skew-margin', '5m');
    expect(again.code, again.stderr).toBe(0);
    expect(report(again.stdout).purged).toEqual([]);
    expect(await exists(cache)).toBe(true);

    // exec --sync: the sync purges the old cache, exec creates the new one, and the next run keeps it.
    await fx.request('warm');
    const exec = await runCli([
      'exec',
      ...fx.args('--skew-margin', '5m'),
      '--sync',
      '--cache',
      'warm',
      '--',
      'sh',
      '-c',
      'touch "$PURGE_CACHE_AGENT_CACHE_0/built"',
    ]);
    expect(exec.code, exec.stderr).toBe(0);
    expect(await readdir(cache)).toEqual(['built']);
    const after = await once('--skew-margin', '5m');
    expect(report(after.stdout).purged).toEqual([]);
    expect(await readdir(cache)).toEqual(['built']);
    const records = (await readState(fx.stateDir)).records as { cacheName: string; purged: number }[];
    expect(records.map((r) => [r.cacheName, r.purged])).toEqual([
      ['warm', 1],
      ['warm', 1],
    ]);
  });
});
