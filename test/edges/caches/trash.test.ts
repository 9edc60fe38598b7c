import { afterEach, describe, expect, it } from 'vitest';
import { existsSync } from 'node:fs';
import { chmod, chown, lstat, mkdir, readdir, rename, rm, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { UnsafePathError, CacheVanishedError, TrashUnavailableError } from '../../../src/errors.js';
import { listCaches, type CacheDir } from '../../../src/edges/caches/inventory.js';
import { inodeKey } from '../../../src/edges/caches/inode-key.js';
import { TRASH_DIR_NAME, emptyTrash, moveToTrash, trashDirFor, trashDirsFor, trashEntries } from '../../../src/edges/caches/trash.js';
import { makeTempDir, type TempDir } from '../../helpers/tmp.js';
import { makeSentinel } from './support.js';
import { mountTmpfs, unmountAllUnder } from '../../helpers/mounts.js';
import { hashTree } from '../../helpers/fixture.js';

let tmp: TempDir;
afterEach(async () => {
  await unmountAllUnder(tmp.path);
  await tmp.cleanup();
});

async function setup(): Promise<{ root: string; outside: string }> {
  tmp = await makeTempDir('pca-trash-');
  const root = path.join(tmp.path, 'root');
  const outside = path.join(tmp.path, 'outside');
  await mkdir(root);
  await makeSentinel(outside);
  return { root, outside };
}

/** A cache with a few files and a symlink pointing outside, as the inventory sees it. */
async function makeCache(root: string, name: string, outside: string): Promise<CacheDir> {
  await mkdir(path.join(root, name, 'sub'), { recursive: true });
  await writeFile(path.join(root, name, 'sub', 'file'), `data of ${name}`);
  await symlink(outside, path.join(root, name, 'out'));
  const { caches } = await listCaches({ roots: [root], singles: [] });
  return caches.find((c) => c.name === name)!;
}

const keyAt = async (p: string): Promise<string> => inodeKey(await lstat(p, { bigint: true }));

describe('moveToTrash', () => {
  it('renames the cache into the root’s trash in one step: the path is gone when it resolves', async () => {
    const { root, outside } = await setup();
    const cache = await makeCache(root, 'c', outside);
    const { trashPath } = await moveToTrash(cache, cache.key);
    expect(existsSync(cache.path)).toBe(false);
    expect(path.dirname(trashPath)).toBe(path.join(root, TRASH_DIR_NAME));
    expect(path.basename(trashPath)).toMatch(/^\d+-[0-9a-f]{12}-[0-9a-z]+$/);
    // The very directory, with everything in it: nothing was copied or half-deleted.
    expect(await keyAt(trashPath)).toBe(cache.key);
    expect(await readdir(trashPath)).toEqual(['out', 'sub']);
    expect((await lstat(path.join(root, TRASH_DIR_NAME))).mode & 0o777).toBe(0o700);
  });

  it('refuses a directory replaced since it was judged, and moves nothing', async () => {
    const { root, outside } = await setup();
    const cache = await makeCache(root, 'c', outside);
    await mkdir(path.join(root, 'replacement'));
    await rm(cache.path, { recursive: true });
    await rename(path.join(root, 'replacement'), cache.path);
    const err = await moveToTrash(cache, cache.key).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UnsafePathError);
    expect((err as UnsafePathError).message).toContain(cache.path);
    expect((err as UnsafePathError).message).toMatch(/replaced/);
    expect((err as UnsafePathError).path).toBe(cache.path);
    expect(existsSync(cache.path)).toBe(true);
    expect(await trashEntries([path.join(root, TRASH_DIR_NAME)])).toEqual([]);
  });

  it('refuses a symlink in place of the cache, and leaves its target alone', async () => {
    const { root, outside } = await setup();
    const cache = await makeCache(root, 'c', outside);
    await rm(cache.path, { recursive: true });
    await symlink(outside, cache.path);
    const before = await hashTree(outside);
    await expect(moveToTrash(cache, cache.key)).rejects.toBeInstanceOf(UnsafePathError);
    expect((await lstat(cache.path)).isSymbolicLink()).toBe(true);
    expect(await hashTree(outside)).toBe(before);
  });

  it('moves only a direct child of the root it holds open (rule 2), never `..` or the trash', async () => {
    const { root, outside } = await setup();
    const cache = await makeCache(root, 'c', outside);
    await mkdir(path.join(cache.path, 'inner'));
    const innerKey = await keyAt(path.join(cache.path, 'inner'));
    const rootKey = await keyAt(root);
    const attempts: [string, string][] = [
      [path.join(cache.path, 'inner'), innerKey],
      [path.join(root, '..'), rootKey],
      [path.join(root, TRASH_DIR_NAME), rootKey],
      [outside, await keyAt(outside)],
    ];
    for (const [p, key] of attempts) await expect(moveToTrash({ root, path: p }, key), p).rejects.toBeInstanceOf(UnsafePathError);
    expect(await trashEntries([path.join(root, TRASH_DIR_NAME)])).toEqual([]);
    expect(existsSync(path.join(cache.path, 'inner'))).toBe(true);
  });

  it('says, with its own error code, when the cache is already gone', async () => {
    const { root, outside } = await setup();
    const cache = await makeCache(root, 'c', outside);
    await rm(cache.path, { recursive: true });
    const err = await moveToTrash(cache, cache.key).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CacheVanishedError);
    expect((err as CacheVanishedError).code).toBe('PCA_CACHE_VANISHED');
  });

  it('uses a hidden sibling trash for a single cache', async () => {
    await setup();
    const single = path.join(tmp.path, 'single');
    await mkdir(single);
    const [cache] = (await listCaches({ roots: [], singles: [{ name: 's', path: single }] })).caches;
    expect(trashDirFor(cache!)).toBe(path.join(tmp.path, TRASH_DIR_NAME));
    const { trashPath } = await moveToTrash(cache!, cache!.key);
    expect(path.dirname(trashPath)).toBe(path.join(tmp.path, TRASH_DIR_NAME));
    expect(existsSync(single)).toBe(false);
  });

  it('refuses a trash that is a symlink, and never writes through it', async () => {
    const { root, outside } = await setup();
    const cache = await makeCache(root, 'c', outside);
    await symlink(outside, path.join(root, TRASH_DIR_NAME));
    const before = await hashTree(outside);
    await expect(moveToTrash(cache, cache.key)).rejects.toBeInstanceOf(TrashUnavailableError);
    expect(existsSync(cache.path)).toBe(true);
    expect(await hashTree(outside)).toBe(before);
  });

  it("refuses a trash that is not the agent's own 0700 directory, naming it and the fix", async (ctx) => {
    const { root, outside } = await setup();
    const cache = await makeCache(root, 'c', outside);
    const trash = path.join(root, TRASH_DIR_NAME);
    await mkdir(trash, { mode: 0o700 });
    await chmod(trash, 0o755);
    const wide = await moveToTrash(cache, cache.key).catch((e: unknown) => e);
    expect(wide).toBeInstanceOf(TrashUnavailableError);
    expect((wide as Error).message).toMatch(new RegExp(`refusing the trash ${trash}: it has mode 0755, not 0700.*removed`));
    await chmod(trash, 0o700);
    if (process.getuid?.() !== 0) return ctx.skip('chown needs root');
    await chown(trash, 4242, 4242);
    const foreign = await moveToTrash(cache, cache.key).catch((e: unknown) => e);
    expect((foreign as Error).message).toMatch(/owned by uid 4242, not by the agent \(uid 0\)/);
    expect(existsSync(cache.path)).toBe(true);
    expect(await readdir(trash)).toEqual([]);
    // Nor is one emptied: whatever is in it stays, and the report says why.
    await writeFile(path.join(trash, 'theirs'), 'x');
    const report = await emptyTrash([trash]);
    expect(report.failures).toEqual([{ path: trash, error: expect.stringMatching(/owned by uid 4242.*left alone/) }]);
    expect(await readdir(trash)).toEqual(['theirs']);
  });

  it('makes its trash with mode exactly 0700 whatever the umask', async () => {
    const { root, outside } = await setup();
    const cache = await makeCache(root, 'c', outside);
    const old = process.umask(0o077);
    try {
      await moveToTrash(cache, cache.key);
    } finally {
      process.umask(old);
    }
    expect((await lstat(path.join(root, TRASH_DIR_NAME))).mode & 0o7777).toBe(0o700);
  });

  it('refuses a cache that is a mount point', async (ctx) => {
    const { root } = await setup();
    const mnt = path.join(root, 'mounted');
    await mkdir(mnt);
    const { caches } = await listCaches({ roots: [root], singles: [] });
    const error = await mountTmpfs(mnt);
    if (error) return ctx.skip(`mounts are not permitted here: ${error}`);
    await expect(moveToTrash(caches[0]!, caches[0]!.key)).rejects.toThrow(/mount point/);
    expect(existsSync(mnt)).toBe(true);
  });
});

describe('emptyTrash', () => {
  it('deletes everything in the trash, keeps the trash directory, and nothing outside changes', async () => {
    const { root, outside } = await setup();
    for (const name of ['a', 'b', 'c']) {
      const cache = await makeCache(root, name, outside);
      await moveToTrash(cache, cache.key);
    }
    const trash = path.join(root, TRASH_DIR_NAME);
    expect(await trashEntries([trash])).toHaveLength(3);
    const before = await hashTree(outside);
    const report = await emptyTrash(trashDirsFor({ roots: [root], singles: [] }));
    expect(report).toMatchObject({ files: 6, dirs: 6, failures: [], skippedMounts: [] });
    expect(await readdir(trash)).toEqual([]);
    expect((await lstat(trash)).mode & 0o777).toBe(0o700);
    expect(await hashTree(outside)).toBe(before);
  });

  it('has nothing to do for a missing trash, and leaves a symlinked trash alone', async () => {
    const { root, outside } = await setup();
    expect(await emptyTrash([path.join(root, TRASH_DIR_NAME)])).toEqual({ files: 0, dirs: 0, bytes: 0, failures: [], skippedMounts: [] });
    await symlink(outside, path.join(root, TRASH_DIR_NAME));
    const before = await hashTree(outside);
    const report = await emptyTrash([path.join(root, TRASH_DIR_NAME)]);
    expect(report.failures).toHaveLength(1);
    expect(await hashTree(outside)).toBe(before);
  });

  it('lists one trash per root and one beside each single cache’s parent', () => {
    expect(
      trashDirsFor({
        roots: ['/r1', '/r2'],
        singles: [
          { name: 'a', path: '/s/a' },
          { name: 'b', path: '/s/b' },
          { name: 'c', path: '/r1/c' },
        ],
      }),
    ).toEqual([`/r1/${TRASH_DIR_NAME}`, `/r2/${TRASH_DIR_NAME}`, `/s/${TRASH_DIR_NAME}`]);
  });
});
