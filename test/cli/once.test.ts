/**
 * The whole cycle through the built CLI, as a child process, against the
 * embedded service on 127.0.0.1, on real temporary directories.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { mkdir, readdir, symlink, writeFile, readFile } from 'node:fs/promises';
import path from 'node:path';
import { runCli, logLines } from '../helpers/cli.js';
import { makeFixture, hashTree, exists, readState, type Fixture } from '../helpers/fixture.js';
import { encodeCacheName } from '../../src/core/names.js';

let fx: Fixture;
beforeEach(async () => {
  fx = await makeFixture();
});
afterEach(async () => {
  await fx.close();
});

const once = (...extra: string[]) => runCli(['once', '--json', ...fx.args(...extra)]);
const report = (stdout: string) => JSON.parse(stdout) as Record<string, any>;

describe('once', () => {
  it('purges exactly the caches a request names, including hostile names', async () => {
    const names = ['plain', 'a/b', '..', '.', '%2F', 'my cache', 'ünïcödé ✓', 'x'.repeat(80), 'tab\there', '.hidden-looking'];
    for (const name of names) await fx.makeCache(name);
    await fx.makeCache('survivor');
    await fx.makeCache('plainer');
    const outsideBefore = await hashTree(fx.outside);
    for (const name of names) await fx.request(name);
    await fx.request('not-on-this-worker');

    const result = await once();
    expect(result.code, result.stderr).toBe(0);
    const r = report(result.stdout);
    expect(r.requests).toBe(names.length + 1);
    expect(r.purged.map((p: { name: string }) => p.name).sort()).toEqual([...names].sort());
    expect(r.failed).toEqual([]);
    expect((await readdir(fx.root)).sort()).toEqual(['.purge-cache-agent-trash', 'plainer', 'survivor'].sort());
    // once exits only after its trash is empty.
    expect(await readdir(path.join(fx.root, '.purge-cache-agent-trash'))).toEqual([]);
    expect(await hashTree(fx.outside)).toBe(outsideBefore);
  });

  it('ignores a requested name whose encoding exceeds 255 bytes, and logs it', async () => {
    await fx.makeCache('short');
    const long = 'é'.repeat(150); // 300 bytes of UTF-8, 900 encoded
    expect(encodeCacheName(long)).toBeNull();
    await fx.request(long);
    await fx.request('short');
    const result = await once();
    expect(result.code, result.stderr).toBe(0);
    expect(report(result.stdout).purged.map((p: { name: string }) => p.name)).toEqual(['short']);
    expect(logLines(result.stderr).some((l) => String(l.msg).includes('cannot exist on disk'))).toBe(true);
  });

  it('never follows symlinks out of a root, and never deletes what they point to', async () => {
    const victim = path.join(fx.outside, 'deep');
    await symlink(victim, path.join(fx.root, 'link-to-outside'));
    await symlink('/', path.join(fx.root, 'link-to-root'));
    const inside = await fx.makeCache('with-links');
    await symlink(fx.outside, path.join(inside, 'escape'));
    await symlink(path.join(fx.outside, 'precious.txt'), path.join(inside, 'precious-link'));
    const before = await hashTree(fx.outside);
    for (const name of ['link-to-outside', 'link-to-root', 'with-links']) await fx.request(name);

    const result = await once();
    expect(result.code, result.stderr).toBe(0);
    expect(report(result.stdout).purged.map((p: { name: string }) => p.name)).toEqual(['with-links']);
    expect(await exists(path.join(fx.root, 'link-to-outside'))).toBe(true);
    expect(await exists(path.join(fx.root, 'link-to-root'))).toBe(true);
    expect(await hashTree(fx.outside)).toBe(before);
  });

  it('keeps caches created after before + margin', async () => {
    await fx.makeCache('fresh');
    // The service's clock is an hour behind: its `before` is an hour before the cache's birth.
    fx.serviceClock.offsetMs = -3_600_000;
    await fx.request('fresh');
    // A first cycle records when the agent first saw the cache (this filesystem may lack birth times)...
    fx.serviceClock.offsetMs = 0;
    const first = await runCli(['once', '--json', ...fx.args('--skew-margin', '5m')]);
    // ...but it was first seen while a request named it, so without a birth time it is purged:
    // that is the documented conservative rule. Check it against the filesystem's answer.
    const purgedFirst = report(first.stdout).purged.length;
    const hasBirthTime = purgedFirst === 0;
    if (hasBirthTime) {
      expect(await exists(path.join(fx.root, 'fresh'))).toBe(true);
      return;
    }
    // Without birth times: recreate it, let a cycle record it, then request with an old `before`.
    await fx.makeCache('fresh2');
    const record = await once();
    expect(report(record.stdout).purged).toEqual([]);
    fx.serviceClock.offsetMs = -3_600_000;
    await fx.request('fresh2');
    fx.serviceClock.offsetMs = 0;
    const second = await once();
    expect(second.code, second.stderr).toBe(0);
    expect(report(second.stdout).purged).toEqual([]);
    expect(await exists(path.join(fx.root, 'fresh2'))).toBe(true);
  });

  it('sends since = the last query start minus the margin on the next cycle', async () => {
    const first = await once('--skew-margin', '2m');
    const r1 = report(first.stdout);
    expect(r1.since).toBeNull();
    const second = await once('--skew-margin', '2m');
    const r2 = report(second.stdout);
    expect(Date.parse(r2.since)).toBe(Date.parse(r1.queriedAt) - 120_000);
    expect((await readState(fx.stateDir)).cursor).toBe(Date.parse(r2.queriedAt));
  });

  it('leaves the cursor where it was when the query fails, and exits 1', async () => {
    await once();
    const cursor = (await readState(fx.stateDir)).cursor;
    const result = await runCli(['once', '--json', ...fx.args(), '--root-url', 'http://127.0.0.1:9']);
    expect(result.code).toBe(1);
    expect(report(result.stdout).error).toMatch(/127\.0\.0\.1:9/);
    expect((await readState(fx.stateDir)).cursor).toBe(cursor);
  }, 300_000);

  it('a dry run changes nothing: no cache, no trash, no state', async () => {
    await fx.makeCache('doomed');
    await fx.request('doomed');
    const tree = await hashTree(fx.tmp.path);
    const dry = await once('--dry-run');
    expect(dry.code, dry.stderr).toBe(0);
    const r = report(dry.stdout);
    expect(r.dryRun).toBe(true);
    expect(r.purged.map((p: { name: string }) => p.name)).toEqual(['doomed']);
    expect(await hashTree(fx.tmp.path)).toBe(tree);
    // ...and a real run afterwards behaves like a real run alone.
    const real = await once();
    expect(report(real.stdout).since).toBeNull();
    expect(report(real.stdout).purged.map((p: { name: string }) => p.name)).toEqual(['doomed']);
  });

  it('a crash between rename and delete is cleaned up at the next start', async () => {
    await fx.makeCache('big', Object.fromEntries(Array.from({ length: 50 }, (_, i) => [`d${i % 5}/f${i}`, 'x'])));
    await fx.request('big');
    const crashed = await runCli(['once', '--json', ...fx.args()], { env: { PURGE_CACHE_AGENT_TEST_KILL_AT: 'after-rename:1' } });
    expect(crashed.signal).toBe('SIGKILL');
    const trash = path.join(fx.root, '.purge-cache-agent-trash');
    expect(await exists(path.join(fx.root, 'big'))).toBe(false);
    expect((await readdir(trash)).length).toBe(1);
    const next = await once();
    expect(next.code, next.stderr).toBe(0);
    expect(await readdir(trash)).toEqual([]);
  });

  it('refuses a second agent on the same state directory, naming the holder', async () => {
    const { startCli, waitForOutput } = await import('../helpers/cli.js');
    const daemon = startCli(['run', ...fx.args()]);
    try {
      await waitForOutput(daemon, (o) => o.stderr.includes('purge-cache-agent started'));
      const second = await once();
      expect(second.code).toBe(1);
      expect(second.stderr).toContain(`pid ${daemon.pid}`);
    } finally {
      daemon.kill('SIGTERM');
      await new Promise((r) => daemon.once('close', r));
    }
  });

  it('reports a failed purge, exits 1, and retries it next cycle', async () => {
    const dir = await fx.makeCache('stuck');
    await fx.request('stuck');
    // Make the trash path a file: the rename into it fails.
    await writeFile(path.join(fx.root, '.purge-cache-agent-trash'), 'not a directory');
    const failed = await once();
    expect(failed.code).toBe(1);
    const r = report(failed.stdout);
    expect(r.failed.map((f: { name: string }) => f.name)).toEqual(['stuck']);
    expect(await exists(dir)).toBe(true);
    expect((await readState(fx.stateDir)).pending.map((p: { name: string }) => p.name)).toEqual(['stuck']);
    // Fixed: the pending purge is carried out even though the request is now behind the cursor.
    await (await import('node:fs/promises')).rm(path.join(fx.root, '.purge-cache-agent-trash'));
    const retried = await once();
    expect(retried.code, retried.stderr).toBe(0);
    expect(report(retried.stdout).purged.map((p: { name: string }) => p.name)).toEqual(['stuck']);
    expect(await exists(dir)).toBe(false);
  });
});

describe('exit codes and usage', () => {
  it('exits 2 for bad configuration, naming the setting', async () => {
    const result = await runCli(['once', ...fx.args('--skew-margin', 'soon')]);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/skewMargin/);
  });
  it('exits 2 for an unknown option or command', async () => {
    expect((await runCli(['once', '--frobnicate'])).code).toBe(2);
    expect((await runCli(['frobnicate'])).code).toBe(2);
  });
  it('exits 2 when no cache root is configured', async () => {
    const result = await runCli(['once', '--root-url', fx.service.url, '--worker-pool-id', 'a/b', '--state-dir', fx.stateDir]);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/--cache-root/);
  });
  it('prints the package version', async () => {
    const pkg = JSON.parse(await readFile(new URL('../../package.json', import.meta.url), 'utf8'));
    const result = await runCli(['--version']);
    expect(result.code).toBe(0);
    expect(result.stdout.trim()).toBe(pkg.version);
  });
  it('lists the caches without contacting the service', async () => {
    await fx.makeCache('a/b');
    await mkdir(path.join(fx.root, 'literal name'));
    const result = await runCli(['caches', '--json', '--cache-root', fx.root, '--state-dir', fx.stateDir, '--root-url', 'http://127.0.0.1:9']);
    expect(result.code, result.stderr).toBe(0);
    const names = JSON.parse(result.stdout).caches.map((c: { name: string }) => c.name);
    expect(names.sort()).toEqual(['a/b', 'literal name']);
  });
});
