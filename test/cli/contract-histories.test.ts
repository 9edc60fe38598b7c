/**
 * Random histories end to end: the same contract as test/core's model, but
 * carried out by the built CLI on real directories against the embedded
 * service, with real flock holders, a root that goes away and comes back, and
 * SIGKILL at a step of the run. Fewer and shorter histories than the pure
 * model (each `once` is a process), enough to show that the shell carries out
 * what the core decides.
 */
import { afterEach, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { mkdir, rename, rm } from 'node:fs/promises';
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { runCli } from '../helpers/cli.js';
import { makeFixture, exists, hashTree, type Fixture } from '../helpers/fixture.js';

type Root = 'A' | 'B';
type Step =
  | { t: 'create'; root: Root; name: string }
  | { t: 'remove'; root: Root; name: string }
  | { t: 'file'; name: string }
  | { t: 'hold'; root: Root; name: string }
  | { t: 'release' }
  | { t: 'away'; root: Root }
  | { t: 'back'; root: Root }
  | { t: 'tick' }
  | { t: 'once'; kill?: 'after-query' | 'after-rename' };

const name = fc.constantFrom('a', 'b');
const root = fc.constantFrom<Root>('A', 'B');
const step: fc.Arbitrary<Step> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ root, name }).map((s): Step => ({ t: 'create', ...s })) },
  { weight: 1, arbitrary: fc.record({ root, name }).map((s): Step => ({ t: 'remove', ...s })) },
  { weight: 3, arbitrary: name.map((n): Step => ({ t: 'file', name: n })) },
  { weight: 1, arbitrary: fc.record({ root, name }).map((s): Step => ({ t: 'hold', ...s })) },
  { weight: 1, arbitrary: fc.constant<Step>({ t: 'release' }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constantFrom('away' as const, 'back' as const), root }) },
  { weight: 1, arbitrary: fc.constant<Step>({ t: 'tick' }) },
  { weight: 4, arbitrary: fc.constantFrom<Step>({ t: 'once' }, { t: 'once' }, { t: 'once', kill: 'after-query' }, { t: 'once', kill: 'after-rename' }) },
);

interface Cache {
  root: Root;
  name: string;
  created: number;
}

let fx: Fixture | undefined;
const holders: ChildProcess[] = [];
/** A holder and the command it runs, together (they share a process group). */
function kill(child: ChildProcess): void {
  try {
    process.kill(-child.pid!, 'SIGKILL');
  } catch {
    // already gone
  }
}
afterEach(async () => {
  for (const h of holders.splice(0)) kill(h);
  await fx?.close();
  fx = undefined;
});

async function runHistory(steps: Step[]): Promise<number> {
  fx = await makeFixture();
  const dirs: Record<Root, string> = { A: fx.root, B: path.join(fx.tmp.path, 'second') };
  await mkdir(dirs.B);
  const outside = await hashTree(fx.outside);
  const present = new Map<string, Cache>(); // by path
  const held = new Set<string>();
  const away = new Set<Root>();
  /** Real times: when each name was last filed, and when a run that received it last began acting. */
  const filed = new Map<string, number>();
  const received = new Map<string, number>();
  let purges = 0;
  const log: string[] = [];
  const fail = (why: string): never => {
    throw new Error(`${why}\nhistory:\n  ${log.join('\n  ')}`);
  };

  for (const s of steps) {
    log.push(JSON.stringify(s));
    switch (s.t) {
      case 'create': {
        const at = path.join(dirs[s.root], s.name);
        if (away.has(s.root) || present.has(at)) break;
        await mkdir(at);
        present.set(at, { root: s.root, name: s.name, created: Date.now() });
        break;
      }
      case 'remove': {
        const at = path.join(dirs[s.root], s.name);
        if (away.has(s.root) || held.has(at)) break;
        await rm(at, { recursive: true, force: true });
        present.delete(at);
        break;
      }
      case 'file':
        await fx.request(s.name);
        filed.set(s.name, Date.now());
        received.delete(s.name);
        break;
      case 'hold': {
        const at = path.join(dirs[s.root], s.name);
        if (!present.has(at) || held.has(at) || away.has(s.root)) break;
        // A task declaring use the systemd-tmpfiles way: a shared flock on the directory.
        // Its own process group: flock(1)'s command inherits the locked descriptor, so both must go to let go.
        const child = spawn('flock', ['--shared', at, 'sh', '-c', 'echo held; exec sleep 600'], { stdio: ['ignore', 'pipe', 'ignore'], detached: true });
        await new Promise((resolve) => child.stdout.once('data', resolve));
        holders.push(child);
        held.add(at);
        break;
      }
      case 'release':
        for (const h of holders.splice(0)) {
          const closed = new Promise((resolve) => h.once('close', resolve));
          kill(h);
          await closed;
        }
        held.clear();
        break;
      case 'away':
      case 'back':
        if ((s.t === 'away') === away.has(s.root)) break;
        if (s.t === 'away') await rename(dirs[s.root], `${dirs[s.root]}.away`);
        else await rename(`${dirs[s.root]}.away`, dirs[s.root]);
        if (s.t === 'away') away.add(s.root);
        else away.delete(s.root);
        break;
      case 'tick':
        await sleep(1_100); // past the one-second margin: what was filed is behind the cursor now
        break;
      case 'once': {
        const started = Date.now();
        const env: Record<string, string> = s.kill ? { PURGE_CACHE_AGENT_TEST_KILL_AT: `${s.kill}:1` } : {};
        const result = await runCli(['once', ...fx.args('--skew-margin', '1s', '--cache-root', dirs.B, '--in-use-checks', 'locks')], {
          env,
          timeoutMs: 120_000,
        });
        const crashed = result.signal === 'SIGKILL';
        if (!crashed && result.code !== 0 && result.code !== 1) fail(`once exited ${result.code}: ${result.stderr.slice(-1500)}`);
        // A run that got past its query received what was filed before it began (a crash after renames did too).
        if (!crashed || s.kill === 'after-rename') for (const [n, at] of filed) if (at < started && !received.has(n)) received.set(n, started);
        for (const [at, cache] of [...present]) {
          // A root moved away hides its caches from us as from the agent: they are judged when it is back.
          if (away.has(cache.root) || (await exists(at))) continue;
          present.delete(at);
          purges++;
          if (held.has(at)) fail(`purged ${at} while a task held it`);
          const got = received.get(cache.name);
          if (got !== undefined && cache.created > got) fail(`purged ${at}, created after the agent had received every request for it`);
          if (!filed.has(cache.name)) fail(`purged ${at}, for which no request was ever filed`);
        }
        if (!crashed && result.code === 0 && held.size === 0) {
          // Nothing missed: every cache older than the latest request for its name is gone.
          for (const [at, cache] of present)
            if (!away.has(cache.root) && (filed.get(cache.name) ?? 0) > cache.created) fail(`missed ${at}: requested after it was created`);
        }
        if ((await hashTree(fx.outside)) !== outside) fail('something outside the roots changed');
        break;
      }
    }
  }
  return purges;
}

describe('the purge contract over random histories, end to end', () => {
  it('the CLI on real directories never misses, repeats or oversteps a purge', async () => {
    let purges = 0;
    await fc.assert(
      fc.asyncProperty(fc.array(step, { minLength: 4, maxLength: 10 }), async (steps) => {
        try {
          // Each history starts with one purge for certain, so the checks never pass on histories that purge nothing.
          const start: Step[] = [{ t: 'create', root: 'A', name: 'a' }, { t: 'file', name: 'a' }, { t: 'once' }];
          purges += await runHistory([...start, ...steps, { t: 'release' }, { t: 'back', root: 'A' }, { t: 'back', root: 'B' }, { t: 'once' }]);
        } finally {
          for (const h of holders.splice(0)) kill(h);
          await fx?.close();
          fx = undefined;
        }
      }),
      { numRuns: 4, endOnFailure: true },
    );
    expect(purges).toBeGreaterThan(0);
  }, 900_000);
});
