/**
 * The long-running mode: a cycle at start, then one on the schedule, until
 * SIGTERM or SIGINT.
 *
 * - Each scheduled cycle waits a random delay up to --jitter first, so a fleet
 *   on the same schedule does not hit the service in lockstep — not at every
 *   minute, and not all at once when the service comes back from an outage.
 *   The cycle at start is not delayed: a fresh worker should be clean now.
 * - Cycles never overlap: a tick that finds a cycle in flight is served by it.
 * - SIGHUP runs a cycle now; one during a cycle queues one more right after
 *   (a request filed mid-cycle may have missed that cycle's query).
 * - Deferred purges are retried every --recheck, between cycles too, so a cache
 *   is purged soon after its last user lets go.
 * - On SIGTERM/SIGINT the cycle in flight finishes and the state is saved;
 *   trash deletion stops and resumes at the next start.
 */
import type { Agent } from './agent.js';
import type { Logger } from '../log.js';
import { errorMessage } from '../errors.js';
import { sleep } from '../edges/clock.js';
import { cycleIsNews, startFields, startHeartbeat } from './heartbeat.js';
import { scheduleCron } from './schedule.js';

export interface DaemonHooks {
  /** Started after the first cycle begins; stopped before the agent closes. */
  onStop?: () => Promise<void>;
  random?: () => number;
}

export async function runDaemon(agent: Agent, logger: Logger, hooks: DaemonHooks = {}): Promise<number> {
  const { settings } = agent;
  const random = hooks.random ?? Math.random;
  const stopController = new AbortController();
  const stopped = new Promise<string>((resolve) => {
    stopController.signal.addEventListener('abort', () => {
      resolve(String(stopController.signal.reason));
    });
  });

  const cycle = (why: string, join: boolean): void => {
    agent.sync({ join }).catch((err: unknown) => {
      logger.error({ err: errorMessage(err), trigger: why }, 'cycle crashed; the next one will retry');
    });
  };

  logger.info({ ...startFields(agent), schedule: settings.schedule, jitterMs: settings.jitter }, 'purge-cache-agent started');
  agent.onCycle((report, durationMs) => {
    const fields = {
      requests: report.requests,
      purged: report.purged.length,
      deferred: report.deferred.length,
      failed: report.failed.length,
      durationMs: Math.round(durationMs),
      error: report.error,
    };
    // A quiet cycle every minute is noise at info; one that did something is news. The heartbeat covers the quiet.
    if (cycleIsNews(report)) logger.info(fields, 'cycle finished');
    else logger.debug(fields, 'cycle finished');
  });
  const stopHeartbeat = startHeartbeat(agent, logger, settings.heartbeat);
  // Finish emptying any trash a crash left behind.
  agent.trash.kick();
  cycle('start', true);

  const onSchedule = async (): Promise<void> => {
    const delay = Math.floor(random() * settings.jitter);
    if (delay > 0 && !(await sleep(delay, stopController.signal))) return;
    cycle('schedule', true);
  };
  const task = await scheduleCron(settings.schedule, () => void onSchedule());

  // Every --recheck: retry deferred purges, and evict if free space fell below --min-free.
  const recheck = setInterval(
    () => {
      agent
        .recheck()
        .then(() => agent.evictIfLow())
        .catch((err: unknown) => {
          logger.error({ err: errorMessage(err) }, 'recheck of deferred purges or free space failed');
        });
    },
    Math.max(settings.recheck, 250),
  );

  const onHup = (): void => {
    logger.info('SIGHUP: running a cycle now');
    cycle('SIGHUP', false);
  };
  const onStop = (signal: NodeJS.Signals): void => {
    if (!stopController.signal.aborted) stopController.abort(signal);
  };
  process.on('SIGHUP', onHup);
  process.on('SIGTERM', onStop);
  process.on('SIGINT', onStop);

  const signal = await stopped;
  logger.info({ signal }, 'stopping: finishing the cycle in flight and saving state');
  await task.stop();
  clearInterval(recheck);
  stopHeartbeat();
  process.off('SIGHUP', onHup);
  await hooks.onStop?.();
  await agent.close();
  process.off('SIGTERM', onStop);
  process.off('SIGINT', onStop);
  logger.info('stopped');
  return 0;
}
