/**
 * A hostile build task, running as an unprivileged user (nobody, through
 * setpriv), tries to stall the agent or make it act on wrong figures: tens of
 * thousands of open descriptors, a lock whose holder no process shows, a
 * sparse file of 15 TB, a tree too deep to name, hundreds of stalled TCP
 * connections, and leases by the hundred. A missing flock(1) is met too.
 * Figures (time, memory) go to the reliability report; nothing here asserts
 * how fast anything happened.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmod, chown, lstat, mkdir, symlink, writeFile } from 'node:fs/promises';
import { connect, type Socket } from 'node:net';
import path from 'node:path';
import { logLines, runCli, waitForOutput } from '../helpers/cli.js';
import { makeFixture, exists, readState, type Fixture } from '../helpers/fixture.js';
import { call, firstCycle, startDaemon, type Daemon } from '../helpers/api.js';
import { DEFAULT_SCAN_BUDGET } from '../../src/edges/caches/inuse.js';
import { MAX_LEASES_PER_CACHE } from '../../src/core/leases.js';
import { TCP_CONNECTION_LIMITS } from '../../src/api/connections.js';
import { record, skipBecause } from './support.js';

const NOBODY = 65534;
const isRoot = process.getuid?.() === 0;
const asNobody = ['setpriv', `--reuid=${NOBODY}`, `--regid=${NOBODY}`, '--clear-groups'];
const canSetpriv = isRoot && spawnSync(asNobody[0]!, [...asNobody.slice(1), 'true']).status === 0;
const python = ['/usr/bin/python3', '/usr/local/bin/python3'].find(
  (p) => spawnSync(p, ['-c', 'import socket; socket.send_fds'], { stdio: 'ignore' }).status === 0,
);

let fx: Fixture | undefined;
let daemon: Daemon | undefined;
let attackers: ChildProcess[] = [];
let sockets: Socket[] = [];

afterEach(async () => {
  for (const s of sockets) s.destroy();
  sockets = [];
  await Promise.all(attackers.map(stop));
  attackers = [];
  await daemon?.stop();
  daemon = undefined;
  // rm(1) removes a tree too deep to name by its full path (node's rm cannot).
  if (fx) spawnSync('rm', ['-rf', '--one-file-system', fx.tmp.path]);
  await fx?.close();
  fx = undefined;
});

async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGKILL');
  await exited;
}

/** Run `argv` as nobody and wait until it prints "ready". */
function attacker(argv: string[], cwd = '/'): Promise<ChildProcess> {
  const child = spawn(asNobody[0]!, [...asNobody.slice(1), ...argv], { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
  attackers.push(child);
  let err = '';
  child.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', (code) => {
      reject(new Error(`attacker ${argv[0]} exited (${code}): ${err}`));
    });
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      if (d.includes('ready')) resolve(child);
    });
  });
}

/** A fixture nobody can reach: its temp dir opened up, its cache root owned by nobody (a task that writes the root). */
async function hostileFixture(): Promise<Fixture> {
  const f = await makeFixture();
  await chmod(f.tmp.path, 0o755);
  await chown(f.root, NOBODY, NOBODY);
  return f;
}

function peakRssMb(pid: number): number | null {
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(spawnSync('cat', [`/proc/${pid}/status`], { encoding: 'utf8' }).stdout);
    return m ? Math.round(Number(m[1]) / 1024) : null;
  } catch {
    return null;
  }
}

describe.skipIf(!canSetpriv)('a hostile task cannot stall the agent', () => {
  it('many processes with many descriptors: the scan stops at its budget, the cache is deferred, /healthz answers meanwhile', async (ctx) => {
    fx = await hostileFixture();
    // Enough descriptors to pass this daemon's budget whatever else runs here, and few enough to leave the
    // default budget of other agents on this machine (the rest of the suite) untouched. Each is a dup of /dev/null.
    const budget = 20_000;
    const perProcess = 10_000;
    const processes = 3;
    expect(processes * perProcess).toBeGreaterThan(budget);
    expect(processes * perProcess * 4).toBeLessThan(DEFAULT_SCAN_BUDGET);
    const hog =
      'use POSIX; open(my $f, "<", "/dev/null") or die; for (1..shift) { defined(POSIX::dup(fileno($f))) or die "dup: $!" } $| = 1; print "ready\\n"; sleep 600';
    try {
      for (let i = 0; i < processes; i++) await attacker(['perl', '-e', hog, String(perProcess)]);
    } catch (err) {
      skipBecause(ctx, `nobody cannot hold ${perProcess} descriptors here: ${(err as Error).message.slice(0, 200)}`);
    }
    const victim = await fx.makeCache('victim');
    await fx.request('victim');

    daemon = await startDaemon(fx, { args: ['--log-level', 'debug', '--in-use-checks', 'locks,processes', '--in-use-scan-budget', String(budget)] });
    const probes: number[] = [];
    let probesDuringScan = 0;
    const log = () => logLines(daemon!.child.output.stderr);
    const cycleDone = () => log().some((l) => l.msg === 'cycle finished' || String(l.msg).startsWith('purge deferred') || String(l.msg).startsWith('purged'));
    // Probe /healthz over TCP until the cycle at start has decided: every probe must be answered.
    while (!cycleDone()) {
      const scanning = log().some((l) => l.msg === 'scanning /proc for cache use') && !log().some((l) => l.msg === 'scanned /proc for cache use');
      probes.push((await call(daemon.tcp, 'GET', '/healthz')).status);
      if (scanning) probesDuringScan++;
      await new Promise((r) => setTimeout(r, 20));
    }
    expect(probes.every((s) => s === 200)).toBe(true);
    expect(await exists(victim)).toBe(true);
    await waitForOutput(daemon.child, (o) => o.stderr.includes('purge deferred'), 120_000);
    const scan = log().find((l) => l.msg === 'scanned /proc for cache use')!;
    expect(scan).toMatchObject({ exhausted: true });
    const deferral = logLines(daemon.child.output.stderr).find((l) => String(l.msg).startsWith('purge deferred'))!;
    expect(String(deferral.msg)).toContain('in-use scan budget exhausted after');
    expect(String(deferral.msg)).toContain('deferred rather than purged on incomplete knowledge');
    expect(await exists(victim)).toBe(true);
    expect((await call(daemon.tcp, 'GET', '/healthz')).status).toBe(200);
    const rss = peakRssMb(daemon.child.pid!);
    record(ctx, {
      cases: processes * perProcess,
      unit: 'descriptors',
      detail: `${processes} processes of nobody with ${perProcess} descriptors each; the scan read ${Number(scan.entries)} entries (budget ${budget}, --in-use-scan-budget; the default is ${DEFAULT_SCAN_BUDGET}) in ${Number(scan.ms)} ms (bound: the budget, not a time), daemon peak RSS ${rss ?? '?'} MB; ${probes.length} /healthz probes during the cycle (${probesDuringScan} while the scan ran), all answered; the cache was deferred as in use, not purged`,
    });
  }, 300_000);

  it.skipIf(!python)(
    'a lock whose holder no process shows does not make the agent walk the cache',
    async (ctx) => {
      fx = await hostileFixture();
      const files = 20_000;
      const victim = await fx.makeCache('victim');
      spawnSync('sh', ['-c', `cd "$1" && mkdir d && cd d && seq ${files} | xargs touch`, 'sh', victim]);
      // nobody locks a file of its own on the same filesystem, then keeps the descriptor only in flight in a
      // unix socket: no /proc/<pid>/fd shows it, so the lock's holder cannot be seen.
      const own = path.join(fx.root, 'attacker-file');
      await writeFile(own, 'x');
      await chown(own, NOBODY, NOBODY);
      const script = [
        'import fcntl, os, socket, sys, time',
        'fd = os.open(sys.argv[1], os.O_RDONLY); fcntl.flock(fd, fcntl.LOCK_EX)',
        'a, b = socket.socketpair(); socket.send_fds(a, [b"x"], [fd]); os.close(fd)',
        "print('ready', flush=True); time.sleep(600)",
      ].join('\n');
      await attacker([python!, '-c', script, own]);
      await fx.request('victim');
      const once = await runCli(['once', '--json', ...fx.args('--log-level', 'debug', '--in-use-checks', 'locks')], { timeoutMs: 120_000 });
      expect(once.code, once.stderr).toBe(0);
      expect(JSON.parse(once.stdout).purged.map((p: { name: string }) => p.name)).toEqual(['victim']);
      const scan = logLines(once.stderr).find((l) => l.msg === 'scanned /proc for cache use')!;
      expect(scan).toBeDefined();
      // No walk of the cache for the unseen lock: the pass read /proc, nothing of the cache's 20,000 entries.
      expect(Number(scan.walked ?? 0)).toBe(0);
      record(ctx, {
        cases: files,
        unit: 'files in the cache',
        detail: `an exclusive flock held through a descriptor in flight in a unix socket (nobody); the decision read ${Number(scan.entries)} /proc entries in ${Number(scan.ms)} ms and no entry of the cache (it used to walk all of them at each decision); the cache was purged`,
      });
    },
    180_000,
  );

  it('a 15 TB sparse file and a tree too deep to name do not drive eviction or crash the cycle', async (ctx) => {
    fx = await hostileFixture();
    const sparse = await fx.makeCache('sparse');
    const deep = await fx.makeCache('deep');
    const idle = await Promise.all(['idle-a', 'idle-b'].map((n) => fx!.makeCache(n, { 'data.bin': 'x'.repeat(10_000) })));
    for (const dir of [sparse, deep]) await chown(dir, NOBODY, NOBODY);
    // Idle caches last used long ago; the attacker's caches are in use (recent).
    const old = new Date(Date.now() - 30 * 86_400_000);
    for (const dir of idle) spawnSync('touch', ['-d', old.toISOString(), dir]);
    const made = spawnSync(
      asNobody[0]!,
      [
        ...asNobody.slice(1),
        'sh',
        '-c',
        'truncate -s 15T "$1/huge" && cd "$2" && exec perl -e \'for (1..20) { my $d = sprintf("%0250d", $_); mkdir $d or die "mkdir: $!"; chdir $d or die "chdir: $!" }\'',
        'sh',
        sparse,
        deep,
      ],
      { encoding: 'utf8' },
    );
    if (made.status !== 0) skipBecause(ctx, `cannot make a sparse 15 TB file or a deep tree here: ${made.stderr.slice(0, 200)}`);
    expect((await lstat(path.join(sparse, 'huge'))).size).toBe(15 * 2 ** 40);
    const once = await runCli(['once', '--json', ...fx.args('--max-size', '100M', '--in-use-checks', 'locks')], { timeoutMs: 120_000 });
    expect(once.stderr).not.toMatch(/unexpected error/i);
    const report = JSON.parse(once.stdout);
    // Nothing is near 100M on disk: no cache is evicted for size.
    expect(report.evicted).toEqual([]);
    for (const dir of [...idle, sparse, deep]) expect(await exists(dir)).toBe(true);
    // The tree that cannot be measured is a failed entry naming it, with the reason; the cycle fails, and goes on.
    const failed = report.failed.find((f: { name: string }) => f.name === 'deep');
    expect(failed).toMatchObject({ path: deep, error: expect.stringMatching(/ENAMETOOLONG/) });
    expect(once.code).toBe(1);
    record(ctx, {
      cases: 2,
      unit: 'trees',
      detail:
        'a 15 TB sparse file (counted by its blocks, a few KB) did not make --max-size 100M evict the idle caches; a tree 20 levels of 250-character names deep (ENAMETOOLONG) became a failed entry with its path instead of an "unexpected error"',
    });
  }, 180_000);

  it('hundreds of stalled TCP connections do not keep /healthz from answering', async (ctx) => {
    fx = await makeFixture();
    daemon = await startDaemon(fx);
    const count = 400;
    const opened = await Promise.all(
      Array.from(
        { length: count },
        () =>
          new Promise<'open' | 'refused'>((resolve) => {
            const s = connect({ host: '127.0.0.1', port: daemon!.tcp.port });
            sockets.push(s);
            s.once('connect', () => {
              // Half a request, then nothing more: a slow client.
              s.write('GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ');
              resolve('open');
            });
            s.once('error', () => {
              resolve('refused');
            });
            s.setTimeout(60_000, () => s.destroy());
          }),
      ),
    );
    const health = await call(daemon.tcp, 'GET', '/healthz');
    expect(health.status).toBe(200);
    const ready = await call(daemon.tcp, 'GET', '/readyz');
    expect([200, 503]).toContain(ready.status);
    // The unix socket is not part of the TCP limits.
    expect((await call(daemon.socket, 'GET', '/healthz')).status).toBe(200);
    const rss = peakRssMb(daemon.child.pid!);
    record(ctx, {
      cases: count,
      unit: 'connections',
      detail: `${opened.filter((o) => o === 'open').length} of ${count} stalled connections from loopback accepted (limits: ${TCP_CONNECTION_LIMITS.total} in all, ${TCP_CONNECTION_LIMITS.perRemote} per address; the oldest idle one gives way); /healthz answered ${health.status}, /readyz ${ready.status}; daemon peak RSS ${rss ?? '?'} MB`,
    });
  }, 120_000);

  it('leases are capped per cache, and a renewal early in its TTL does not rewrite the state file', async (ctx) => {
    fx = await makeFixture();
    await fx.makeCache('c');
    daemon = await startDaemon(fx);
    await firstCycle(daemon);
    const put = (owner: string) => call(daemon!.socket, 'PUT', `/v1/caches/c/leases/${owner}`, { body: JSON.stringify({ ttlSeconds: 3600 }) });
    for (let i = 0; i < MAX_LEASES_PER_CACHE; i++) expect((await put(`owner-${i}`)).status).toBe(200);
    const refused = await put('one-too-many');
    expect(refused.status).toBe(409);
    expect(refused.json).toMatchObject({ code: 'LeaseLimitReached', message: expect.stringContaining(`${MAX_LEASES_PER_CACHE}`) });
    // An existing lease is still renewed at the cap, and renewing it early writes nothing.
    const stateFile = path.join(fx.stateDir, 'state.json');
    const before = await lstat(stateFile);
    const renewed = await put('owner-0');
    expect(renewed.status).toBe(200);
    const after = await lstat(stateFile);
    expect([after.ino, after.mtimeMs]).toEqual([before.ino, before.mtimeMs]);
    expect((await readState(fx.stateDir)).leases).toHaveLength(MAX_LEASES_PER_CACHE);
    record(ctx, {
      cases: MAX_LEASES_PER_CACHE + 2,
      unit: 'lease calls',
      detail: `${MAX_LEASES_PER_CACHE} leases on one cache accepted, the next refused with 409 LeaseLimitReached; a renewal in the first third of its TTL left state.json untouched`,
    });
  }, 120_000);
});

describe('without a lock tool', () => {
  it('refuses to purge when neither flock(1) nor perl is on PATH: the purge stays pending and the cycle fails, saying what to install', async (ctx) => {
    fx = await makeFixture();
    const cache = await fx.makeCache('victim');
    await fx.request('victim');
    // A PATH with the tools the agent may run, but not flock or perl.
    const bin = path.join(fx.tmp.path, 'bin');
    await mkdir(bin);
    for (const tool of ['sh', 'ionice', 'nice', 'chrt', 'setpriv', 'cat', 'ls']) {
      const found = spawnSync('sh', ['-c', `command -v ${tool}`], { encoding: 'utf8' }).stdout.trim();
      if (found) await symlink(found, path.join(bin, tool));
    }
    const once = await runCli(['once', '--json', ...fx.args('--in-use-checks', 'locks')], { env: { PATH: bin } });
    expect(once.code, once.stderr).toBe(1);
    const report = JSON.parse(once.stdout);
    expect(report.purged).toEqual([]);
    expect(report.failed).toEqual([expect.objectContaining({ name: 'victim', error: expect.stringContaining('install util-linux (flock) or perl') })]);
    expect(await exists(cache)).toBe(true);
    expect((await readState(fx.stateDir)).pending.map((p: { name: string }) => p.name)).toEqual(['victim']);
    // With the tools back, the same purge goes through.
    const again = await runCli(['once', '--json', ...fx.args('--in-use-checks', 'locks')]);
    expect(again.code, again.stderr).toBe(0);
    expect(JSON.parse(again.stdout).purged.map((p: { name: string }) => p.name)).toEqual(['victim']);
    record(ctx, {
      cases: 1,
      unit: 'cache',
      detail:
        'PATH without flock and perl: the purge failed with "install util-linux (flock) or perl", stayed pending, once exited 1; purged on the next run with the tools back',
    });
  }, 120_000);
});
