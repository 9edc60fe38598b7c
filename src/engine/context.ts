/**
 * What local work runs in (LocalContext), built in one place: for the agent,
 * and for commands that work on the state file directly when no agent runs.
 * So both judge "in use" the same way, from the same settings.
 */
import type { Settings } from '../config/index.js';
import type { Logger } from '../log.js';
import type { Clock } from '../edges/clock.js';
import type { AgentState, StateStore } from '../edges/state.js';
import type { CacheSources } from '../edges/caches/inventory.js';
import { createUsageProbe } from '../edges/caches/inuse.js';
import type { LocalContext, Observations } from './cycle.js';

export interface LocalParts {
  settings: Settings;
  logger: Logger;
  clock: Clock;
  sources: CacheSources;
  /** Null in a dry run: the state is read, never locked or written. */
  store: StateStore | null;
  state: AgentState;
  observed: Observations;
}

export function localContext(parts: LocalParts): LocalContext {
  const { settings, logger } = parts;
  const checks = settings.inUseChecks;
  // Leases are not the probe's: the look adds them from the state (holdersOfCaches).
  const usage = createUsageProbe({
    sources: { locks: checks.includes('locks'), processes: checks.includes('processes') },
    budget: settings.inUseScanBudget,
    logger,
  });
  return { ...parts, usage };
}
