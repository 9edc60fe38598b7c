import { afterEach, describe, expect, it } from 'vitest';
import { lstat, mkdir, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { ConfigError } from '../../../src/errors.js';
import { assertSourcesSafe, cacheDirProblem, resolveRoot, resolveSinglePath } from '../../../src/edges/caches/safety.js';
import { TRASH_DIR_NAME } from '../../../src/core/names.js';
import { makeTempDir, type TempDir } from '../../helpers/tmp.js';
import { mountTmpfs, unmountAllUnder } from '../../helpers/mounts.js';

let tmp: TempDir;
afterEach(async () => {
  await unmountAllUnder(tmp.path);
  await tmp.cleanup();
});

async function setup(): Promise<string> {
  tmp = await makeTempDir('pca-safety-');
  return tmp.path;
}

describe('resolving roots and single caches (rule 1)', () => {
  it('resolves a root reached through a symlink to its real path', async () => {
    const base = await setup();
    await mkdir(path.join(base, 'real'));
    await symlink(path.join(base, 'real'), path.join(base, 'link'));
    expect(await resolveRoot(path.join(base, 'link'))).toBe(path.join(base, 'real'));
  });

  it('refuses a root that is a file, naming it; keeps a missing root as given (it may appear later)', async () => {
    const base = await setup();
    await writeFile(path.join(base, 'file'), '');
    const err = await resolveRoot(path.join(base, 'file')).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).message).toContain(path.join(base, 'file'));
    expect(await resolveRoot(path.join(base, 'missing'))).toBe(path.join(base, 'missing'));
  });

  it('resolves a single cache’s parent but never follows its last component', async () => {
    const base = await setup();
    await mkdir(path.join(base, 'real'));
    await symlink(path.join(base, 'real'), path.join(base, 'link'));
    await symlink('/', path.join(base, 'real', 'cache'));
    expect(await resolveSinglePath(path.join(base, 'link', 'cache'))).toBe(path.join(base, 'real', 'cache'));
    await expect(resolveSinglePath('/')).rejects.toBeInstanceOf(ConfigError);
  });
});

describe('what a cache directory must be (rules 2 and 3)', () => {
  it('accepts a real directory on its parent’s filesystem and refuses symlinks and files', async () => {
    const base = await setup();
    await mkdir(path.join(base, 'dir'));
    await symlink('/', path.join(base, 'link'));
    await writeFile(path.join(base, 'file'), '');
    const parentDev = (await lstat(base, { bigint: true })).dev;
    const problem = async (name: string) => cacheDirProblem(await lstat(path.join(base, name), { bigint: true }), parentDev);
    expect(await problem('dir')).toBeNull();
    expect(await problem('link')).toMatch(/symlink/);
    expect(await problem('file')).toMatch(/not a directory/);
  });

  it('refuses a mount point', async (ctx) => {
    const base = await setup();
    await mkdir(path.join(base, 'mnt'));
    const error = await mountTmpfs(path.join(base, 'mnt'));
    if (error) return ctx.skip(`mounts are not permitted here: ${error}`);
    const parentDev = (await lstat(base, { bigint: true })).dev;
    expect(cacheDirProblem(await lstat(path.join(base, 'mnt'), { bigint: true }), parentDev)).toMatch(/mount point/);
  });
});

describe('roots and single caches never put a root in reach of a purge (rule 6)', () => {
  const ok =
    (roots: string[], singles: [string, string][] = []) =>
    () => {
      assertSourcesSafe({ roots, singles: singles.map(([name, p]) => ({ name, path: p })) });
    };

  it('accepts disjoint roots, and single caches beside or inside roots', () => {
    expect(ok(['/a', '/b', '/ab'])).not.toThrow();
    expect(
      ok(
        ['/caches'],
        [
          ['x', '/elsewhere/x'],
          ['y', '/caches/sub/y'],
          ['z', '/caches-2'],
        ],
      ),
    ).not.toThrow();
  });

  it('refuses nested roots, a single cache at or above a root, and one inside a trash', () => {
    expect(ok(['/caches', '/caches/inner'])).toThrow(/lies inside cache root \/caches/);
    expect(ok(['/caches/deep/inner', '/caches'])).toThrow(ConfigError);
    expect(ok(['/caches'], [['x', '/caches']])).toThrow(/contains the cache root/);
    expect(ok(['/srv/caches'], [['x', '/srv']])).toThrow(/contains the cache root \/srv\/caches/);
    expect(ok(['/caches'], [['x', `/caches/${TRASH_DIR_NAME}/x`]])).toThrow(/trash/);
    expect(ok(['/'])).toThrow(/filesystem root/);
  });
});
