/**
 * `exec --cache NAME [--cache NAME …] [--sync] [--purge-on-exit CODES] -- COMMAND [ARGS…]`:
 * the one-line integration for any worker. The command runs on caches that no
 * purge request condemns, and no purge touches them until it ends; with
 * --purge-on-exit, an ending it lists purges them once the command let go.
 *
 * Exit codes: the command's own (128+N when signal N killed it); 2 for bad
 * usage or configuration; 125 when exec could not prepare the caches (timed
 * out waiting, agent errors); 126 when the command can't be run, 127 when it
 * isn't found — the conventions of env(1) and container runtimes.
 */
import { spawn } from 'node:child_process';
import { hostname } from 'node:os';
import { constants } from 'node:os';
import { requireCaches } from '../config/index.js';
import { parseDuration } from '../core/duration.js';
import { AgentError, UsageError, errnoCode, errorMessage } from '../errors.js';
import { validateOwner } from '../core/leases.js';
import { resolveSources } from '../edges/caches/inventory.js';
import type { DirLock } from '../edges/caches/inuse.js';
import { claim, locate, type Target } from '../engine/exec/claim.js';
import { execCoordinator } from '../engine/exec/coordinator.js';
import { describeEnding, parsePurgeOnExit, purgesOn, type Ending } from '../engine/exec/purge-on-exit.js';
import { carryOut, condemn, type HeldCache } from '../engine/exec/purge-after-exit.js';
import { commandContext, type SettingFlags } from './context.js';

const FORWARDED: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];
const EXIT_PREPARE_FAILED = 125;

/** exec's own flags; commander fills in the defaults of the durations. */
export interface ExecFlags extends SettingFlags {
  /** Cache names (repeatable); exec does not take the setting's --cache NAME=PATH. */
  cache?: string[];
  sync?: boolean;
  waitTimeout: string;
  leaseTtl: string;
  owner?: string;
  purgeOnExit?: string;
}

export async function execCommand(command: string[], flags: ExecFlags): Promise<number> {
  // exec's --cache takes cache names; single caches come from the config file here.
  const names = flags.cache ?? [];
  const ctx = await commandContext({ ...flags, cache: undefined });
  if (names.length === 0) throw new UsageError('exec needs at least one --cache NAME');
  const [program, ...args] = command;
  if (program === undefined) throw new UsageError('exec needs a command after --');
  requireCaches(ctx.settings);
  const owner = flags.owner ?? `exec:${hostname()}:${process.pid}`;
  const ownerProblem = validateOwner(owner);
  if (ownerProblem) throw new UsageError(`invalid --owner: ${ownerProblem}`);
  const waitMs = duration(flags.waitTimeout, '--wait-timeout');
  const leaseTtlMs = duration(flags.leaseTtl, '--lease-ttl');
  const purgeOnExit = flags.purgeOnExit === undefined ? null : parsePurgeOnExit(flags.purgeOnExit);

  const say = (line: string): void => void process.stderr.write(`purge-cache-agent exec: ${line}\n`);
  const coordinator = execCoordinator(ctx.settings, ctx.logger);
  const sources = await resolveSources(ctx.settings.cacheRoots, ctx.settings.caches);
  const targets: Target[] = [...new Set(names)].map((name) => locate(name, sources));
  const locks: DirLock[] = [];
  /** The caches claimed so far, each with the directory its lock holds. */
  const held: HeldCache[] = [];
  const leased: string[] = [];
  const releaseAll = async (): Promise<void> => {
    await Promise.all(
      leased.map((name) =>
        coordinator.releaseLease(name, owner).catch((err: unknown) => {
          ctx.logger.warn({ cache: name, err: errorMessage(err) }, 'could not release the lease; it expires by itself');
        }),
      ),
    );
    await Promise.all(locks.map((lock) => lock.release()));
  };

  try {
    if (flags.sync) await coordinator.sync();
    const deadline = Date.now() + waitMs;
    for (const target of targets) {
      const lock = await claim(target, { coordinator, lease: { owner, ttlMs: leaseTtlMs }, logger: ctx.logger, deadline, say });
      locks.push(lock);
      held.push({ ...target, key: lock.key });
      leased.push(target.name);
    }
  } catch (err) {
    await releaseAll();
    if (err instanceof AgentError && err.exitCode === 2) throw err;
    say(errorMessage(err));
    return EXIT_PREPARE_FAILED;
  }

  const heartbeat = setInterval(
    () => {
      for (const name of leased) {
        coordinator.acquireLease(name, owner, leaseTtlMs).catch((err: unknown) => {
          ctx.logger.warn({ cache: name, err: errorMessage(err) }, 'could not extend the lease; the flock still protects the cache');
        });
      }
    },
    Math.max(1000, leaseTtlMs / 3),
  );

  let outcome: RunOutcome;
  try {
    outcome = await run(program, args, targets, say);
  } finally {
    clearInterval(heartbeat);
  }
  const { ending } = outcome;
  if (!purgeOnExit || !ending || !purgesOn(purgeOnExit, ending)) {
    await releaseAll();
    return outcome.code;
  }
  // The command is over, but exec still holds its caches: condemn them now, so
  // that nobody claims them unpurged once exec lets go, then purge them.
  say(`the command ${describeEnding(ending)}, which --purge-on-exit lists: purging ${held.map((c) => JSON.stringify(c.name)).join(', ')}`);
  await condemn(held, coordinator, say);
  await releaseAll();
  await carryOut(held, coordinator, say);
  return outcome.code;
}

function duration(text: string, flag: string): number {
  const ms = parseDuration(text);
  if (ms === undefined || ms <= 0) throw new UsageError(`invalid ${flag} ${text}: expected a duration such as 90s, 10m or 1h`);
  return ms;
}

interface RunOutcome {
  /** exec's exit code: the command's, 128+N for signal N, 126/127 when it could not be started. */
  code: number;
  /** How the command ended; null when it never started. */
  ending: Ending | null;
}

/** Run the command with the terminal's stdio, forwarding signals; resolve with how it ended. */
function run(program: string, args: string[], targets: Target[], say: (line: string) => void): Promise<RunOutcome> {
  const env: NodeJS.ProcessEnv = { ...process.env };
  targets.forEach((t, i) => (env[`PURGE_CACHE_AGENT_CACHE_${i}`] = t.path));
  env.PURGE_CACHE_AGENT_CACHE_DIRS = JSON.stringify(Object.fromEntries(targets.map((t) => [t.name, t.path])));
  return new Promise((resolve) => {
    const child = spawn(program, args, { stdio: 'inherit', env });
    const forward = (signal: NodeJS.Signals): void => void child.kill(signal);
    for (const signal of FORWARDED) process.on(signal, forward);
    const done = (outcome: RunOutcome): void => {
      for (const signal of FORWARDED) process.off(signal, forward);
      resolve(outcome);
    };
    child.on('error', (err) => {
      const code = errnoCode(err) === 'ENOENT' ? 127 : 126;
      say(`cannot run ${program}: ${errorMessage(err)}`);
      done({ code, ending: null });
    });
    child.on('exit', (code, signal) => {
      if (code !== null) done({ code, ending: { kind: 'exit', code } });
      else {
        const byCode = 128 + (signal ? constants.signals[signal] : 0);
        done({ code: byCode, ending: { kind: 'signal', signal: signal ?? 'a signal', code: byCode } });
      }
    });
  });
}
