/**
 * Reaching the agent from short-lived commands (lease, exec): through the
 * running agent's local API when one runs; otherwise directly on the state
 * file, under the state lock — so the commands work on hosts that run the
 * agent only as a one-shot (`once` from a timer) too.
 */
import type { Settings } from '../config/index.js';
import type { Logger } from '../log.js';
import { AgentUnreachableError, StateLockedError } from '../errors.js';
import { StateStore } from '../edges/state.js';
import { findAgent, type ApiClient } from '../api/client.js';
import { resolveSources } from '../edges/caches/inventory.js';
import { localContext } from './context.js';
import { newObservations, type LocalContext } from './cycle.js';
import { systemClock } from '../edges/clock.js';

/** How long a command waits for another command's brief hold on the state lock. */
const LOCK_WAIT_MS = 3_000;

/**
 * Run `viaApi` against the running agent; when no agent is running at all (no
 * socket, or a stale one), run `offline` on the state under its lock instead.
 * An agent that holds the lock but does not answer is an error.
 */
export async function withAgentOrState<T>(
  settings: Settings,
  logger: Logger,
  viaApi: (client: ApiClient) => Promise<T>,
  offline: (local: LocalContext & { store: StateStore }) => Promise<T>,
): Promise<{ value: T; offline: boolean }> {
  const found = await findAgent(settings);
  if (found.client === null) {
    let store: StateStore;
    try {
      store = await StateStore.open(settings.stateDir, { logger, waitMs: LOCK_WAIT_MS });
    } catch (lockErr) {
      if (lockErr instanceof StateLockedError) {
        throw new AgentUnreachableError(
          `${found.looked.message}; but an agent (pid ${lockErr.holderPid ?? 'unknown'}) holds the state directory ${settings.stateDir}, so the state file cannot be changed directly either`,
        );
      }
      throw lockErr;
    }
    try {
      return { value: await offline(await openLocal(settings, logger, store)), offline: true };
    } finally {
      await store.close();
    }
  }
  try {
    return { value: await viaApi(found.client), offline: false };
  } finally {
    await found.client.close();
  }
}

/** Everything local work (a recheck, a purge, leases) needs, over an open state store. */
async function openLocal(settings: Settings, logger: Logger, store: StateStore): Promise<LocalContext & { store: StateStore }> {
  const sources = await resolveSources(settings.cacheRoots, settings.caches);
  return { ...localContext({ settings, logger, clock: systemClock, sources, store, state: store.state, observed: newObservations() }), store };
}
