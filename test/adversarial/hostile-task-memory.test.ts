/**
 * Memory under huge trees a task can leave in a purged cache: one directory
 * of a quarter million entries, and a chain 20,000 directories deep beside a
 * mount left in the trash. The deleting child (the daemon's default, a
 * low-priority process) reports its peak resident memory, which must stay
 * under a fixed bound whatever the size. Sizes are what a loaded 2-core
 * machine creates and deletes in well under a minute on a tmpfs; the figures
 * for larger ones are in docs/reliability.md.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readdir } from 'node:fs/promises';
import path from 'node:path';
import { TRASH_DIR_NAME } from '../../src/core/names.js';
import { emptyTrashInChild } from '../../src/edges/caches/trash-worker.js';
import { CLI_PATH } from '../helpers/tmp.js';
import { hostileTempDir, record, skipBecause } from './support.js';
import type { TempDir } from '../helpers/tmp.js';
import { mountTmpfs } from '../helpers/mounts.js';

const SCRIPT = path.join(path.dirname(CLI_PATH), 'edges', 'caches', 'trash-worker.js');
const ENTRIES = 250_000;
const DEPTH = 20_000;
/** Peak resident memory of the deleting child, in MiB (node itself and its four threads take about 60). */
const BOUND_MIB = { flat: 120, deep: 250 };

let tmp: TempDir | undefined;
afterEach(async () => {
  await tmp?.cleanup();
  tmp = undefined;
});

/** A trash on its own tmpfs (fast to fill, and gone with the unmount). */
async function trashOnTmpfs(ctx: Parameters<typeof skipBecause>[0], inodes: number): Promise<string> {
  if (process.getuid?.() !== 0) skipBecause(ctx, 'needs root, to mount a tmpfs');
  if (!existsSync(SCRIPT)) skipBecause(ctx, `${SCRIPT} is not built`);
  tmp = await hostileTempDir('pca-adv-memory-');
  const fsDir = path.join(tmp.path, 'fs');
  await mkdir(fsDir);
  const mounted = await mountTmpfs(fsDir, 'pca-adv-memory', '1g');
  if (mounted !== null) skipBecause(ctx, `cannot mount a tmpfs: ${mounted}`);
  execFileSync('mount', ['-o', `remount,nr_inodes=${inodes}`, fsDir]);
  const trash = path.join(fsDir, 'root', TRASH_DIR_NAME);
  await mkdir(trash, { recursive: true, mode: 0o700 });
  return trash;
}

describe('memory while deleting huge trees', () => {
  it(
    `one directory of ${ENTRIES.toLocaleString('en')} entries is deleted in bounded batches (peak < ${BOUND_MIB.flat} MiB)`,
    { timeout: 300_000 },
    async (ctx) => {
      const trash = await trashOnTmpfs(ctx, ENTRIES + 1000);
      const flat = path.join(trash, '1-flat');
      await mkdir(flat);
      execFileSync('perl', ['-e', 'chdir(shift) or die $!; my $n = shift; for (1..$n) { open(my $f, ">", "f$_") or die $!; }', flat, String(ENTRIES)]);
      const started = performance.now();
      const report = await emptyTrashInChild([trash], { script: SCRIPT });
      const seconds = (performance.now() - started) / 1000;
      expect(report.failures).toEqual([]);
      expect(report.files).toBe(ENTRIES);
      expect(await readdir(trash)).toEqual([]);
      expect(report.peakMiB).toBeLessThan(BOUND_MIB.flat);
      record(ctx, {
        cases: ENTRIES,
        unit: 'entries',
        detail: `one directory of ${ENTRIES.toLocaleString('en')} empty files in the trash: deleted in ${seconds.toFixed(1)} s, deleting child's peak ${report.peakMiB} MiB (bound ${BOUND_MIB.flat} MiB)`,
      });
    },
  );

  it(
    `a chain ${DEPTH.toLocaleString('en')} directories deep beside a mount left in the trash (peak < ${BOUND_MIB.deep} MiB)`,
    { timeout: 300_000 },
    async (ctx) => {
      const trash = await trashOnTmpfs(ctx, DEPTH + 1000);
      const left = path.join(trash, '1-with-mount', 'mnt');
      await mkdir(left, { recursive: true });
      const mounted = await mountTmpfs(left, 'pca-adv-memory-left');
      if (mounted !== null) skipBecause(ctx, `cannot mount a tmpfs: ${mounted}`);
      const deep = path.join(trash, '2-deep');
      await mkdir(deep);
      execFileSync('perl', ['-e', 'chdir(shift) or die $!; my $n = shift; for (1..$n) { mkdir("d") or die $!; chdir("d") or die $!; }', deep, String(DEPTH)]);
      const started = performance.now();
      const report = await emptyTrashInChild([trash], { script: SCRIPT });
      const seconds = (performance.now() - started) / 1000;
      expect(report.failures).toEqual([]);
      expect(report.dirs).toBe(DEPTH + 1);
      expect(report.skippedMounts).toEqual([left]);
      expect(await readdir(trash)).toEqual(['1-with-mount']);
      expect(report.peakMiB).toBeLessThan(BOUND_MIB.deep);
      record(ctx, {
        cases: DEPTH,
        unit: 'levels',
        detail: `a chain of ${DEPTH.toLocaleString('en')} directories in the trash beside a tmpfs left mounted there: deleted in ${seconds.toFixed(1)} s (the mount left and reported), deleting child's peak ${report.peakMiB} MiB (bound ${BOUND_MIB.deep} MiB)`,
      });
    },
  );
});
