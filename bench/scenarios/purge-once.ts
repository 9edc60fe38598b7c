/**
 * Reclaim as a user sees it: `once` (the built CLI, process start included)
 * purging one cache of 100,000 files against the embedded service, until its
 * trash is empty, side by side with `rm -rf` of an identical tree in the same
 * run. Two kinds of tree: 64-byte files, and empty files (metadata only:
 * `rm -rf`'s best case). Target: a ratio of at most 1.0. Then, as a finding,
 * what deleting one empty file costs by each way of naming it.
 */
import { spawn, spawnSync } from 'node:child_process';
import { lstat, mkdir } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startService } from '../../src/service/index.js';
import { PurgeCacheClient } from '../../src/edges/upstream/client.js';
import { silentLogger } from '../../src/log.js';
import { unlinkCosts } from './unlink-costs.js';
import { reclaimFloor } from './reclaim-floor.js';
import { makeTree, median, ms, pairedWithRm, scratch, settle, versusRm, type Result } from '../lib.js';

const CLI = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../dist/cli.js');
const FILES = 100_000;
const DIRS = 1_000;
const ROUNDS = Number(process.env.PCA_BENCH_PURGE_ROUNDS ?? 2);
const POOL = { provisionerId: 'bench', workerType: 'purge-once' };

function runOnce(args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, 'once', ...args], { stdio: ['ignore', 'ignore', 'pipe'], env: { PATH: process.env.PATH ?? '/usr/bin:/bin' } });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr = (stderr + d).slice(-4000)));
    child.on('error', reject);
    child.on('close', (code) => {
      if (code === 0) resolve();
      else reject(new Error(`once exited ${code}: ${stderr}`));
    });
  });
}

function onceArgs(rootUrl: string, cacheRoot: string, stateDir: string): string[] {
  return ['--root-url', rootUrl, '--worker-pool-id', `${POOL.provisionerId}/${POOL.workerType}`, '--cache-root', cacheRoot, '--state-dir', stateDir];
}

export async function purgeOnce(): Promise<Result[]> {
  const results: Result[] = [];
  let floor: Result | undefined;
  for (const bytes of [64, 0]) {
    const dir = await scratch(`purge-once-${bytes}`);
    const service = await startService({ host: '127.0.0.1', port: 0, logger: silentLogger() });
    const client = new PurgeCacheClient({ rootUrl: service.url, logger: silentLogger() });
    const ours: number[] = [];
    const rm: number[] = [];
    try {
      for (let round = 0; round < ROUNDS; round++) {
        const root = path.join(dir.path, `root-${round}`);
        const cache = path.join(root, 'victim');
        const other = path.join(dir.path, `rm-${round}`);
        await makeTree(cache, DIRS, FILES, bytes);
        await makeTree(other, DIRS, FILES, bytes);
        await client.purgeCache(POOL, 'victim');
        settle();
        const args = onceArgs(service.url, root, path.join(dir.path, `state-${round}`));
        const runOurs = async (): Promise<void> => {
          const start = performance.now();
          await runOnce(args);
          ours.push(ms(start));
          if (
            await lstat(cache).then(
              () => true,
              () => false,
            )
          )
            throw new Error('once left the cache in place');
        };
        await pairedWithRm(round, runOurs, other, rm);
      }
      if (bytes === 0) {
        const idleOnce = async (round: number): Promise<number> => {
          const idleRoot = path.join(dir.path, `idle-root-${round}`);
          await mkdir(idleRoot);
          const start = performance.now();
          await runOnce(onceArgs(service.url, idleRoot, path.join(dir.path, `idle-state-${round}`)));
          return ms(start);
        };
        floor = await reclaimFloor(dir.path, { dirs: DIRS, files: FILES, rounds: ROUNDS }, idleOnce, median(rm));
      }
    } finally {
      await service.close();
      spawnSync('rm', ['-rf', dir.path]);
    }
    results.push(
      versusRm(
        `reclaim: \`once\` purging a cache of ${FILES.toLocaleString('en')} ${bytes === 0 ? 'empty' : `${bytes}-byte`} files (process start included)`,
        ours,
        rm,
        (o, r) => `median of ${ROUNDS} (once ${o} ms; rm -rf ${r} ms); the trash is emptied in the default low-priority child`,
      ),
    );
  }
  // Why the empty-file row stands where it does: the floor any deleter meets here, and the cost of one file by way of deleting it.
  if (floor) results.push(floor);
  results.push(...(await unlinkCosts()));
  return results;
}
