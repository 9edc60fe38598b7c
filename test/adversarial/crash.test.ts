/**
 * SIGKILL at every step of a cycle ("Faults"). The fault point
 * (src/fault.ts, PURGE_CACHE_AGENT_TEST_KILL_AT=K) kills the process at the
 * K-th step it reaches: after the query, after the new requests are recorded, after each rename, after each
 * directory removed from the trash, and between writing the state's
 * temporary file and renaming it into place. K is looped from 1 until a run
 * completes without being killed, so every step is covered however many the
 * cycle has. After each crash: the state is readable, nothing that was not
 * requested is gone, and nothing outside changed; after the restart: the
 * trash is empty, every request (including one filed after the crash) is
 * applied, and the state directory holds no debris.
 */
import { describe, expect, it } from 'vitest';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { runCli, startCli, finished, logLines } from '../helpers/cli.js';
import { makeFixture, exists, hashTree, type Fixture } from '../helpers/fixture.js';
import { encodeCacheName } from '../../src/core/names.js';
import { TRASH_DIR_NAME } from '../../src/edges/caches/trash.js';
import { isRunning, record } from './support.js';
import { eventually } from '../helpers/wait.js';

const DOOMED = ['doomed one', 'doomed/two', '..'];
const KEEP = ['keep', 'keep/two'];

async function setUp(fx: Fixture, doomed: string[], subdirs: number): Promise<void> {
  for (const name of [...doomed, ...KEEP]) {
    const files: Record<string, string> = { 'top.txt': name };
    for (let i = 0; i < subdirs; i++) files[`d${i}/sub/f${i}`] = `${name}-${i}`;
    await fx.makeCache(name, files);
  }
  for (const name of doomed) await fx.request(name);
  await fx.request('not-on-this-worker');
}

/** The fault points a killed run reached, from its PURGE_CACHE_AGENT_TEST_FAULT_LOG lines. */
function pointsReached(stderr: string): string[] {
  return logLines(stderr)
    .filter((l) => typeof l.faultPoint === 'string')
    .map((l) => String(l.faultPoint));
}

/** After a crash: what must hold before any restart. */
async function checkAfterCrash(fx: Fixture, doomed: string[], outsideHash: string, where: string): Promise<void> {
  // The state is absent or a complete, valid file (atomic writes): never torn.
  const stateFile = path.join(fx.stateDir, 'state.json');
  if (await exists(stateFile)) {
    const state = JSON.parse(await readFile(stateFile, 'utf8'));
    expect(state.version, where).toBe(2);
  }
  expect(await hashTree(fx.outside), `${where}: outside changed`).toBe(outsideHash);
  for (const name of KEEP) expect(await exists(path.join(fx.root, encodeCacheName(name)!)), `${where}: ${name}`).toBe(true);
  // Every doomed cache is either still in place or in the trash; nothing else was created in the root.
  const entries = await readdir(fx.root);
  for (const e of entries) expect([TRASH_DIR_NAME, ...[...doomed, ...KEEP].map((n) => encodeCacheName(n)!)], where).toContain(e);
}

/** After the restart: everything requested is applied, and nothing is left behind. */
async function checkRecovered(fx: Fixture, doomed: string[], outsideHash: string, where: string): Promise<void> {
  for (const name of [...doomed, 'late']) expect(await exists(path.join(fx.root, encodeCacheName(name)!)), `${where}: ${name} survived`).toBe(false);
  for (const name of KEEP) expect(await exists(path.join(fx.root, encodeCacheName(name)!)), `${where}: ${name}`).toBe(true);
  expect(await readdir(path.join(fx.root, TRASH_DIR_NAME)), `${where}: trash not emptied`).toEqual([]);
  expect(await hashTree(fx.outside), `${where}: outside changed`).toBe(outsideHash);
  // No temporary state files from the killed write.
  expect((await readdir(fx.stateDir)).filter((f) => f !== 'api.sock').sort(), where).toEqual(['lock', 'state.json']);
  const state = JSON.parse(await readFile(path.join(fx.stateDir, 'state.json'), 'utf8'));
  expect(state.cursor, where).toEqual(expect.any(Number));
  expect(state.pending, where).toEqual([]);
}

describe('SIGKILL at every fault point', () => {
  it('once: K = 1, 2, … until a run completes', async (ctx) => {
    const reached: string[] = [];
    let k = 1;
    for (; k < 200; k++) {
      const fx = await makeFixture();
      try {
        await setUp(fx, DOOMED, 2);
        const outsideHash = await hashTree(fx.outside);
        // In-process deletion, so the agent itself is killed mid-deletion (the default runs it in a child process).
        const crashed = await runCli(['once', '--json', ...fx.args('--in-use-checks', 'locks', '--delete-priority', 'normal')], {
          env: { PURGE_CACHE_AGENT_TEST_KILL_AT: String(k), PURGE_CACHE_AGENT_TEST_FAULT_LOG: '1' },
          timeoutMs: 60_000,
        });
        if (crashed.signal !== 'SIGKILL') {
          expect(crashed.code, crashed.stderr).toBe(0);
          expect(JSON.parse(crashed.stdout).purged).toHaveLength(DOOMED.length);
          await fx.makeCache('late');
          await fx.request('late');
          const next = await runCli(['once', '--json', ...fx.args()]);
          expect(next.code, next.stderr).toBe(0);
          await checkRecovered(fx, DOOMED, outsideHash, 'no crash');
          break;
        }
        const points = pointsReached(crashed.stderr);
        const where = `K=${k} (killed at ${points.at(-1)})`;
        reached.push(points.at(-1)!);
        await checkAfterCrash(fx, DOOMED, outsideHash, where);
        // A request filed after the crash must not be missed either.
        await fx.makeCache('late');
        await fx.request('late');
        const next = await runCli(['once', '--json', ...fx.args()]);
        expect(next.code, `${where}: ${next.stderr}`).toBe(0);
        await checkRecovered(fx, DOOMED, outsideHash, where);
      } finally {
        await fx.close();
      }
    }
    const counts = reached.reduce<Record<string, number>>((acc, p) => ((acc[p] = (acc[p] ?? 0) + 1), acc), {});
    expect(Object.keys(counts).sort()).toEqual(['after-query', 'after-record', 'after-rename', 'state-write', 'trash-delete']);
    record(ctx, {
      cases: k - 1,
      unit: 'kill points (K)',
      detail: `K=1…${k - 1} killed, K=${k} completed; ${Object.entries(counts)
        .map(([p, n]) => `${p} ×${n}`)
        .join(', ')}; each followed by a restart with a request filed after the crash`,
    });
  }, 1_200_000);

  it('run (the daemon): K = 1, 2, … over its first cycle', async (ctx) => {
    const doomed = ['d1', 'd2'];
    const reached: string[] = [];
    let k = 1;
    for (; k < 100; k++) {
      const fx = await makeFixture();
      try {
        await setUp(fx, doomed, 1);
        const outsideHash = await hashTree(fx.outside);
        const daemon = startCli(
          ['run', ...fx.args('--schedule', '0 0 1 1 *', '--jitter', '0', '--in-use-checks', 'locks', '--delete-priority', 'normal', '--log-level', 'debug')],
          {
            env: { PURGE_CACHE_AGENT_TEST_KILL_AT: String(k), PURGE_CACHE_AGENT_TEST_FAULT_LOG: '1' },
          },
        );
        const done = finished(daemon, 120_000);
        // Killed, or its first cycle done and its trash emptied.
        await eventually(
          async () =>
            !isRunning(daemon) ||
            (daemon.output.stderr.includes('"msg":"cycle finished"') && (await readdir(path.join(fx.root, TRASH_DIR_NAME)).catch(() => ['?'])).length === 0),
          `K=${k}: the daemon to die or finish its cycle`,
          { timeoutMs: 60_000 },
        );
        if (isRunning(daemon)) daemon.kill('SIGTERM');
        const result = await done;
        // (A kill at the very last point can land just after the trash looked empty: still a crash.)
        if (result.signal !== 'SIGKILL') {
          expect(result.code, result.stderr).toBe(0);
          await fx.makeCache('late');
          await fx.request('late');
          expect((await runCli(['once', ...fx.args()])).code).toBe(0);
          await checkRecovered(fx, doomed, outsideHash, 'no crash');
          break;
        }
        const where = `K=${k} (killed at ${pointsReached(result.stderr).at(-1)})`;
        reached.push(pointsReached(result.stderr).at(-1)!);
        await checkAfterCrash(fx, doomed, outsideHash, where);
        await fx.makeCache('late');
        await fx.request('late');
        const next = await runCli(['once', '--json', ...fx.args()]);
        expect(next.code, `${where}: ${next.stderr}`).toBe(0);
        await checkRecovered(fx, doomed, outsideHash, where);
      } finally {
        await fx.close();
      }
    }
    const counts = reached.reduce<Record<string, number>>((acc, p) => ((acc[p] = (acc[p] ?? 0) + 1), acc), {});
    record(ctx, {
      cases: k - 1,
      unit: 'kill points (K)',
      detail: `K=1…${k - 1} killed, K=${k} completed; ${Object.entries(counts)
        .map(([p, n]) => `${p} ×${n}`)
        .join(', ')}; recovery by once`,
    });
  }, 1_200_000);
});
