import { mkdtemp, rm, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

export interface TempDir {
  path: string;
  cleanup(): Promise<void>;
}

/**
 * A fresh directory that this test owns, removed by cleanup(). Tests never
 * touch anything outside such directories.
 *
 * `where: 'repo'` puts it under <repo>/.test-tmp instead of the system temp
 * dir: on some machines /tmp is a filesystem that reports no birth time, and
 * tests of the birth-time path need one that does.
 */
export async function makeTempDir(prefix = 'pca-', where: 'system' | 'repo' = 'system'): Promise<TempDir> {
  let base = tmpdir();
  if (where === 'repo') {
    base = path.join(REPO, '.test-tmp');
    await mkdir(base, { recursive: true });
  }
  const dir = await mkdtemp(path.join(base, prefix));
  return {
    path: dir,
    cleanup: () => rm(dir, { recursive: true, force: true, maxRetries: 3 }),
  };
}

export const REPO_ROOT = REPO;
export const CLI_PATH = path.join(REPO, 'dist', 'cli.js');
