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

/** What a change to the state makes of it, whether that needs the state file rewritten now, and what the caller learns. */
export interface StateChange<T> {
  state: AgentState;
  write: boolean;
  value: T;
}

/**
 * Change the state, one change at a time. Leases change outside cycles (the
 * local API, `lease`, exec), so each change applies to the latest state: a
 * cycle's save never drops a lease taken meanwhile, and two writers never race
 * on the state file. A change that needs no write now is kept in memory and
 * saved with the next one.
 */
export function changeState<T>(holder: StateHolder, change: (current: AgentState) => StateChange<T>): Promise<T> {
  const run = (holder.writes ?? Promise.resolve()).then(async () => {
    const next = change(holder.state);
    if (next.write && holder.store) await holder.store.save(next.state);
    holder.state = next.state;
    return next.value;
  });
  holder.writes = run.then(
    () => {},
    () => {},
  );
  return run;
}

/** Change and save the state (changeState, always written). */
function commitState(holder: StateHolder, change: (current: AgentState) => AgentState): Promise<void> {
  return changeState(holder, (current) => ({ state: change(current), write: true, value: undefined }));
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
