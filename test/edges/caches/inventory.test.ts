import { afterEach, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { mkdirSync } from 'node:fs';
import { lstat, mkdir, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { findCaches, listCaches, resolveSources, type CacheSources } from '../../../src/edges/caches/inventory.js';
import { encodeCacheName, MAX_DIR_NAME_BYTES, TRASH_DIR_NAME } from '../../../src/core/names.js';
import { makeTempDir, type TempDir } from '../../helpers/tmp.js';
import { makeSentinel } from './support.js';
import { mountRamfs, mountTmpfs, unmountAllUnder } from '../../helpers/mounts.js';
import { hashTree } from '../../helpers/fixture.js';

let tmp: TempDir;
afterEach(async () => {
  await unmountAllUnder(tmp.path);
  await tmp.cleanup();
});

async function setup(where: 'system' | 'repo' = 'system'): Promise<{ root: string; outside: string }> {
  tmp = await makeTempDir('pca-inventory-', where);
  const root = path.join(tmp.path, 'root');
  const outside = path.join(tmp.path, 'outside');
  await mkdir(root);
  await makeSentinel(outside);
  return { root, outside };
}

const sourcesOf = (root: string, singles: CacheSources['singles'] = []): CacheSources => ({ roots: [root], singles });
const names = (caches: { name: string }[]): string[] => caches.map((c) => c.name).sort();

describe('listCaches', () => {
  it('decodes names, takes non-canonical names literally, and skips hidden entries, files and symlinks', async () => {
    const { root, outside } = await setup();
    const long = 'x'.repeat(MAX_DIR_NAME_BYTES);
    for (const name of ['a/b', '..', '.x', 'a..b', 'my cache', 'ü', '日本語', '100%', long]) await mkdir(path.join(root, encodeCacheName(name)!));
    for (const literal of ['plain cache', 'a%2fb', '%41']) await mkdir(path.join(root, literal));
    await mkdir(path.join(root, TRASH_DIR_NAME));
    await mkdir(path.join(root, '.lock-dir'));
    await writeFile(path.join(root, 'a-file'), '');
    await symlink(outside, path.join(root, 'link-out'));
    await symlink('/', path.join(root, 'link-root'));
    const before = await hashTree(outside);

    const { caches, problems } = await listCaches(sourcesOf(root));
    expect(problems).toEqual([]);
    expect(names(caches)).toEqual(['a/b', '..', '.x', 'a..b', 'my cache', 'ü', '日本語', '100%', long, 'plain cache', 'a%2fb', '%41'].sort());
    for (const cache of caches) {
      expect(cache.root).toBe(root);
      expect(path.dirname(cache.path)).toBe(root);
      const st = await lstat(cache.path, { bigint: true });
      expect(cache.key).toBe(`${st.dev}:${st.ino}`);
    }
    expect(await hashTree(outside)).toBe(before);
  });

  it('reports, and never uses, a directory whose name is not UTF-8 or that is a mount point', async (ctx) => {
    const { root } = await setup();
    mkdirSync(Buffer.concat([Buffer.from(root + '/bad-'), Buffer.from([0xff, 0xfe])]));
    await mkdir(path.join(root, 'good'));
    let { caches, problems } = await listCaches(sourcesOf(root));
    expect(names(caches)).toEqual(['good']);
    expect(problems).toEqual([{ path: expect.stringContaining('bad-'), error: expect.stringMatching(/not valid UTF-8.*fffe/) }]);

    await mkdir(path.join(root, 'mounted'));
    const error = await mountTmpfs(path.join(root, 'mounted'));
    if (error) return ctx.skip(`mounts are not permitted here: ${error}`);
    ({ caches, problems } = await listCaches(sourcesOf(root)));
    expect(names(caches)).toEqual(['good']);
    expect(problems).toContainEqual({ path: path.join(root, 'mounted'), error: expect.stringMatching(/mount point/) });
  });

  it('treats a missing root as a problem and a missing single cache as absent', async () => {
    const { root } = await setup();
    const single = path.join(tmp.path, 'single');
    const result = await listCaches({ roots: [path.join(root, 'gone')], singles: [{ name: 's', path: single }] });
    expect(result.caches).toEqual([]);
    expect(result.problems).toEqual([{ path: path.join(root, 'gone'), error: expect.stringMatching(/cannot read cache root/) }]);
    await mkdir(single);
    expect((await listCaches({ roots: [], singles: [{ name: 's', path: single }] })).caches).toMatchObject([{ name: 's', path: single, root: null }]);
  });

  it('refuses a single cache that is a symlink or a file, and says so', async () => {
    const { outside } = await setup();
    const link = path.join(tmp.path, 'link');
    const file = path.join(tmp.path, 'file');
    await symlink(outside, link);
    await writeFile(file, '');
    const { caches, problems } = await listCaches({
      roots: [],
      singles: [
        { name: 'l', path: link },
        { name: 'f', path: file },
      ],
    });
    expect(caches).toEqual([]);
    expect(problems).toEqual([
      { path: link, error: expect.stringMatching(/symlink/) },
      { path: file, error: expect.stringMatching(/not a directory/) },
    ]);
  });

  it('reports a birth time where the filesystem has one', async () => {
    const { root } = await setup('repo');
    await mkdir(path.join(root, 'c'));
    const [cache] = (await listCaches(sourcesOf(root))).caches;
    const st = await lstat(path.join(root, 'c'), { bigint: true });
    // The repo's filesystem reports birth times on the machines this runs on; if one doesn't, null is right.
    expect(cache!.birthtimeMs).toBe(st.birthtimeMs > 0n ? Number(st.birthtimeMs) : null);
    expect(cache!.mtimeMs).toBe(Number(st.mtimeMs));
  });

  it('reports no birth time (null, not 0) where the filesystem has none', async (ctx) => {
    await setup();
    const mnt = path.join(tmp.path, 'ramfs');
    await mkdir(mnt);
    // ramfs keeps no birth time; Node reports 0 for it.
    const error = await mountRamfs(mnt);
    if (error) return ctx.skip(`cannot mount a ramfs here: ${error}`);
    await mkdir(path.join(mnt, 'c'));
    if ((await lstat(path.join(mnt, 'c'))).birthtimeMs !== 0) return ctx.skip('this kernel’s ramfs reports a birth time');
    const { caches } = await listCaches(sourcesOf(mnt));
    expect(caches).toMatchObject([{ name: 'c', birthtimeMs: null }]);
  });

  it('lists 10,000 caches', async () => {
    const { root } = await setup();
    for (let i = 0; i < 10_000; i++) mkdirSync(path.join(root, `cache-${i}`));
    const { caches, problems } = await listCaches(sourcesOf(root));
    expect(problems).toEqual([]);
    expect(new Set(caches.map((c) => c.name)).size).toBe(10_000);
    const found = await findCaches(sourcesOf(root), ['cache-7', 'cache-9999', 'cache-10000']);
    expect(names(found.caches)).toEqual(['cache-7', 'cache-9999']);
  });
});

describe('findCaches', () => {
  it('finds a name by its encoded and its literal directory, and nothing else', async () => {
    const { root } = await setup();
    await mkdir(path.join(root, 'my%20cache'));
    await mkdir(path.join(root, 'my cache'));
    await mkdir(path.join(root, 'other'));
    const { caches, problems } = await findCaches(sourcesOf(root), ['my cache']);
    expect(problems).toEqual([]);
    expect(caches.map((c) => path.basename(c.path)).sort()).toEqual(['my cache', 'my%20cache']);
    expect(names(caches)).toEqual(['my cache', 'my cache']);
  });

  it('finds a literal directory even when the encoding would be too long to exist', async () => {
    const { root } = await setup();
    const name = 'é'.repeat(100); // 200 bytes literally, 600 encoded
    expect(encodeCacheName(name)).toBeNull();
    await mkdir(path.join(root, name));
    expect(names((await findCaches(sourcesOf(root), [name])).caches)).toEqual([name]);
  });

  it('finds nothing and touches nothing for hostile names', async () => {
    const { root, outside } = await setup();
    await mkdir(path.join(root, 'c'));
    await symlink(outside, path.join(root, 'link'));
    const before = await hashTree(tmp.path);
    const hostile = ['', '.', '..', '/', '../outside', 'c/..', '\0', 'link', TRASH_DIR_NAME, '\ud800', '/'.repeat(300)];
    const result = await findCaches(sourcesOf(root), hostile);
    expect(result).toEqual({ caches: [], problems: [], locations: [{ id: root, instance: expect.any(String) }] });
    expect(await hashTree(tmp.path)).toBe(before);
  });

  it('looks up single caches by their configured name', async () => {
    await setup();
    const single = path.join(tmp.path, 'single');
    await mkdir(single);
    const sources = { roots: [], singles: [{ name: 'pinned', path: single }] };
    expect((await findCaches(sources, ['pinned'])).caches).toMatchObject([{ name: 'pinned', path: single, root: null }]);
    expect((await findCaches(sources, ['single'])).caches).toEqual([]);
  });

  it('agrees with listCaches for arbitrary names', async () => {
    const { root } = await setup();
    await fc.assert(
      fc.asyncProperty(
        fc.uniqueArray(fc.string({ unit: 'binary', minLength: 1, maxLength: 20 }), { maxLength: 8 }),
        fc.array(fc.string({ maxLength: 6 }), { maxLength: 4 }),
        async (present, absent) => {
          const dir = path.join(root, `run-${Math.random().toString(36).slice(2)}`);
          await mkdir(dir);
          const stored = present.filter((n) => encodeCacheName(n) !== null);
          for (const name of stored) await mkdir(path.join(dir, encodeCacheName(name)!));
          const listed = await listCaches(sourcesOf(dir));
          expect(names(listed.caches)).toEqual([...stored].sort());
          const found = await findCaches(sourcesOf(dir), [...stored, ...absent.filter((n) => !stored.includes(n))]);
          expect(names(found.caches)).toEqual([...stored].sort());
        },
      ),
      { numRuns: 25 },
    );
  });
});

describe('resolveSources', () => {
  it('resolves roots through symlinks and refuses a configuration that puts a root in reach of a purge', async () => {
    const { root } = await setup();
    await symlink(root, path.join(tmp.path, 'root-link'));
    expect((await resolveSources([path.join(tmp.path, 'root-link')], [])).roots).toEqual([root]);
    await expect(resolveSources([root], [{ name: 'all', path: tmp.path }])).rejects.toThrow(/contains the cache root/);
  });
});
