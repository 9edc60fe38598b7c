/**
 * Tree sizes on real directories: blocks not apparent sizes, names that are
 * not UTF-8, hard links counted once, and errors from a tree that changes
 * under the walk reported with the path instead of thrown.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { spawn, spawnSync } from 'node:child_process';
import { link, lstat, mkdir, symlink, truncate, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { measureTree } from '../../../src/edges/caches/size.js';
import { makeTempDir, type TempDir } from '../../helpers/tmp.js';

let tmp: TempDir;
beforeEach(async () => {
  tmp = await makeTempDir('pca-size-');
});
afterEach(async () => {
  await tmp.cleanup();
});

describe('measureTree', () => {
  it('counts regular files once, follows no symlink, and reports a missing tree as empty', async () => {
    const root = path.join(tmp.path, 'tree');
    await mkdir(path.join(root, 'a', 'b'), { recursive: true });
    await writeFile(path.join(root, 'one'), 'x'.repeat(100));
    await writeFile(path.join(root, 'a', 'b', 'two'), 'y'.repeat(50));
    await link(path.join(root, 'one'), path.join(root, 'a', 'hardlink'));
    const outside = path.join(tmp.path, 'outside');
    await mkdir(outside);
    await writeFile(path.join(outside, 'big'), 'z'.repeat(10_000));
    await symlink(outside, path.join(root, 'escape'));
    await symlink(path.join(outside, 'big'), path.join(root, 'a', 'file-link'));
    // Sizes are the blocks files occupy (st_blocks × 512), and a hard-linked file counts once.
    const occupied = async (p: string): Promise<number> => (await lstat(p)).blocks * 512;
    const expected = (await occupied(path.join(root, 'one'))) + (await occupied(path.join(root, 'a', 'b', 'two')));
    expect(expected).toBeGreaterThan(0);
    expect(await measureTree(root, Infinity)).toEqual({ bytes: expected, files: 2, complete: true });
    expect(await measureTree(path.join(tmp.path, 'nothing'), Infinity)).toEqual({ bytes: 0, files: 0, complete: true });
  });

  it('stops at the deadline and says so', async () => {
    const root = path.join(tmp.path, 'tree');
    await mkdir(path.join(root, 'sub'), { recursive: true });
    await writeFile(path.join(root, 'sub', 'f'), 'data');
    const partial = await measureTree(root, performance.now() - 1);
    expect(partial.complete).toBe(false);
  });

  it('counts the blocks a sparse file occupies, not its apparent size', async () => {
    const root = path.join(tmp.path, 'tree');
    await mkdir(root);
    await writeFile(path.join(root, 'sparse'), 'x');
    await truncate(path.join(root, 'sparse'), 2 ** 40);
    const st = await lstat(path.join(root, 'sparse'));
    const measured = await measureTree(root, Infinity);
    expect(measured).toEqual({ bytes: st.blocks * 512, files: 1, complete: true });
    expect(measured.bytes).toBeLessThan(2 ** 20);
  });

  it('counts files whose names are not UTF-8, and a file with many links once', async () => {
    const root = path.join(tmp.path, 'tree');
    await mkdir(root);
    const odd = Buffer.concat([Buffer.from(`${root}/`), Buffer.from([0xff, 0xfe]), Buffer.from('-dir')]);
    await mkdir(odd);
    await writeFile(Buffer.concat([odd, Buffer.from('/'), Buffer.from([0x80])]), 'x'.repeat(10_000));
    await writeFile(path.join(root, 'linked'), 'y'.repeat(10_000));
    for (let i = 0; i < 5; i++) spawnSync('ln', [path.join(root, 'linked'), path.join(root, `link-${i}`)]);
    const one = (await lstat(path.join(root, 'linked'))).blocks * 512;
    expect(await measureTree(root, Infinity)).toEqual({ bytes: 2 * one, files: 2, complete: true });
  });

  it('a directory swapped for a looping symlink while it is measured is reported with its path, never thrown', async () => {
    const root = path.join(tmp.path, 'tree');
    for (let i = 0; i < 50; i++) await mkdir(path.join(root, `d${i}`, 'sub'), { recursive: true });
    await symlink('loop', path.join(root, 'loop'));
    // Swap d0..d49 with the looping symlink, as fast as rename goes.
    const swapper = spawn(
      'perl',
      ['-e', 'chdir shift; while (1) { for my $i (0..49) { rename "d$i", "t"; rename "loop", "d$i"; rename "d$i", "loop"; rename "t", "d$i" } }', root],
      { stdio: 'ignore' },
    );
    let errors = 0;
    try {
      for (let round = 0; round < 30; round++) {
        const measured = await measureTree(root, Infinity);
        if (measured.error) {
          errors++;
          expect(measured.complete).toBe(false);
          expect(measured.error.path.startsWith(root)).toBe(true);
          expect(measured.error.reason).toMatch(/ELOOP|ENOENT|ENOTDIR/);
        }
      }
    } finally {
      swapper.kill('SIGKILL');
    }
    if (process.env.PCA_MEASURE === '1') console.log(`${errors} of 30 walks met the swap`);
  });

  it('a tree too deep to name by its path is reported, not thrown', async () => {
    const root = path.join(tmp.path, 'tree');
    await mkdir(root);
    const made = spawnSync('perl', ['-e', 'chdir shift or die; for (1..20) { my $d = sprintf("%0250d", $_); mkdir $d or die; chdir $d or die }', root]);
    expect(made.status).toBe(0);
    try {
      const measured = await measureTree(root, Infinity);
      expect(measured.complete).toBe(false);
      expect(measured.error).toMatchObject({ path: expect.stringContaining(root), reason: expect.stringContaining('ENAMETOOLONG') });
    } finally {
      spawnSync('rm', ['-rf', root]);
    }
  });
});
