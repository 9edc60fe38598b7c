/**
 * `exec`: a command never starts on a condemned cache, and no purge
 * touches a cache while the command runs — with and without a running agent.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { runCli, startCli, waitForOutput, finished } from '../helpers/cli.js';
import { makeFixture, exists, readState, type Fixture } from '../helpers/fixture.js';

import { parsePurgeOnExit, purgesOn } from '../../src/engine/exec/purge-on-exit.js';
import { UsageError } from '../../src/errors.js';
import { eventually } from '../helpers/wait.js';

let fx: Fixture;
const children: ChildProcess[] = [];
beforeEach(async () => {
  fx = await makeFixture();
});
afterEach(async () => {
  for (const child of children.splice(0)) {
    try {
      process.kill(-child.pid!, 'SIGKILL');
    } catch {
      child.kill('SIGKILL');
    }
  }
  await fx.close();
});

// A loaded machine can take long to spawn and claim: wait generously, the exit code says what happened.
const exec = (caches: string[], command: string[], extra: string[] = []) =>
  runCli(['exec', ...caches.flatMap((c) => ['--cache', c]), ...extra, ...fx.args(), '--', ...command], { timeoutMs: 120_000 });

/** Make a purge of `name` pending: hold the cache while a cycle decides to purge it. */
async function makePending(name: string): Promise<string> {
  const dir = await fx.makeCache(name, { 'old-content.txt': 'stale' });
  const holder = spawn('flock', ['-s', dir, 'sleep', '600'], { stdio: 'ignore', detached: true });
  await eventually(() => spawnSync('flock', ['-n', '-E', '75', dir, 'true']).status === 75, `the holder's lock on ${dir}`);
  await fx.request(name);
  const cycle = await runCli(['once', '--json', ...fx.args()]);
  expect(JSON.parse(cycle.stdout).deferred.map((d: { name: string }) => d.name)).toEqual([name]);
  process.kill(-holder.pid!, 'SIGKILL');
  await new Promise((r) => holder.once('exit', r));
  return dir;
}

describe('exec', () => {
  it('carries out a pending purge before the command starts: the command sees an empty directory (no agent running)', async () => {
    const dir = await makePending('deps');
    const result = await exec(['deps'], ['sh', '-c', 'ls -A "$PURGE_CACHE_AGENT_CACHE_0"; echo "dir=$PURGE_CACHE_AGENT_CACHE_0"']);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toBe(`dir=${dir}\n`);
    expect(result.stderr).toContain('condemned by a purge request');
    expect((await readState(fx.stateDir)).pending).toEqual([]);
  });

  it('does the same through a running agent, and --sync applies a request no cycle has seen yet', async () => {
    const daemon = startCli(['run', ...fx.args('--schedule', '0 0 1 1 *')]);
    children.push(daemon);
    try {
      await waitForOutput(daemon, (o) => o.stderr.includes('purge-cache-agent started'));
      await waitForOutput(daemon, () => true);
      const dir = await fx.makeCache('fresh-request', { 'old.txt': 'stale' });
      await fx.request('fresh-request');
      const result = await exec(['fresh-request'], ['sh', '-c', 'ls -A "$PURGE_CACHE_AGENT_CACHE_0"; echo done'], ['--sync']);
      expect(result.code, result.stderr).toBe(0);
      expect(result.stdout).toBe('done\n');
      expect(await exists(path.join(dir, 'old.txt'))).toBe(false);
    } finally {
      daemon.kill('SIGTERM');
      await finished(daemon);
    }
  });

  it('holds the cache while the command runs: a purge request meanwhile is deferred, naming the lease and the lock', async () => {
    const marker = path.join(fx.tmp.path, 'started');
    const child = startCli(['exec', '--cache', 'held', '--owner', 'build-42', ...fx.args(), '--', 'sh', '-c', `echo > "${marker}"; exec sleep 600`]);
    children.push(child);
    await eventually(() => exists(marker), 'the command to start');
    await fx.request('held');
    const cycle = await runCli(['once', '--json', ...fx.args()]);
    const deferred = JSON.parse(cycle.stdout).deferred;
    expect(deferred.map((d: { name: string }) => d.name)).toEqual(['held']);
    expect(deferred[0].reason).toMatch(/build-42/);
    child.kill('SIGTERM');
    const done = await finished(child);
    expect(done.code).toBe(128 + 15);
    // Released: the pending purge goes through now.
    const after = await runCli(['once', '--json', ...fx.args()]);
    expect(JSON.parse(after.stdout).purged.map((p: { name: string }) => p.name)).toEqual(['held']);
  });

  it('passes the exit code through and forwards signals', async () => {
    expect((await exec(['a'], ['sh', '-c', 'exit 3'])).code).toBe(3);
    expect((await exec(['a'], ['no-such-command-xyz'])).code).toBe(127);
    const trap = path.join(fx.tmp.path, 'trapped');
    const child = startCli([
      'exec',
      '--cache',
      'a',
      ...fx.args(),
      '--',
      'sh',
      '-c',
      `trap 'echo INT > "${trap}"; exit 42' INT; echo ready; while :; do sleep 0.1; done`,
    ]);
    children.push(child);
    // stdio is inherited: the child's "ready" reaches exec's stdout.
    await waitForOutput(child, (o) => o.stdout.includes('ready'));
    child.kill('SIGINT');
    const done = await finished(child);
    expect(done.code).toBe(42);
    expect(await readFile(trap, 'utf8')).toBe('INT\n');
  });

  it('refuses bad usage with exit code 2', async () => {
    expect((await runCli(['exec', ...fx.args(), '--', 'true'])).code).toBe(2);
    expect((await runCli(['exec', '--cache', 'x', '--wait-timeout', 'soon', ...fx.args(), '--', 'true'])).code).toBe(2);
  });
});

describe('the --purge-on-exit list', () => {
  it('reads exit codes and the word signal, and matches the endings they name', () => {
    const policy = parsePurgeOnExit(' 1, 137 ,Signal');
    expect([...policy.codes].sort()).toEqual([1, 137]);
    expect(policy.signal).toBe(true);
    expect(purgesOn(policy, { kind: 'exit', code: 1 })).toBe(true);
    expect(purgesOn(policy, { kind: 'exit', code: 0 })).toBe(false);
    expect(purgesOn(policy, { kind: 'signal', signal: 'SIGTERM', code: 143 })).toBe(true);
    const codesOnly = parsePurgeOnExit('0,255');
    expect(purgesOn(codesOnly, { kind: 'exit', code: 255 })).toBe(true);
    expect(purgesOn(codesOnly, { kind: 'signal', signal: 'SIGTERM', code: 143 })).toBe(false);
    // A code names exec's exit code, which is 128+N for signal N.
    expect(purgesOn(parsePurgeOnExit('137'), { kind: 'signal', signal: 'SIGKILL', code: 137 })).toBe(true);
  });

  it('refuses anything else as a usage error naming the flag and the bad entry', () => {
    for (const [bad, entry] of [
      ['', 'an empty entry'],
      ['1,,2', 'an empty entry'],
      ['256', '"256"'],
      ['-1', '"-1"'],
      ['1.5', '"1.5"'],
      ['signals', '"signals"'],
      ['0x1', '"0x1"'],
    ] as const) {
      let caught: unknown;
      try {
        parsePurgeOnExit(bad);
      } catch (err) {
        caught = err;
      }
      expect(caught, bad).toBeInstanceOf(UsageError);
      expect((caught as UsageError).exitCode).toBe(2);
      expect((caught as Error).message).toContain('--purge-on-exit');
      expect((caught as Error).message).toContain(entry);
    }
  });
});

describe('exec --purge-on-exit', () => {
  /** A command that leaves a file in its cache, then ends as `end` says (a shell command). */
  const leaveThenEnd = (end: string) => ['sh', '-c', `echo half-written > "$PURGE_CACHE_AGENT_CACHE_0/build.out"; ${end}`];
  const output = (name: string) => path.join(fx.root, name, 'build.out');

  it('purges the caches when the command exits with a listed code, and keeps them on any other ending (no agent running)', async () => {
    const failed = await exec(['deps'], leaveThenEnd('exit 3'), ['--purge-on-exit', '1,3']);
    expect(failed.code, failed.stderr).toBe(3);
    expect(failed.stderr).toContain('exited with code 3, which --purge-on-exit lists');
    expect(failed.stderr).toContain('purged cache "deps"');
    expect(await exists(output('deps'))).toBe(false);
    // Purged, not merely pending; the lease is gone too.
    const state = await readState(fx.stateDir);
    expect(state.pending).toEqual([]);
    expect(state.leases ?? []).toEqual([]);

    for (const [end, code] of [
      ['exit 0', 0],
      ['exit 2', 2],
    ] as const) {
      const kept = await exec(['deps'], leaveThenEnd(end), ['--purge-on-exit', '1,3']);
      expect(kept.code, kept.stderr).toBe(code);
      expect(kept.stderr).not.toContain('purg');
      expect(await readFile(output('deps'), 'utf8')).toBe('half-written\n');
    }
  });

  it('purges on a command killed by a signal with `signal`, or by the exit code exec reports for it', async () => {
    const killed = await exec(['a'], leaveThenEnd('kill -KILL $$'), ['--purge-on-exit', 'signal']);
    expect(killed.code, killed.stderr).toBe(128 + 9);
    expect(killed.stderr).toContain('killed by SIGKILL');
    expect(await exists(output('a'))).toBe(false);

    const terminated = await exec(['b'], leaveThenEnd('kill -TERM $$'), ['--purge-on-exit', '143']);
    expect(terminated.code, terminated.stderr).toBe(128 + 15);
    expect(await exists(output('b'))).toBe(false);

    // A signal is not an exit code: a list of codes alone keeps the caches of a killed command.
    const kept = await exec(['c'], leaveThenEnd('kill -TERM $$'), ['--purge-on-exit', '1']);
    expect(kept.code, kept.stderr).toBe(128 + 15);
    expect(await readFile(output('c'), 'utf8')).toBe('half-written\n');
  });

  it('does the same through a running agent', async () => {
    const daemon = startCli(['run', ...fx.args('--schedule', '0 0 1 1 *')]);
    children.push(daemon);
    try {
      await waitForOutput(daemon, (o) => o.stderr.includes('purge-cache-agent started'));
      const failed = await exec(['deps'], leaveThenEnd('exit 1'), ['--purge-on-exit', '1']);
      expect(failed.code, failed.stderr).toBe(1);
      expect(failed.stderr).toContain('purged cache "deps"');
      expect(await exists(output('deps'))).toBe(false);
      const killed = await exec(['deps'], leaveThenEnd('kill -KILL $$'), ['--purge-on-exit', 'signal']);
      expect(killed.code, killed.stderr).toBe(137);
      expect(await exists(output('deps'))).toBe(false);
      const kept = await exec(['deps'], leaveThenEnd('exit 0'), ['--purge-on-exit', '1,signal']);
      expect(kept.code, kept.stderr).toBe(0);
      expect(await readFile(output('deps'), 'utf8')).toBe('half-written\n');
    } finally {
      daemon.kill('SIGTERM');
      expect((await finished(daemon)).code).toBe(0);
    }
    expect((await readState(fx.stateDir)).pending).toEqual([]);
  });

  it('never purges under another user of the cache: the purge waits for them, and happens before the next exec', async () => {
    const dir = await fx.makeCache('shared', { 'old.txt': 'x' });
    const holder = spawn('flock', ['-s', dir, 'sleep', '600'], { stdio: 'ignore', detached: true });
    children.push(holder);
    await eventually(() => spawnSync('flock', ['-n', '-E', '75', dir, 'true']).status === 75, `the holder's lock on ${dir}`);
    const failed = await exec(['shared'], leaveThenEnd('exit 5'), ['--purge-on-exit', '5']);
    expect(failed.code, failed.stderr).toBe(5);
    expect(failed.stderr).toMatch(/cache "shared" is in use.*its purge is pending/);
    expect(await readFile(path.join(dir, 'old.txt'), 'utf8')).toBe('x');
    expect((await readState(fx.stateDir)).pending.map((p: { path: string }) => p.path)).toEqual([dir]);

    process.kill(-holder.pid!, 'SIGKILL');
    await new Promise((r) => holder.once('exit', r));
    const next = await exec(['shared'], ['sh', '-c', 'ls -A "$PURGE_CACHE_AGENT_CACHE_0"; echo done']);
    expect(next.code, next.stderr).toBe(0);
    expect(next.stdout).toBe('done\n');
    expect(next.stderr).toContain('condemned by a purge request');
  });

  it('refuses a bad list with a usage error naming the flag, before running anything', async () => {
    const marker = path.join(fx.tmp.path, 'ran');
    for (const bad of ['', 'abc', '256', '1,,2', '-1', 'signals', '1;2']) {
      const r = await exec(['x'], ['sh', '-c', `echo > "${marker}"`], ['--purge-on-exit', bad]);
      expect(r.code, bad).toBe(2);
      expect(r.stderr, bad).toContain('--purge-on-exit');
    }
    expect(await exists(marker)).toBe(false);
  });
});

describe('stress: concurrent exec users and repeated purges of the same caches', () => {
  it('never renames a directory while a user holds it', async () => {
    const daemon = startCli(['run', ...fx.args('--schedule', '* * * * * *', '--jitter', '0', '--recheck', '200ms')]);
    children.push(daemon);
    const log = path.join(fx.tmp.path, 'uses.log');
    await writeFile(log, '');
    // Each use records the inode it saw at its start and at its end, and whether the path still had it.
    const use = `i0=$(stat -c %i "$PURGE_CACHE_AGENT_CACHE_0"); echo x > "$PURGE_CACHE_AGENT_CACHE_0/f.$$"; sleep 0.$((RANDOM % 3 + 1)); i1=$(stat -c %i "$PURGE_CACHE_AGENT_CACHE_0"); test -e "$PURGE_CACHE_AGENT_CACHE_0/f.$$" && ok=1 || ok=0; echo "$i0 $i1 $ok" >> "${log}"`;
    const names = ['s1', 's2'];
    // The users go on until enough uses happened and purges came between some
    // of them, however long a loaded machine takes; the bound only turns a hang
    // into a failure that says what was missing.
    const minUses = 9;
    const giveUpAt = Date.now() + 600_000;
    let uses = 0;
    const distinctInodes = async () =>
      new Set(
        (await readFile(log, 'utf8'))
          .trim()
          .split('\n')
          .filter(Boolean)
          .map((l) => l.split(' ')[0]),
      ).size;
    const stop = new AbortController();
    try {
      await waitForOutput(daemon, (o) => o.stderr.includes('purge-cache-agent started'));
      // Requests for a cache are filed one at a time, each once a use that
      // began after the previous one has ended: requests filed faster than a
      // loaded machine completes a claim would condemn every fresh directory
      // before its user starts, and starve the users.
      const requested = new Map(names.map((n) => [n, 0]));
      const servedRound = new Map(names.map((n) => [n, -1]));
      const users = Array.from({ length: 4 }, async (_, u) => {
        const name = names[u % 2]!;
        while (!stop.signal.aborted && Date.now() < giveUpAt) {
          const round = requested.get(name)!;
          const r = await exec([name], ['bash', '-c', use]);
          expect(r.code, r.stderr).toBe(0);
          uses++;
          servedRound.set(name, Math.max(servedRound.get(name)!, round));
          if (uses >= minUses && (await distinctInodes()) > 2) stop.abort();
        }
      });
      const requester = (async () => {
        while (!stop.signal.aborted && Date.now() < giveUpAt) {
          for (const name of names) {
            if (servedRound.get(name)! < requested.get(name)!) continue;
            await fx.request(name);
            requested.set(name, requested.get(name)! + 1);
          }
          await new Promise((r) => setTimeout(r, 300));
        }
      })();
      await Promise.all([...users, requester]);
    } finally {
      daemon.kill('SIGTERM');
      await finished(daemon);
    }
    const lines = (await readFile(log, 'utf8')).trim().split('\n');
    expect(lines.length).toBe(uses);
    expect(uses).toBeGreaterThanOrEqual(minUses);
    for (const line of lines) {
      const [i0, i1, ok] = line.split(' ');
      expect(i1, line).toBe(i0);
      expect(ok, line).toBe('1');
    }
    // And the caches really were purged between uses.
    const inodes = new Set(lines.map((l) => l.split(' ')[0]));
    expect(inodes.size).toBeGreaterThan(2);
  }, 900_000);
});
