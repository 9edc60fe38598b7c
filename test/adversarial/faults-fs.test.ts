/**
 * Filesystem faults ("Faults"): EPERM, EACCES and EBUSY on deletion
 * and on the rename (the races with someone else's changes are in
 * faults-race.test.ts). Root bypasses permission bits, so EPERM comes from
 * `chattr +i`/`+a`, EACCES from running the agent as `nobody`, and EBUSY from
 * real mounts; each is skipped, with the reason, where the sandbox refuses.
 */
import { describe, expect, it } from 'vitest';
import { spawn, spawnSync } from 'node:child_process';
import { chmod, chown, mkdir, readdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { cleanEnv, finished, logLines, runCli, type CliResult } from '../helpers/cli.js';
import { CLI_PATH } from '../helpers/tmp.js';
import { makeFixture, exists, hashTree, readState, type Fixture } from '../helpers/fixture.js';
import { record, skipBecause } from './support.js';
import { bindMount, chattr, mountTmpfs, releaseAfterEach, whereIsTmpfs } from '../helpers/mounts.js';

let fx: Fixture;
releaseAfterEach(() => fx);

const trash = () => path.join(fx.root, '.purge-cache-agent-trash');
const once = (...extra: string[]) => runCli(['once', '--json', ...fx.args('--in-use-checks', 'locks', ...extra)]);
const lines = (r: CliResult) => logLines(r.stderr);

describe('EPERM, EACCES and EBUSY', () => {
  it('EPERM: an immutable file inside a purged cache, and an immutable cache', async (ctx) => {
    fx = await makeFixture();
    const sticky = await fx.makeCache('sticky', { 'locked/file': 'immutable', 'free/file': 'x' });
    const appendOnly = await fx.makeCache('append-only', { 'log/entries': 'x', other: 'y' });
    const frozen = await fx.makeCache('frozen', { data: 'x' });
    const attr = await chattr('+i', path.join(sticky, 'locked', 'file'));
    if (attr !== null) skipBecause(ctx, `chattr is not supported here: ${attr}`);
    expect(await chattr('+a', path.join(appendOnly, 'log'))).toBeNull();
    expect(await chattr('+i', frozen)).toBeNull();
    const outsideHash = await hashTree(fx.outside);
    for (const name of ['sticky', 'append-only', 'frozen']) await fx.request(name);

    const first = await once();
    // The immutable cache cannot be renamed: a failed purge (exit 1), kept pending for the next cycle.
    expect(first.code, first.stderr).toBe(1);
    const report = JSON.parse(first.stdout);
    expect(report.purged.map((p: { name: string }) => p.name).sort()).toEqual(['append-only', 'sticky']);
    expect(report.failed.filter((f: { name: string }) => f.name !== '(trash)')).toEqual([
      expect.objectContaining({ name: 'frozen', path: frozen, error: expect.stringMatching(/EPERM/) }),
    ]);
    // What the trash could not delete is reported too (and retried on the next run).
    expect(report.failed.some((f: { name: string; error: string }) => f.name === '(trash)' && /EPERM/.test(f.error))).toBe(true);
    expect((await readState(fx.stateDir)).pending.map((p: { name: string }) => p.name)).toEqual(['frozen']);
    // The files inside cannot be deleted: each is logged with its path and the reason, and the rest of the trash goes.
    const trashFailures = lines(first).filter((l) => l.msg === 'could not delete from the trash; retried on the next run');
    const eperm = trashFailures.filter((l) => /EPERM/.test(String(l.error))).map((l) => String(l.path));
    expect(eperm).toEqual(expect.arrayContaining([expect.stringMatching(/locked\/file$/), expect.stringMatching(/log\/entries$/)]));
    // Besides EPERM, only the directories that held those files (ENOTEMPTY).
    for (const l of trashFailures) expect(String(l.error)).toMatch(/EPERM|ENOTEMPTY/);
    const left = await readdir(trash());
    expect(left).toHaveLength(2);

    // Fixed: the next cycle retries both the rename and the deletion.
    await new Promise<void>((resolve) =>
      spawn('chattr', ['-R', '-i', '-a', fx.tmp.path], { stdio: 'ignore' }).on('close', () => {
        resolve();
      }),
    );
    const second = await once();
    expect(second.code, second.stderr).toBe(0);
    expect(JSON.parse(second.stdout).purged.map((p: { name: string }) => p.name)).toEqual(['frozen']);
    expect(await readdir(trash())).toEqual([]);
    expect(await hashTree(fx.outside)).toBe(outsideHash);
    record(ctx, {
      cases: 3,
      unit: 'caches',
      detail:
        'an immutable file and an append-only dir inside purged caches (deletion EPERM, logged with path, retried), an immutable cache (rename EPERM: failed, pending, exit 1, purged on the next run)',
    });
  });

  it('EACCES: the agent running as nobody meets a root-owned cache and a root-owned directory inside one', async (ctx) => {
    fx = await makeFixture();
    const nobody = 65534;
    for (const p of [fx.tmp.path]) await chmod(p, 0o755);
    await mkdir(fx.stateDir, { recursive: true });
    const mine = await fx.makeCache('mine', { 'rootonly/f': 'root file', 'own/f': 'x' });
    const theirs = await fx.makeCache('theirs', { f: 'x' });
    for (const p of [fx.root, fx.stateDir, mine, path.join(mine, 'own'), path.join(mine, 'own', 'f')]) await chown(p, nobody, nobody);
    // mine/rootonly and theirs stay root's, mode 0755: nobody can neither empty the one nor rename the other.
    for (const name of ['mine', 'theirs']) await fx.request(name);
    const outsideHash = await hashTree(fx.outside);

    const asNobody = async (): Promise<CliResult> => {
      const child = spawn(process.execPath, [CLI_PATH, 'once', '--json', ...fx.args('--in-use-checks', 'locks')], {
        env: cleanEnv({ HOME: fx.tmp.path }),
        uid: nobody,
        gid: nobody,
        cwd: fx.tmp.path,
        stdio: ['ignore', 'pipe', 'pipe'],
      }) as ReturnType<typeof spawn> & { output: { stdout: string; stderr: string } };
      child.output = { stdout: '', stderr: '' };
      child.stdout!.setEncoding('utf8').on('data', (d: string) => (child.output.stdout += d));
      child.stderr!.setEncoding('utf8').on('data', (d: string) => (child.output.stderr += d));
      return finished(child, 240_000);
    };
    // A checkout in a private directory (a 0700 temporary clone) is out of nobody's reach altogether.
    const probe = spawnSync(process.execPath, [CLI_PATH, '--version'], { uid: nobody, gid: nobody, cwd: '/' });
    if (probe.status !== 0) skipBecause(ctx, `nobody cannot run the CLI from this checkout: ${String(probe.stderr).slice(0, 200)}`);
    const first = await asNobody();
    if (first.stderr.includes('EACCES') && first.stdout === '') skipBecause(ctx, `nobody cannot run the CLI here: ${first.stderr.slice(0, 300)}`);
    expect(first.code, first.stderr).toBe(1);
    const report = JSON.parse(first.stdout);
    expect(report.purged.map((p: { name: string }) => p.name)).toEqual(['mine']);
    expect(report.failed.filter((f: { name: string }) => f.name !== '(trash)')).toEqual([
      expect.objectContaining({ name: 'theirs', error: expect.stringMatching(/EACCES/) }),
    ]);
    expect(report.failed.some((f: { name: string; path: string }) => f.name === '(trash)' && /rootonly/.test(f.path))).toBe(true);
    const failures = lines(first).filter((l) => l.msg === 'could not delete from the trash; retried on the next run');
    expect(failures.length).toBeGreaterThan(0);
    expect(failures.some((l) => /rootonly\/f$/.test(String(l.path)) && /EACCES/.test(String(l.error)))).toBe(true);
    for (const l of failures) {
      expect(String(l.path)).toContain('rootonly');
      expect(String(l.error)).toMatch(/EACCES|ENOTEMPTY/);
    }
    expect(await exists(theirs)).toBe(true);

    // Given the ownership, the next run as nobody finishes both.
    await new Promise<void>((resolve) =>
      spawn('chown', ['-R', `${nobody}:${nobody}`, fx.root], { stdio: 'ignore' }).on('close', () => {
        resolve();
      }),
    );
    const second = await asNobody();
    expect(second.code, second.stderr).toBe(0);
    expect(JSON.parse(second.stdout).purged.map((p: { name: string }) => p.name)).toEqual(['theirs']);
    expect(await readdir(trash())).toEqual([]);
    expect(await hashTree(fx.outside)).toBe(outsideHash);
    record(ctx, {
      cases: 2,
      unit: 'caches',
      detail:
        'as uid 65534: a root-owned dir inside a cache (deletion EACCES, logged, retried) and a root-owned cache (rename EACCES: failed, pending); both done once ownership was fixed',
    });
  });

  it('EBUSY: mounts inside a purged cache, as a cache, and inside the trash are left alone and reported', async (ctx) => {
    fx = await makeFixture();
    const withMount = await fx.makeCache('with-mount', { 'beside.txt': 'goes' });
    await mkdir(path.join(withMount, 'mnt'));
    const tag = `pca-adv-ebusy-${process.pid}`;
    const m = await mountTmpfs(path.join(withMount, 'mnt'), tag);
    if (m !== null) skipBecause(ctx, `cannot mount here: ${m}`);
    await writeFile(path.join(withMount, 'mnt', 'on-tmpfs'), 'kept');
    const tmpfsHash = await hashTree(path.join(withMount, 'mnt'));
    const isBind = await fx.makeCache('is-bind', {});
    await mkdir(path.join(fx.outside, 'bound'));
    await writeFile(path.join(fx.outside, 'bound', 'keep'), 'kept');
    expect(await bindMount(path.join(fx.outside, 'bound'), isBind)).toBeNull();
    const isTmpfs = await fx.makeCache('is-tmpfs', {});
    expect(await mountTmpfs(isTmpfs, `${tag}-2`)).toBeNull();
    await writeFile(path.join(isTmpfs, 'f'), 'kept');
    await mkdir(path.join(trash(), 'leftover', 'mnt'), { recursive: true, mode: 0o700 });
    await writeFile(path.join(trash(), 'leftover', 'junk'), 'goes');
    expect(await mountTmpfs(path.join(trash(), 'leftover', 'mnt'), `${tag}-3`)).toBeNull();
    await writeFile(path.join(trash(), 'leftover', 'mnt', 'f'), 'kept');
    const outsideHash = await hashTree(fx.outside);
    for (const name of ['with-mount', 'is-bind', 'is-tmpfs']) await fx.request(name);

    const result = await once();
    expect(result.code, result.stderr).toBe(0);
    const report = JSON.parse(result.stdout);
    expect(report.purged.map((p: { name: string }) => p.name)).toEqual(['with-mount']);
    const warned = lines(result)
      .filter((l) => l.msg === 'left a mount point in the trash alone: deletion never crosses into another filesystem')
      .map((l) => String(l.path));
    expect(new Set(warned).size).toBe(2);
    expect(lines(result).some((l) => l.msg === 'purge skipped: the cache changed under us' && /EBUSY/.test(String(l.reason)))).toBe(true);
    expect(lines(result).some((l) => typeof l.error === 'string' && l.error.includes('is a mount point') && l.path === isTmpfs)).toBe(true);
    expect(await hashTree((await whereIsTmpfs(tag))!)).toBe(tmpfsHash);
    expect(await exists(path.join(fx.root, 'is-bind', 'keep'))).toBe(true);
    expect(await exists(path.join(isTmpfs, 'f'))).toBe(true);
    expect(await exists(path.join(trash(), 'leftover', 'junk'))).toBe(false);
    expect(await exists(path.join(trash(), 'leftover', 'mnt', 'f'))).toBe(true);
    expect(await hashTree(fx.outside)).toBe(outsideHash);
    record(ctx, {
      cases: 4,
      unit: 'mounts',
      detail:
        'a tmpfs inside a purged cache and one inside the trash (left, reported), a cache that is a same-filesystem bind mount (rename EBUSY: refused), a cache that is a tmpfs (not a cache)',
    });
  });
});
