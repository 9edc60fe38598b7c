/**
 * Faults around the state directory ("Faults"): a corrupted or
 * truncated state file, the disk filling up while the state is written, two
 * agents on one state directory, and `once` while `run` holds it.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { mkdir, open, readdir, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { runCli, startCli, finished, logLines, waitForOutput } from '../helpers/cli.js';
import { makeFixture, exists, hashTree, readState, type Fixture } from '../helpers/fixture.js';
import { encodeCacheName } from '../../src/core/names.js';
import { isRunning, record, skipBecause } from './support.js';
import { eventually } from '../helpers/wait.js';
import { mountTmpfs, unmountAllUnder } from '../helpers/mounts.js';

let fx: Fixture;
afterEach(async () => {
  // Unset when a test failed before making its fixture.
  if ((fx as Fixture | undefined) !== undefined) {
    await unmountAllUnder(fx.tmp.path);
    await fx.close();
  }
});

const once = (...extra: string[]) => runCli(['once', '--json', ...fx.args('--in-use-checks', 'locks', ...extra)]);
const cyclesDone = (stderr: string) => logLines(stderr).filter((l) => l.msg === 'cycle finished').length;

describe('a corrupted or truncated state file', () => {
  it('every kind of bad state file: the agent starts anyway, moves it aside, logs loudly, and queries without since', async (ctx) => {
    fx = await makeFixture();
    // A real state to corrupt.
    expect((await once()).code).toBe(0);
    const good = await readFile(path.join(fx.stateDir, 'state.json'), 'utf8');
    const outsideFile = path.join(fx.outside, 'not-a-state.json');
    await writeFile(outsideFile, 'garbage that is not state\n');
    const outsideHash = await hashTree(fx.outside);
    const variants: [string, () => Promise<void>][] = [
      ['truncated to half', () => writeFile(path.join(fx.stateDir, 'state.json'), good.slice(0, Math.floor(good.length / 2)))],
      ['truncated to one byte', () => writeFile(path.join(fx.stateDir, 'state.json'), good.slice(0, 1))],
      ['empty', () => writeFile(path.join(fx.stateDir, 'state.json'), '')],
      ['4 KiB of NUL bytes (a torn block)', () => writeFile(path.join(fx.stateDir, 'state.json'), Buffer.alloc(4096))],
      ['random bytes', () => writeFile(path.join(fx.stateDir, 'state.json'), randomBytes(2048))],
      ['JSON null', () => writeFile(path.join(fx.stateDir, 'state.json'), 'null')],
      ['a JSON array', () => writeFile(path.join(fx.stateDir, 'state.json'), '[]')],
      ['another version', () => writeFile(path.join(fx.stateDir, 'state.json'), JSON.stringify({ ...JSON.parse(good), version: 99 }))],
      ['wrong types', () => writeFile(path.join(fx.stateDir, 'state.json'), JSON.stringify({ ...JSON.parse(good), cursor: 'yesterday', pending: {} }))],
      [
        'a pending purge with a hostile path',
        () => writeFile(path.join(fx.stateDir, 'state.json'), JSON.stringify({ ...JSON.parse(good), pending: [{ name: 'x', path: 42 }] })),
      ],
      ['valid JSON with trailing garbage', () => writeFile(path.join(fx.stateDir, 'state.json'), good.trim() + '}garbage')],
      ['20 MB of text', () => writeFile(path.join(fx.stateDir, 'state.json'), 'x'.repeat(20 * 1024 * 1024))],
      ['a symlink to a file outside', () => symlink(outsideFile, path.join(fx.stateDir, 'state.json'))],
      [
        'a directory',
        async () => {
          await mkdir(path.join(fx.stateDir, 'state.json', 'inside'), { recursive: true });
        },
      ],
    ];
    const outcomes: string[] = [];
    for (const [name, corrupt] of variants) {
      await rm(fx.stateDir, { recursive: true, force: true });
      await mkdir(fx.stateDir, { recursive: true });
      await corrupt();
      await fx.makeCache('doomed');
      await fx.request('doomed');
      const result = await once();
      expect(result.code, `${name}: ${result.stderr}`).toBe(0);
      const report = JSON.parse(result.stdout);
      expect(report.since, `${name}: a full query`).toBeNull();
      expect(
        report.purged.map((p: { name: string }) => p.name),
        name,
      ).toEqual(['doomed']);
      const loud = logLines(result.stderr).find((l) => String(l.msg).startsWith('STATE FILE CORRUPT'));
      expect(loud, `${name}: no loud log line\n${result.stderr}`).toBeDefined();
      expect(['error', 'fatal']).toContain(loud!.level);
      const aside = (await readdir(fx.stateDir)).filter((f) => f.startsWith('state.json.corrupt-'));
      expect(aside, name).toHaveLength(1);
      expect(loud!.movedTo).toBe(path.join(fx.stateDir, aside[0]!));
      // The new state is whole, and the next run continues from it.
      expect((await readState(fx.stateDir)).cursor, name).toEqual(expect.any(Number));
      if (outcomes.length === 0) {
        const next = await once();
        expect(JSON.parse(next.stdout).since, name).not.toBeNull();
      }
      expect(await hashTree(fx.outside), `${name}: outside changed`).toBe(outsideHash);
      outcomes.push(name);
    }
    record(ctx, { cases: outcomes.length, unit: 'bad state files', detail: outcomes.join('; ') });
  }, 1_200_000);
});

/** Fill a filesystem: write until ENOSPC. */
async function fill(file: string): Promise<void> {
  const handle = await open(file, 'w');
  const chunk = Buffer.alloc(4096, 'f');
  try {
    for (;;) await handle.write(chunk);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOSPC') throw err;
  } finally {
    await handle.close();
  }
}

describe('the disk fills up while the state is written', () => {
  it('once: exits 1 saying the disk is full, keeps the previous state, leaves no temporary file, and catches up once there is room', async (ctx) => {
    fx = await makeFixture();
    await mkdir(fx.stateDir, { recursive: true });
    const mounted = await mountTmpfs(fx.stateDir, `pca-adv-statefull-${process.pid}`, '64k');
    if (mounted !== null) skipBecause(ctx, `cannot mount a tmpfs for the state directory: ${mounted}`);
    expect((await once()).code).toBe(0);
    const cursor = (await readState(fx.stateDir)).cursor;
    const filler = path.join(fx.stateDir, 'filler');
    await fill(filler);

    await fx.makeCache('doomed');
    await fx.makeCache('kept');
    await fx.request('doomed');
    const full = await once();
    expect(full.code, full.stderr).toBe(1);
    const line = logLines(full.stderr).find((l) => /cannot write .*state\.json.*ENOSPC.*disk is full.*previous state is kept/.test(String(l.msg)));
    expect(line, full.stderr).toBeDefined();
    expect((await readState(fx.stateDir)).cursor).toBe(cursor);
    expect((await readdir(fx.stateDir)).sort()).toEqual(['filler', 'lock', 'state.json']);
    expect(await exists(path.join(fx.root, 'kept'))).toBe(true);

    await rm(filler);
    const next = await once();
    expect(next.code, next.stderr).toBe(0);
    // The cursor had held, so the query reached back past the failed cycle.
    expect(Date.parse(JSON.parse(next.stdout).since)).toBeLessThanOrEqual(cursor);
    expect(await exists(path.join(fx.root, 'doomed'))).toBe(false);
    expect(await readdir(path.join(fx.root, '.purge-cache-agent-trash'))).toEqual([]);
    expect((await readState(fx.stateDir)).cursor).toBeGreaterThan(cursor);
    record(ctx, {
      cases: 2,
      unit: 'runs',
      detail:
        'a 64 KiB tmpfs state dir, filled: exit 1 with "disk is full", previous state and cursor kept, no temp file; after freeing space the next run catches up',
    });
  });

  it('run: a cycle whose state write fails is logged, the daemon keeps running, and the next cycle saves', async (ctx) => {
    fx = await makeFixture();
    await mkdir(fx.stateDir, { recursive: true });
    const mounted = await mountTmpfs(fx.stateDir, `pca-adv-statefull2-${process.pid}`, '64k');
    if (mounted !== null) skipBecause(ctx, `cannot mount a tmpfs for the state directory: ${mounted}`);
    const daemon = startCli(['run', ...fx.args('--schedule', '0 0 1 1 *', '--jitter', '0', '--in-use-checks', 'locks', '--log-level', 'debug')]);
    const done = finished(daemon, 240_000);
    try {
      await eventually(() => cyclesDone(daemon.output.stderr) >= 1, 'the first cycle');
      const cursor = (await readState(fx.stateDir)).cursor;
      const filler = path.join(fx.stateDir, 'filler');
      await fill(filler);
      await fx.makeCache('doomed');
      await fx.request('doomed');
      daemon.kill('SIGHUP');
      await eventually(() => daemon.output.stderr.includes('cycle crashed; the next one will retry'), 'the failed cycle');
      expect(daemon.output.stderr).toMatch(/ENOSPC/);
      expect(isRunning(daemon)).toBe(true);
      expect((await readState(fx.stateDir)).cursor).toBe(cursor);
      await rm(filler);
      const before = cyclesDone(daemon.output.stderr);
      daemon.kill('SIGHUP');
      await eventually(() => cyclesDone(daemon.output.stderr) > before, 'the next cycle');
      expect((await readState(fx.stateDir)).cursor).toBeGreaterThan(cursor);
      expect(await exists(path.join(fx.root, 'doomed'))).toBe(false);
    } finally {
      daemon.kill('SIGTERM');
    }
    const result = await done;
    expect(result.code, result.stderr).toBe(0);
    record(ctx, { cases: 2, unit: 'cycles', detail: 'one failing on ENOSPC (logged, daemon up, cursor held), one after space came back (saved)' });
  });
});

describe('two agents on one state directory', () => {
  it('three daemons started at once: exactly one runs, the others exit 1 naming its pid', async (ctx) => {
    fx = await makeFixture();
    const tries = 3;
    let rounds = 0;
    for (let round = 0; round < tries; round++) {
      const daemons = Array.from({ length: 3 }, () => startCli(['run', ...fx.args('--schedule', '0 0 1 1 *', '--jitter', '0', '--in-use-checks', 'locks')]));
      const results = daemons.map((d) => finished(d, 240_000));
      try {
        await eventually(() => daemons.filter((d) => !isRunning(d)).length >= 2, 'two of three daemons to give up');
        const survivors = daemons.filter((d) => isRunning(d));
        expect(survivors).toHaveLength(1);
        const holder = survivors[0]!;
        await waitForOutput(holder, (o) => o.stderr.includes('purge-cache-agent started'));
        for (const [i, d] of daemons.entries()) {
          if (d === holder) continue;
          const r = await results[i]!;
          expect(r.code).toBe(1);
          expect(r.stderr).toContain(`pid ${holder.pid}`);
        }
      } finally {
        for (const d of daemons) if (isRunning(d)) d.kill('SIGTERM');
      }
      for (const r of results) await r;
      rounds++;
    }
    record(ctx, { cases: rounds, unit: 'rounds of 3 daemons', detail: 'started simultaneously; each round exactly one held the lock' });
  }, 1_200_000);

  it('once while run holds the state: exit 1 naming the pid, and nothing changes', async (ctx) => {
    fx = await makeFixture();
    const daemon = startCli(['run', ...fx.args('--schedule', '0 0 1 1 *', '--jitter', '0', '--in-use-checks', 'locks', '--log-level', 'debug')]);
    const done = finished(daemon, 240_000);
    let attempts = 0;
    try {
      await eventually(() => cyclesDone(daemon.output.stderr) >= 1, 'the first cycle');
      await fx.makeCache('doomed');
      await fx.request('doomed');
      const tree = await hashTree(fx.tmp.path);
      for (const extra of [[], ['--dry-run'], ['--on-gap', 'purge-all']]) {
        const result = await once(...extra);
        attempts++;
        if (extra[0] === '--dry-run') {
          // A dry run takes no lock and changes nothing: it may run alongside.
          expect(result.code, result.stderr).toBe(0);
          expect(JSON.parse(result.stdout).dryRun).toBe(true);
        } else {
          expect(result.code).toBe(1);
          expect(result.stderr).toContain(`pid ${daemon.pid}`);
        }
        expect(await hashTree(fx.tmp.path)).toBe(tree);
      }
      expect(isRunning(daemon)).toBe(true);
      expect(await exists(path.join(fx.root, encodeCacheName('doomed')!))).toBe(true);
    } finally {
      daemon.kill('SIGTERM');
    }
    expect((await done).code).toBe(0);
    const st = await stat(path.join(fx.stateDir, 'state.json'));
    expect(st.mode & 0o777).toBe(0o600);
    record(ctx, {
      cases: attempts,
      unit: 'runs of once',
      detail: 'plain and --on-gap purge-all: exit 1 naming the daemon pid; --dry-run: allowed (no lock); the whole temp tree hashed identical after each',
    });
  });
});
