/**
 * `exec` (issue 3): a command never starts on a condemned cache, and no purge
 * touches a cache while the command runs — with and without a running agent.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { runCli, startCli, waitForOutput, finished } from '../helpers/cli.js';
import { makeFixture, exists, readState, type Fixture } from '../helpers/fixture.js';

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

const exec = (caches: string[], command: string[], extra: string[] = []) =>
  runCli(['exec', ...caches.flatMap((c) => ['--cache', c]), ...extra, ...fx.args(), '--', ...command]);

/** Make a purge of `name` pending: hold the cache while a cycle decides to purge it. */
async function makePending(name: string): Promise<string> {
  const dir = await fx.makeCache(name, { 'old-content.txt': 'stale' });
  const holder = spawn('flock', ['-s', dir, 'sleep', '60'], { stdio: 'ignore', detached: true });
  for (let i = 0; i < 200 && spawnSync('flock', ['-n', '-E', '75', dir, 'true']).status !== 75; i++) await new Promise((r) => setTimeout(r, 20));
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
    const child = startCli(['exec', '--cache', 'held', '--owner', 'build-42', ...fx.args(), '--', 'sh', '-c', `echo > "${marker}"; exec sleep 30`]);
    children.push(child);
    for (let i = 0; i < 300 && !(await exists(marker)); i++) await new Promise((r) => setTimeout(r, 50));
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
    const child = startCli(['exec', '--cache', 'a', ...fx.args(), '--', 'sh', '-c', `trap 'echo INT > "${trap}"; exit 42' INT; echo ready; while :; do sleep 0.1; done`]);
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

describe('stress: concurrent exec users and repeated purges of the same caches', () => {
  it('never renames a directory while a user holds it', async () => {
    const daemon = startCli(['run', ...fx.args('--schedule', '* * * * * *', '--jitter', '0', '--recheck', '200ms')]);
    children.push(daemon);
    const log = path.join(fx.tmp.path, 'uses.log');
    await writeFile(log, '');
    // Each use records the inode it saw at its start and at its end, and whether the path still had it.
    const use = `i0=$(stat -c %i "$PURGE_CACHE_AGENT_CACHE_0"); echo x > "$PURGE_CACHE_AGENT_CACHE_0/f.$$"; sleep 0.$((RANDOM % 3 + 1)); i1=$(stat -c %i "$PURGE_CACHE_AGENT_CACHE_0"); test -e "$PURGE_CACHE_AGENT_CACHE_0/f.$$" && ok=1 || ok=0; echo "$i0 $i1 $ok" >> "${log}"`;
    const names = ['s1', 's2'];
    const deadline = Date.now() + 12_000;
    let uses = 0;
    try {
      await waitForOutput(daemon, (o) => o.stderr.includes('purge-cache-agent started'));
      const users = Array.from({ length: 4 }, async (_, u) => {
        while (Date.now() < deadline) {
          const r = await exec([names[u % 2]!], ['bash', '-c', use]);
          expect(r.code, r.stderr).toBe(0);
          uses++;
        }
      });
      const requester = (async () => {
        while (Date.now() < deadline) {
          for (const name of names) await fx.request(name);
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
    expect(uses).toBeGreaterThan(8);
    for (const line of lines) {
      const [i0, i1, ok] = line.split(' ');
      expect(i1, line).toBe(i0);
      expect(ok, line).toBe('1');
    }
    // And the caches really were purged between uses.
    const inodes = new Set(lines.map((l) => l.split(' ')[0]));
    expect(inodes.size).toBeGreaterThan(2);
  }, 60_000);
});
