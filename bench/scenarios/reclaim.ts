/**
 * Reclaim: deleting a tree of 200,000 files in 2,000 directories with the
 * agent's deleter (src/edges/caches/delete.ts) against `rm -rf` of an identical
 * tree, side by side in the same run, alternating which goes first. Target
 * a ratio of at most 1.0.
 *
 * Also: the same deletion in the low-priority child the daemon uses by
 * default (--delete-priority idle), which pays a process start.
 */
import { spawnSync } from 'node:child_process';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { TRASH_DIR_NAME } from '../../src/core/names.js';
import { deleteTree } from '../../src/edges/caches/delete.js';
import { emptyTrashInChild } from '../../src/edges/caches/trash-worker.js';
import { makeTree, median, ms, pairedWithRm, round, scratch, settle, versusRm, type Result } from '../lib.js';

const FILES = 200_000;
const DIRS = 2_000;
const ROUNDS = 2;

export async function reclaim(): Promise<Result[]> {
  const dir = await scratch('reclaim');
  const ours: number[] = [];
  const rm: number[] = [];
  const child: number[] = [];
  try {
    for (let round = 0; round < ROUNDS; round++) {
      const a = path.join(dir.path, `ours-${round}`);
      const b = path.join(dir.path, `rm-${round}`);
      await makeTree(a, DIRS, FILES, 16);
      await makeTree(b, DIRS, FILES, 16);
      settle();
      const runOurs = async (): Promise<void> => {
        const start = performance.now();
        const report = await deleteTree(a, { countBytes: true });
        ours.push(ms(start));
        if (report.files !== FILES || report.failures.length > 0)
          throw new Error(`deleteTree removed ${report.files} files, ${report.failures.length} failures`);
      };
      await pairedWithRm(round, runOurs, b, rm);
    }
    // The daemon's default path: a low-priority child process emptying a trash dir.
    // A trash as the agent makes one: its own name, and mode 0700 (any other trash is left alone).
    const trash = path.join(dir.path, TRASH_DIR_NAME);
    await mkdir(trash, { mode: 0o700 });
    await makeTree(path.join(trash, 'entry'), DIRS, FILES, 16);
    settle();
    const start = performance.now();
    const report = await emptyTrashInChild([trash]);
    child.push(ms(start));
    if (report.files !== FILES) throw new Error(`trash worker removed ${report.files} files`);
  } finally {
    spawnSync('rm', ['-rf', dir.path]);
  }
  const r = median(rm);
  return [
    versusRm(
      `reclaim: delete ${FILES.toLocaleString('en')} files in ${DIRS.toLocaleString('en')} dirs (in process, bytes counted)`,
      ours,
      rm,
      (o, r) => `median of ${ROUNDS} rounds each (ours ${o} ms; rm -rf ${r} ms)`,
    ),
    {
      scenario: 'reclaim: the same in the low-priority child the daemon uses (nice 19, idle I/O)',
      value: round(child[0]!),
      unit: 'ms',
      reference: round(r),
      ratio: round(child[0]! / r, 2),
      note: 'includes starting the child process; on an idle machine low priority costs nothing',
    },
  ];
}
