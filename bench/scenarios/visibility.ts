/**
 * Visibility: the time from the start of a purge to the cache path being gone
 * — the real locked rename (src/engine/purge.ts) — for caches of 10, 10,000 and
 * 1,000,000 files. Target: it does not grow with the cache's size.
 */
import { lstat } from 'node:fs/promises';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { applyPurges } from '../../src/engine/purge.js';
import { silentLogger } from '../../src/log.js';
import { inodeKey } from '../../src/edges/caches/inode-key.js';
import { makeTree, median, ms, round, scratch, type Result } from '../lib.js';

const SIZES = [10, 10_000, 1_000_000];
const RUNS = 5;

export async function visibility(): Promise<Result[]> {
  const results: Result[] = [];
  const timings: number[] = [];
  for (const files of SIZES) {
    const dir = await scratch(`visibility-${files}`);
    try {
      const root = path.join(dir.path, 'caches');
      const samples: number[] = [];
      for (let run = 0; run < (files >= 1_000_000 ? 1 : RUNS); run++) {
        const cachePath = path.join(root, `cache-${run}`);
        await makeTree(cachePath, Math.ceil(files / 1000), files, 0);
        const st = await lstat(cachePath, { bigint: true });
        const cache = { name: `cache-${run}`, path: cachePath, root, key: inodeKey(st), birthtimeMs: null };
        const start = performance.now();
        const [outcome] = await applyPurges([{ cache, createdMs: null, beforeMs: Date.now(), since: Date.now() }], { logger: silentLogger() });
        const took = ms(start);
        if (outcome?.kind !== 'purged') throw new Error(`purge did not happen: ${JSON.stringify(outcome)}`);
        await lstat(cachePath).then(
          () => {
            throw new Error('cache path still there after the purge');
          },
          () => undefined,
        );
        samples.push(took);
      }
      const value = median(samples);
      timings.push(value);
      results.push({
        scenario: `visibility: purge start → path gone, cache of ${files.toLocaleString('en')} files`,
        value: round(value, 2),
        unit: 'ms',
        note: `median of ${samples.length} (lock + re-check + rename)`,
      });
    } finally {
      // The trash is this benchmark's own; rm -rf it quickly rather than measure deletion here.
      spawnSync('rm', ['-rf', dir.path]);
    }
  }
  const growth = timings[timings.length - 1]! / timings[0]!;
  results.push({
    scenario: 'visibility: 1,000,000 files vs 10 files',
    value: round(growth, 2),
    unit: '×',
    target: 'does not grow with size (< 3×, noise)',
    met: growth < 3,
  });
  return results;
}
