/**
 * The floor of the empty-file purge on this machine, measured rather than
 * argued: what `once` costs when it has nothing to delete, plus the deletion
 * done by two `rm -rf` processes at once, each on half of an identical tree —
 * no byte count, no Node, both cores at work. No deleter `once` could start
 * does better than this sum; when it is above one `rm -rf` of the whole tree,
 * the ≤ 1.0 ratio is out of reach here whatever the deleter.
 */
import { spawn } from 'node:child_process';
import { readdir, rmdir } from 'node:fs/promises';
import path from 'node:path';
import { makeTree, median, ms, round, settle, type Result } from '../lib.js';

function rmRf(targets: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn('rm', ['-rf', '--one-file-system', '--', ...targets], { stdio: 'ignore' });
    child.on('error', reject);
    child.on('close', (code) => {
      if (code === 0) resolve();
      else reject(new Error(`rm -rf exited ${code}`));
    });
  });
}

/** Two `rm -rf` at once, on the two halves of `top`'s entries, then `top` itself; milliseconds. */
async function halvesInParallel(top: string): Promise<number> {
  const entries = (await readdir(top)).map((name) => path.join(top, name));
  const half = Math.ceil(entries.length / 2);
  const start = performance.now();
  await Promise.all([rmRf(entries.slice(0, half)), rmRf(entries.slice(half))]);
  await rmdir(top);
  return ms(start);
}

/**
 * `idleOnce` runs `once` with nothing to purge and resolves with its time;
 * the trees are built like the purge rows' (`dirs` directories, `files` empty files).
 */
export async function reclaimFloor(
  dir: string,
  shape: { dirs: number; files: number; rounds: number },
  idleOnce: (round: number) => Promise<number>,
  rmMedian: number,
): Promise<Result> {
  const idle: number[] = [];
  const parallel: number[] = [];
  for (let round = 0; round < shape.rounds; round++) {
    idle.push(await idleOnce(round));
    const top = path.join(dir, `halves-${round}`);
    await makeTree(top, shape.dirs, shape.files, 0);
    settle();
    parallel.push(await halvesInParallel(top));
    settle();
  }
  const floor = median(idle) + median(parallel);
  return {
    scenario: `reclaim: the floor for the empty-file row — \`once\` with nothing to purge, plus two \`rm -rf\` at once on the halves of the tree`,
    value: round(floor),
    unit: 'ms',
    reference: round(rmMedian),
    ratio: round(floor / rmMedian, 2),
    note:
      `median of ${shape.rounds}: once with nothing to purge ${round(median(idle))} ms, two rm -rf in parallel ${round(median(parallel))} ms; ` +
      `reference: one rm -rf of the whole tree (the row above). No byte count, no Node in the deletion: a ratio near or above 1.0 here means no deleter can meet the target on this machine`,
  };
}
