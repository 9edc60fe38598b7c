/**
 * Readiness: the agent is ready once its state is loaded and its last
 * successful cycle is younger than three schedule intervals — so a probe
 * notices an agent that can no longer reach the purge-cache service.
 *
 * The interval is the longest gap between consecutive runs among the
 * schedule's next runs (an irregular schedule is judged by its longest gap),
 * plus --jitter, by which each scheduled cycle may start late.
 */
import type { Agent } from '../engine/agent.js';
import { formatDuration } from '../core/duration.js';
import { nextRuns } from '../engine/schedule.js';

const RUNS_SAMPLED = 300;

/** The longest gap (ms) between consecutive runs of a cron schedule, from its next runs. */
export async function scheduleInterval(schedule: string): Promise<number> {
  const runs = await nextRuns(schedule, RUNS_SAMPLED, Date.now());
  let longest = 0;
  let previous: number | undefined;
  for (const run of runs) {
    if (previous !== undefined) longest = Math.max(longest, run - previous);
    previous = run;
  }
  return longest > 0 ? longest : 60_000;
}

export interface Readiness {
  ready: boolean;
  /** Why not (or, when ready, a short statement). */
  reason: string;
  thresholdMs: number;
  lastSuccessAt: string | null;
}

export function readiness(agent: Agent, thresholdMs: number): Readiness {
  const last = agent.lastSuccessAt;
  const base = { thresholdMs, lastSuccessAt: last === null ? null : new Date(last).toISOString() };
  const lastError = agent.lastCycle?.error;
  const because = lastError ? `; the last cycle failed: ${lastError}` : '';
  if (last === null) {
    return { ...base, ready: false, reason: `no successful cycle yet${because}` };
  }
  const age = agent.clock.now() - last;
  if (age > thresholdMs) {
    return {
      ...base,
      ready: false,
      reason: `the last successful cycle started ${formatDuration(Math.round(age / 1000) * 1000)} ago, more than three schedule intervals (${formatDuration(thresholdMs)}): the purge-cache service may be unreachable${because}`,
    };
  }
  return { ...base, ready: true, reason: 'the last successful cycle is recent' };
}
