import { afterEach, describe, expect, it } from 'vitest';
import { existsSync } from 'node:fs';
import { mkdir, readdir, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { emptyTrashInChild, parseArgs } from '../../../src/edges/caches/trash-worker.js';
import { TRASH_DIR_NAME } from '../../../src/core/names.js';
import { makeTempDir, REPO_ROOT, type TempDir } from '../../helpers/tmp.js';
import { makeSentinel } from './support.js';

import { TrashWorkerError } from '../../../src/errors.js';
import { eventually } from '../../helpers/wait.js';
import { hashTree } from '../../helpers/fixture.js';

/**
 * The worker runs as a compiled script in a child process: the build in dist/
 * (made by the suite's global setup), or PCA_TRASH_WORKER_SCRIPT.
 */
const SCRIPT = process.env.PCA_TRASH_WORKER_SCRIPT ?? path.join(REPO_ROOT, 'dist', 'edges', 'caches', 'trash-worker.js');
const built = existsSync(SCRIPT);

let tmp: TempDir | undefined;
afterEach(async () => {
  await tmp?.cleanup();
  tmp = undefined;
});

/** A root's trash holding `entries` renamed caches of `files` files each, plus a symlink out. */
async function makeTrash(entries: number, files: number): Promise<{ trash: string; outside: string }> {
  tmp = await makeTempDir('pca-trash-worker-');
  const trash = path.join(tmp.path, 'root', TRASH_DIR_NAME);
  const outside = path.join(tmp.path, 'outside');
  await makeSentinel(outside);
  // The agent's own trash: its owner, mode 0700 (it refuses any other).
  await mkdir(trash, { recursive: true, mode: 0o700 });
  for (let e = 0; e < entries; e++) {
    const entry = path.join(trash, `${e}-entry`, 'sub');
    await mkdir(entry, { recursive: true });
    for (let f = 0; f < files; f++) await writeFile(path.join(entry, `f${f}`), 'x');
    await symlink(outside, path.join(trash, `${e}-entry`, 'out'));
  }
  return { trash, outside };
}

describe('parseArgs', () => {
  it('reads options and directories, and rejects what it does not know', () => {
    expect(parseArgs(['--rate', '500', '--concurrency', '2', '/a', '--', '--odd'])).toEqual({ rateLimit: 500, concurrency: 2, dirs: ['/a', '--odd'] });
    expect(parseArgs([])).toBe('no trash directory given');
    expect(parseArgs(['--rate', 'fast', '/a'])).toMatch(/--rate takes a number/);
    expect(parseArgs(['--force', '/a'])).toMatch(/unknown option --force/);
  });
});

describe.skipIf(!built)(`the trash worker process (${SCRIPT})`, () => {
  it('empties the trash at nice 19 in the idle I/O class and reports what it did', async () => {
    const { trash, outside } = await makeTrash(3, 10);
    const before = await hashTree(outside);
    const report = await emptyTrashInChild([trash], { script: SCRIPT });
    expect(report).toMatchObject({ files: 33, dirs: 6, failures: [], skippedMounts: [] });
    expect(await readdir(trash)).toEqual([]);
    expect(await hashTree(outside)).toBe(before);
    expect(report.nice).toBe(19);
    // The idle class needs ionice and a kernel that allows it; where both exist it is set.
    if (report.ioClass === null) console.warn('ionice was unavailable: the worker ran in the default I/O class');
  });

  it('stops on abort and still reports what it did; the rest waits for the next run', async () => {
    const { trash } = await makeTrash(1, 400);
    const controller = new AbortController();
    // A slow rate keeps it busy; abort once it has started (no timing is asserted).
    const running = emptyTrashInChild([trash], { script: SCRIPT, rateLimit: 50, signal: controller.signal });
    // Abort once files have started to go (a slow rate keeps it busy; no timing is asserted).
    const sub = path.join(trash, '0-entry', 'sub');
    await eventually(async () => (await readdir(sub)).length < 400, 'the worker to start deleting', { timeoutMs: 120_000, intervalMs: 20 });
    controller.abort();
    const report = await running;
    expect(report.failures).toEqual([]);
    expect(report.files).toBeGreaterThan(0);
    expect(report.files).toBeLessThan(401);
    expect(await readdir(trash)).toEqual(['0-entry']);
  });

  it('rejects with the reason when it cannot run', async () => {
    await expect(emptyTrashInChild([], { script: SCRIPT })).rejects.toThrow(TrashWorkerError);
    await expect(emptyTrashInChild(['/x'], { script: path.join(REPO_ROOT, 'no-such-script.js') })).rejects.toThrow(/trash worker/);
  });
});
