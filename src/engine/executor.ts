/**
 * Who carries out a decision. The engine decides the same way in a dry run
 * and in a real one; only the executor differs: the real one renames caches
 * into the trash and saves the state, the dry one reports what it would have
 * renamed and changes nothing, not even the agent's memory of the state.
 */
import type { Logger } from '../log.js';
import type { Candidate, Outcome } from '../core/judge.js';
import type { AgentState, StateStore } from '../edges/state.js';
import { applyPurges } from './purge.js';

export interface StateHolder {
  /** Null in a dry run: the state is read, never locked or written. */
  store: StateStore | null;
  state: AgentState;
  /** The state write in progress: writes never overlap. */
  writes?: Promise<void>;
}

export interface Executor {
  readonly dryRun: boolean;
  /** Lock and rename each candidate into its trash (src/engine/purge.ts). */
  purge(candidates: readonly Candidate[], logger: Logger): Promise<Outcome[]>;
  /** Apply `change` to the latest state and save it. */
  commit(holder: StateHolder, change: (current: AgentState) => AgentState): Promise<void>;
}

/**
 * Change and save the state, one write at a time. Leases change outside
 * cycles (the local API, `lease`, exec), so each write applies its change to
 * the latest state: a cycle's save never drops a lease taken meanwhile, and
 * two writers never race on the state file.
 */
function commitState(holder: StateHolder, change: (current: AgentState) => AgentState): Promise<void> {
  const run = (holder.writes ?? Promise.resolve()).then(async () => {
    const next = change(holder.state);
    if (holder.store) await holder.store.save(next);
    holder.state = next;
  });
  holder.writes = run.catch(() => {});
  return run;
}

export const realExecutor: Executor = {
  dryRun: false,
  purge: (candidates, logger) => applyPurges(candidates, { logger }),
  commit: commitState,
};

export const dryRunExecutor: Executor = {
  dryRun: true,
  purge: (candidates, logger) => {
    for (const candidate of candidates) logger.info({ cache: candidate.cache.name, path: candidate.cache.path, dryRun: true }, 'would purge');
    return Promise.resolve(candidates.map((candidate) => ({ kind: 'purged', candidate })));
  },
  commit: () => Promise.resolve(),
};

export function executorFor(settings: { dryRun: boolean }): Executor {
  return settings.dryRun ? dryRunExecutor : realExecutor;
}

/** Change the state whatever the mode: leases are real even in a dry run's memory. */
export const saveState = commitState;
