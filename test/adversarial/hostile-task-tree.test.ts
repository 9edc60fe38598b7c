/**
 * A build task (nobody) leaves hostile things for the agent (root) to delete
 * or to purge into: names that are not UTF-8, a trash replaced by things that
 * are not the agent's, and a deleting child that dies. Each must end as a
 * reported failure (or a clean deletion), never as "unexpected error", and
 * `once` exits non-zero whenever the trash was not emptied.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { chown, mkdir, readdir, readFile, rm } from 'node:fs/promises';
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { logLines, runCli, startCli, finished } from '../helpers/cli.js';
import { makeFixture, readState, type Fixture } from '../helpers/fixture.js';
import { encodeCacheName } from '../../src/core/names.js';
import { TRASH_DIR_NAME } from '../../src/edges/caches/trash.js';
import { record, skipBecause } from './support.js';
import { NOBODY, asNobodySync, attackerUnavailable, openUp } from './attacker.js';

let fx: Fixture | undefined;
afterEach(async () => {
  await fx?.close();
  fx = undefined;
});

const once = (f: Fixture, ...extra: string[]) => runCli(['once', '--json', ...f.args('--in-use-checks', 'locks', ...extra)], { timeoutMs: 120_000 });

describe('names that are not UTF-8', () => {
  it('are deleted as bytes, and their bytes are counted', { timeout: 120_000 }, async (ctx) => {
    const why = attackerUnavailable();
    if (why) skipBecause(ctx, why);
    fx = await makeFixture();
    await openUp([fx.tmp.path], []);
    const cache = await fx.makeCache('task-cache');
    await chown(cache, NOBODY, NOBODY);
    // The task writes 64 KiB under `\xff`, and 64 KiB under `\xfe\xfd/\x80`.
    asNobodySync('perl', [
      '-e',
      'my $d = shift; open(my $f, ">", "$d/\\xff") or die $!; print $f "x" x 65536; close $f; mkdir("$d/\\xfe\\xfd") or die $!; open(my $g, ">", "$d/\\xfe\\xfd/\\x80") or die $!; print $g "y" x 65536; close $g;',
      cache,
    ]);
    await fx.request('task-cache');
    const result = await once(fx);
    expect(result.code, result.stderr).toBe(0);
    expect(JSON.parse(result.stdout).purged.map((p: { name: string }) => p.name)).toEqual(['task-cache']);
    expect(await readdir(path.join(fx.root, TRASH_DIR_NAME))).toEqual([]);
    const emptied = logLines(result.stderr).find((l) => l.msg === 'trash emptied');
    expect(emptied).toMatchObject({ files: 3, dirs: 2 });
    expect(Number(emptied!.bytes)).toBeGreaterThanOrEqual(2 * 65536);
    record(ctx, {
      cases: 3,
      unit: 'names',
      detail: 'files and a directory named \\xff, \\xfe\\xfd and \\x80 made by nobody in its cache: purged, deleted, 128 KiB counted, once exits 0',
    });
  });
});

describe('the deleting child dies', () => {
  it('with SIGKILL in the middle: once exits 1 with a failed (trash) entry, and the next run finishes', { timeout: 300_000 }, async (ctx) => {
    fx = await makeFixture();
    const cache = await fx.makeCache('big');
    for (let d = 0; d < 4; d++) {
      await mkdir(path.join(cache, `d${d}`));
      execFileSync('sh', ['-c', `cd '${path.join(cache, `d${d}`)}' && for i in $(seq 1 100); do : > f$i; done`]);
    }
    await fx.request('big');
    // Paced to 20 files a second: a child is still at work when it is killed. Every child this once starts is killed.
    const child = startCli(['once', '--json', ...fx.args('--in-use-checks', 'locks', '--delete-rate', '20')]);
    let kills = 0;
    const stop = new AbortController();
    const killer = (async () => {
      while (!stop.signal.aborted) {
        for (const pid of await readdir('/proc')) {
          if (!/^\d+$/.test(pid)) continue;
          const cmd = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
          if (!cmd.includes('trash-worker.js') || !cmd.includes(fx.root)) continue;
          try {
            process.kill(Number(pid), 'SIGKILL');
            kills++;
          } catch {
            // Already gone.
          }
        }
        await new Promise((r) => setTimeout(r, 20));
      }
    })();
    const result = await finished(child, 120_000);
    stop.abort();
    await killer;
    expect(kills).toBeGreaterThan(0);
    expect(result.code, result.stderr).toBe(1);
    const report = JSON.parse(result.stdout);
    expect(report.purged.map((p: { name: string }) => p.name)).toEqual(['big']);
    expect(report.failed).toEqual([expect.objectContaining({ name: '(trash)', error: expect.stringMatching(/trash worker.*SIGKILL/) })]);
    expect(result.stderr).not.toMatch(/unexpected error/);
    const again = await once(fx);
    expect(again.code, again.stderr).toBe(0);
    expect(await readdir(path.join(fx.root, TRASH_DIR_NAME))).toEqual([]);
    record(ctx, {
      cases: 1,
      unit: 'kill',
      detail: 'every low-priority deleting child SIGKILLed mid-run: once exits 1 naming the trash; the next once empties it and exits 0',
    });
  });
});

describe('a trash replaced by the task', () => {
  it('by a symlink out, a symlink loop, a fifo or its own directory: a failed entry each, and the other root purges on', { timeout: 300_000 }, async (ctx) => {
    const why = attackerUnavailable();
    if (why) skipBecause(ctx, why);
    fx = await makeFixture();
    await openUp([fx.tmp.path], [fx.root]);
    const second = path.join(fx.tmp.path, 'second');
    await mkdir(second);
    const trash = path.join(fx.root, TRASH_DIR_NAME);
    const plants: [string, () => void][] = [
      [
        'a symlink out of the root',
        () => {
          asNobodySync('ln', ['-s', fx!.outside, trash]);
        },
      ],
      [
        'a symlink to itself',
        () => {
          asNobodySync('ln', ['-s', TRASH_DIR_NAME, trash]);
        },
      ],
      [
        'a fifo',
        () => {
          asNobodySync('mkfifo', [trash]);
        },
      ],
      [
        "the task's own directory",
        () => {
          asNobodySync('mkdir', ['-m', '0700', trash]);
        },
      ],
    ];
    let n = 0;
    for (const [what, plant] of plants) {
      await rm(trash, { recursive: true, force: true });
      plant();
      const name = `victim-${n}`;
      const victim = await fx.makeCache(name);
      const other = path.join(second, encodeCacheName(`other-${n}`)!);
      await mkdir(other);
      await fx.request(name);
      await fx.request(`other-${n}`);
      const result = await once(fx, '--cache-root', second);
      expect(result.code, `${what}: ${result.stderr}`).toBe(1);
      const report = JSON.parse(result.stdout);
      expect(
        report.purged.map((p: { name: string }) => p.name),
        what,
      ).toEqual([`other-${n}`]);
      expect(
        report.failed.filter((f: { name: string }) => f.name === name),
        what,
      ).toEqual([expect.objectContaining({ path: victim, error: expect.stringContaining(trash) })]);
      expect(result.stderr, what).not.toMatch(/unexpected error/);
      expect(
        (await readState(fx.stateDir)).pending.map((p: { name: string }) => p.name),
        what,
      ).toContain(name);
      n++;
    }
    expect(await readdir(fx.outside)).toEqual(expect.arrayContaining(['precious.txt']));
    record(ctx, {
      cases: plants.length,
      unit: 'trashes',
      detail:
        "the root's trash replaced by nobody with a symlink out, a symlink loop, a fifo, or its own 0700 directory: each purge there fails naming the trash, the other root purges, never 'unexpected error'",
    });
  });
});
