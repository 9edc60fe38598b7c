/**
 * What the agent says about itself in its log: the line at start, and the
 * daemon's heartbeat.
 *
 * Quiet cycles log at debug (one a minute at info would be noise), so a
 * daemon with nothing to do would leave an empty journal — which must never
 * have to mean a dead agent. Every --heartbeat (10 minutes by default) it
 * logs one line saying how many cycles ran and when the service last
 * answered, unless a cycle already logged at info since the last one. Ten
 * minutes keeps it under 150 lines a day, and inside any "no logs for 15
 * minutes" alert or a look at the last quarter hour of the journal.
 */
import type { Agent } from './agent.js';
import type { CycleReport } from './cycle.js';
import type { Logger } from '../log.js';
import { VERSION } from '../version.js';

/** The start line's fields: enough to tell from the log alone what this agent works on. Never credentials. */
export function startFields(agent: Pick<Agent, 'settings' | 'pool' | 'sources'>): Record<string, unknown> {
  const { settings, pool, sources } = agent;
  return {
    version: VERSION,
    pool: `${pool.provisionerId}/${pool.workerType}`,
    // URLs carrying user:password are refused by the settings, so these never hold a secret.
    service: settings.proxyUrl ? { proxyUrl: settings.proxyUrl } : { rootUrl: settings.rootUrl },
    cacheRoots: sources.roots,
    caches: sources.singles.map((single) => `${single.name}=${single.path}`),
    stateDir: settings.stateDir,
    clientId: settings.credentials?.clientId ?? (settings.proxyUrl ? 'via taskcluster-proxy' : 'anonymous'),
    ...(settings.dryRun ? { dryRun: true } : {}),
  };
}

/** A cycle worth a line at info: it did something, or failed. The daemon logs those; the heartbeat covers the rest. */
export function cycleIsNews(report: CycleReport): boolean {
  return report.purged.length + report.deferred.length + report.failed.length + report.evicted.length > 0 || report.error !== undefined;
}

export interface HeartbeatCounts {
  cycles: number;
  failures: number;
  /** Cycles since the last heartbeat, and whether one of them was logged at info. */
  sinceLast: number;
  newsSinceLast: boolean;
}

/** The heartbeat line, or null when a cycle already spoke at info since the last one. */
export function heartbeatLine(counts: HeartbeatCounts, lastSuccessAt: number | null): Record<string, unknown> | null {
  if (counts.newsSinceLast) return null;
  return {
    cyclesRun: counts.cycles,
    cyclesSinceLastHeartbeat: counts.sinceLast,
    failedCycles: counts.failures,
    lastSuccess: lastSuccessAt === null ? null : new Date(lastSuccessAt).toISOString(),
  };
}

/** Log a heartbeat every `intervalMs` (0: never); returns the function that stops it. */
export function startHeartbeat(agent: Agent, logger: Logger, intervalMs: number): () => void {
  if (intervalMs <= 0) return () => {};
  const counts: HeartbeatCounts = { cycles: 0, failures: 0, sinceLast: 0, newsSinceLast: false };
  agent.onCycle((report) => {
    counts.cycles++;
    counts.sinceLast++;
    if (report.error !== undefined || report.failed.length > 0) counts.failures++;
    if (cycleIsNews(report)) counts.newsSinceLast = true;
  });
  const timer = setInterval(() => {
    const line = heartbeatLine(counts, agent.lastSuccessAt);
    if (line) logger.info(line, 'alive: no purge to apply');
    counts.sinceLast = 0;
    counts.newsSinceLast = false;
  }, intervalMs);
  timer.unref();
  return () => {
    clearInterval(timer);
  };
}
