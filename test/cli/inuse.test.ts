/**
 * Never purge a cache in use, through the built CLI with real
 * holders: flock(1), a process's working directory, an open file, leases.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { readlinkSync } from 'node:fs';
import { mkdir, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { runCli, startCli, waitForOutput, finished, logLines } from '../helpers/cli.js';
import { makeFixture, exists, readState, type Fixture } from '../helpers/fixture.js';
import { eventually } from '../helpers/wait.js';

let fx: Fixture;
const children: ChildProcess[] = [];
beforeEach(async () => {
  fx = await makeFixture();
});
/** Kill a holder and everything it started (flock(1)'s command inherits its lock). */
function killGroup(child: ChildProcess): Promise<void> {
  try {
    process.kill(-child.pid!, 'SIGKILL');
  } catch {
    // already gone
  }
  return child.exitCode !== null || child.signalCode !== null
    ? Promise.resolve()
    : new Promise((r) =>
        child.once('exit', () => {
          r();
        }),
      );
}
afterEach(async () => {
  await Promise.all(children.splice(0).map(killGroup));
  await fx.close();
});

const once = (...extra: string[]) => runCli(['once', '--json', ...fx.args(...extra)]);
const report = (stdout: string) => JSON.parse(stdout) as { purged: { name: string }[]; deferred: { name: string; reason: string }[]; failed: unknown[] };

/** Start a holder and wait until `ready` says it holds. */
async function hold(command: string, args: string[], opts: { cwd?: string } = {}, ready?: () => boolean): Promise<ChildProcess> {
  const child = spawn(command, args, { stdio: 'ignore', cwd: opts.cwd, detached: true });
  children.push(child);
  await new Promise((r) => child.once('spawn', r));
  if (ready) await eventually(ready, `${command} to hold the cache`);
  return child;
}
const lockedByOthers = (p: string) => spawnSync('flock', ['-n', '-E', '75', p, 'true']).status === 75;
/** Whether process `pid` has `file` open on descriptor `fd`. */
const fdPointsAt = (pid: number, fd: number, file: string) => {
  try {
    return readlinkSync(`/proc/${pid}/fd/${fd}`) === file;
  } catch {
    return false;
  }
};

describe('deferring a purge while a cache is in use', () => {
  it('defers while flock(1) holds the cache directory, names the holder, exits 0, and purges after release', async () => {
    const dir = await fx.makeCache('locked');
    const holder = await hold('flock', ['-s', dir, 'sleep', '600'], {}, () => lockedByOthers(dir));
    await fx.request('locked');
    const first = await once();
    expect(first.code, first.stderr).toBe(0);
    const r = report(first.stdout);
    expect(r.purged).toEqual([]);
    expect(r.deferred.map((d) => d.name)).toEqual(['locked']);
    expect(r.deferred[0]!.reason).toMatch(/sleep 60|flock/);
    expect(await exists(dir)).toBe(true);
    expect((await readState(fx.stateDir)).pending.map((p: { name: string }) => p.name)).toEqual(['locked']);
    await killGroup(holder);
    // The request is behind the cursor now; the pending purge carries it.
    const second = await once();
    expect(report(second.stdout).purged.map((p) => p.name)).toEqual(['locked']);
    expect(await exists(dir)).toBe(false);
  });

  it('defers while a file deep inside the cache is locked', async () => {
    const dir = await fx.makeCache('deep', { 'a/b/c/Cargo.lock': 'x' });
    const file = path.join(dir, 'a/b/c/Cargo.lock');
    await hold('flock', [file, 'sleep', '600'], {}, () => lockedByOthers(file));
    await fx.request('deep');
    const r = report((await once()).stdout);
    expect(r.deferred.map((d) => d.name)).toEqual(['deep']);
    expect(await exists(dir)).toBe(true);
  });

  it('defers while a process has its working directory in the cache, or a file open in it', async () => {
    const cwdCache = await fx.makeCache('cwd');
    const openCache = await fx.makeCache('open', { 'data.bin': 'x' });
    await hold('sleep', ['600'], { cwd: path.join(cwdCache) });
    const opened = path.join(openCache, 'data.bin');
    const holder = await hold('sh', ['-c', `exec 3<"${opened}"; exec sleep 600`]);
    await eventually(() => fdPointsAt(holder.pid!, 3, opened), 'the shell to open the file');
    await fx.request('cwd');
    await fx.request('open');
    const r = report((await once()).stdout);
    expect(r.deferred.map((d) => d.name).sort()).toEqual(['cwd', 'open']);
    expect(await exists(cwdCache)).toBe(true);
    expect(await exists(openCache)).toBe(true);
  });

  it('a lease defers a purge until it is released early, or until it expires', async () => {
    const early = await fx.makeCache('early');
    const expiring = await fx.makeCache('expiring');
    expect((await runCli(['lease', 'acquire', 'early', '--owner', 'task-1', '--ttl', '10m', ...fx.args()])).code).toBe(0);
    expect((await runCli(['lease', 'acquire', 'expiring', '--owner', 'task-2', '--ttl', '1s', ...fx.args()])).code).toBe(0);
    await fx.request('early');
    await fx.request('expiring');
    const r = report((await once()).stdout);
    expect(r.deferred.find((d) => d.name === 'early')?.reason).toMatch(/task-1/);
    // The 1 s lease may or may not have expired by then; either way, after a second it has.
    await new Promise((r) => setTimeout(r, 1100));
    const released = await runCli(['lease', 'release', 'early', '--owner', 'task-1', ...fx.args()]);
    expect(released.code, released.stderr).toBe(0);
    const next = await once();
    expect(next.code, next.stderr).toBe(0);
    expect(await exists(early)).toBe(false);
    expect(await exists(expiring)).toBe(false);
  });

  it('a directory replaced while its purge is pending is left alone', async () => {
    const dir = await fx.makeCache('replaced');
    const holder = await hold('flock', ['-s', dir, 'sleep', '600'], {}, () => lockedByOthers(dir));
    await fx.request('replaced');
    expect(report((await once()).stdout).deferred.map((d) => d.name)).toEqual(['replaced']);
    // Its user moves it away and makes a new one — after the request.
    await rename(dir, path.join(fx.tmp.path, 'moved-away'));
    await killGroup(holder);
    await mkdir(dir);
    await writeFile(path.join(dir, 'new.txt'), 'fresh');
    const r = report((await once('--skew-margin', '0')).stdout);
    expect(r.purged).toEqual([]);
    expect(await exists(path.join(dir, 'new.txt'))).toBe(true);
    expect((await readState(fx.stateDir)).pending).toEqual([]);
  });

  it('the daemon purges a deferred cache within --recheck of its release, logs the deferral once, and keeps pending purges and leases across a restart', async () => {
    const dir = await fx.makeCache('busy');
    const holder = await hold('flock', ['-s', dir, 'sleep', '600'], {}, () => lockedByOthers(dir));
    await fx.request('busy');
    expect((await runCli(['lease', 'acquire', 'other', '--owner', 'keeper', '--ttl', '1h', ...fx.args()])).code).toBe(0);
    let daemon = startCli(['run', ...fx.args('--schedule', '0 0 1 1 *', '--recheck', '200ms', '--log-level', 'debug')]);
    try {
      await waitForOutput(daemon, (o) => o.stderr.includes('purge deferred'));
      daemon.kill('SIGTERM');
      expect((await finished(daemon)).code).toBe(0);
      const state = await readState(fx.stateDir);
      expect(state.pending.map((p: { name: string }) => p.name)).toEqual(['busy']);
      expect(state.leases.map((l: { owner: string }) => l.owner)).toEqual(['keeper']);

      daemon = startCli(['run', ...fx.args('--schedule', '0 0 1 1 *', '--recheck', '200ms', '--log-level', 'debug')]);
      await waitForOutput(daemon, (o) => o.stderr.includes('purge deferred'));
      await new Promise((r) => setTimeout(r, 800)); // several rechecks while still held
      await killGroup(holder);
      await waitForOutput(daemon, (o) => o.stderr.includes('purged cache after its users let go'));
      expect(await exists(dir)).toBe(false);
      const lines = logLines(daemon.output.stderr);
      expect(lines.filter((l) => String(l.msg).startsWith('purge deferred')).length).toBe(1);
      expect((await readState(fx.stateDir)).leases.map((l: { owner: string }) => l.owner)).toEqual(['keeper']);
    } finally {
      daemon.kill('SIGKILL');
    }
  });
});
