/**
 * Prometheus metrics (GET /metrics), in a registry of the API's own — never
 * prom-client's global one, so nothing else in the process can pollute it and
 * two agents in one process (tests) don't collide.
 *
 * Counters are fed by the agent as work happens (cycles, purges, trash
 * deletion); gauges are read from the agent when scraped.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { Agent } from '../engine/agent.js';
import { liveLeases } from '../core/leases.js';
import { workerPoolId } from '../core/model.js';
import { VERSION } from '../version.js';
import { createHash } from 'node:crypto';
import { requestStandings } from '../core/convergence.js';
import { locationIds } from '../engine/cycle.js';
import type { TrashBacklog } from './backlog.js';

/** At most this many cache names get a convergence series per worker: the latest requests win. */
const CONVERGENCE_SERIES_LIMIT = 200;

/**
 * A cache name as a label value. Names are any string; Prometheus escapes
 * quotes and newlines, and a very long name is cut with a digest of the whole
 * so two long names never share a series.
 */
function labelValue(name: string): string {
  if (name.length <= 128) return name;
  return `${name.slice(0, 100)}…${createHash('sha256').update(name).digest('hex').slice(0, 12)}`;
}

export interface Metrics {
  registry: Registry;
  text(): Promise<string>;
  contentType: string;
}

export function createMetrics(agent: Agent, backlog: TrashBacklog): Metrics {
  const registry = new Registry();
  // The event-loop-delay monitor samples every 10 ms by default: a hundred
  // wakeups a second is most of an idle agent's CPU. Once a second is plenty
  // for an agent whose loop is idle between cycles.
  collectDefaultMetrics({ register: registry, eventLoopMonitoringPrecision: 1000 });
  const registers = [registry];

  const cycles = new Counter({
    name: 'purge_cache_agent_cycles_total',
    help: 'Cycles run, by outcome (success: the service answered and every purge was carried out or deferred)',
    labelNames: ['outcome'] as const,
    registers,
  });
  // Both outcomes exist from the start, so rate() and alerts work before the first failure.
  cycles.inc({ outcome: 'success' }, 0);
  cycles.inc({ outcome: 'failure' }, 0);
  const duration = new Histogram({
    name: 'purge_cache_agent_cycle_duration_seconds',
    help: 'How long a cycle took (query, plan, renames, state save)',
    buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300],
    registers,
  });
  const requestsSeen = new Counter({
    name: 'purge_cache_agent_requests_seen_total',
    help: 'Purge requests received: each counted once, however often the service returns it',
    registers,
  });
  const purged = new Counter({
    name: 'purge_cache_agent_caches_purged_total',
    help: 'Cache directories purged (renamed into the trash), by cycles, rechecks and the local API',
    registers,
  });
  const reclaimed = new Counter({ name: 'purge_cache_agent_bytes_reclaimed_total', help: 'Bytes freed by deleting the trash', registers });
  const failures = new Counter({ name: 'purge_cache_agent_purge_failures_total', help: 'Purges that failed (they are retried)', registers });
  const evictions = new Counter({
    name: 'purge_cache_agent_evictions_total',
    help: 'Idle caches evicted for space or age (--min-free, --max-size, --max-unused), by reason',
    labelNames: ['reason'],
    registers,
  });
  const evictedBytes = new Counter({
    name: 'purge_cache_agent_evicted_bytes_total',
    help: 'Bytes of the caches evicted, by reason (reclaimed as the trash is emptied)',
    labelNames: ['reason'],
    registers,
  });

  new Gauge({
    name: 'purge_cache_agent_deferred_purges',
    help: 'Purges decided but not yet carried out: caches in use, and failed purges awaiting a retry',
    registers,
    collect() {
      this.set(agent.state.pending.length);
    },
  });
  new Gauge({
    name: 'purge_cache_agent_unreadable_locations',
    help: 'Cache locations (roots and single caches) that could not be read at the last look: their caches keep every purge request they owe',
    registers,
    collect() {
      this.set(agent.observed.locations.filter((l) => l.instance === null).length);
    },
  });
  new Gauge({
    name: 'purge_cache_agent_last_success_timestamp_seconds',
    help: 'Start of the last cycle in which the service answered (Unix time); 0 before the first',
    registers,
    collect() {
      this.set(agent.lastSuccessAt === null ? 0 : agent.lastSuccessAt / 1000);
    },
  });
  new Gauge({
    name: 'purge_cache_agent_clock_offset_seconds',
    help: "The service's clock minus this worker's, from the last response's Date header (0 until known)",
    registers,
    collect() {
      this.set((agent.observed.clockOffsetMs ?? 0) / 1000);
    },
  });
  new Gauge({
    name: 'purge_cache_agent_trash_bytes',
    help: 'Bytes waiting in the trash for background deletion (a lower bound when the count ran out of time)',
    registers,
    async collect() {
      this.set((await backlog.current()).bytes);
    },
  });
  new Gauge({
    name: 'purge_cache_agent_leases',
    help: 'Live leases on caches',
    registers,
    collect() {
      this.set(liveLeases(agent.state.leases, agent.clock.now()).length);
    },
  });
  // The worker pool and worker id let a fleet's dashboards group and name agents
  // by what they serve, not by scrape target; worker_id is left out when unset.
  // Fleet convergence: one series per cache name for its latest request, valued with its `before`,
  // labelled with where this worker stands on it (summed over workers in the README's PromQL).
  new Gauge({
    name: 'purge_cache_agent_purge_request_before_timestamp_seconds',
    help: "The latest purge request for each cache name that the service still holds (its before, Unix time), by this worker's standing: applied, in-use, failed or unreadable",
    labelNames: ['cache_name', 'state'] as const,
    registers,
    collect() {
      this.reset();
      const standings = requestStandings(agent.state.records, agent.state.pending, locationIds(agent.sources), CONVERGENCE_SERIES_LIMIT);
      for (const s of standings) this.set({ cache_name: labelValue(s.cacheName), state: s.state }, s.beforeMs / 1000);
    },
  });

  const info = new Gauge({
    name: 'purge_cache_agent_info',
    help: 'Always 1; the labels describe the agent',
    labelNames: ['version', 'worker_pool_id', 'worker_id'] as const,
    registers,
  });
  info.set({ version: VERSION, worker_pool_id: workerPoolId(agent.pool), ...(agent.settings.workerId ? { worker_id: agent.settings.workerId } : {}) }, 1);

  agent.onCycle((report, durationMs) => {
    cycles.inc({ outcome: agent.lastCycle?.outcome ?? (report.error === undefined && report.failed.length === 0 ? 'success' : 'failure') });
    duration.observe(durationMs / 1000);
    requestsSeen.inc(report.newRequests ?? 0);
  });
  agent.onOperation({
    finished(_op, report) {
      if (!report.dryRun) purged.inc(report.purged.length);
      failures.inc(report.failed.length);
      if (!report.dryRun) {
        for (const e of report.evicted) {
          evictions.inc({ reason: e.reason });
          evictedBytes.inc({ reason: e.reason }, e.bytes);
        }
      }
    },
  });
  agent.trash.onReport((report) => {
    reclaimed.inc(report.bytes);
  });

  return { registry, text: () => registry.metrics(), contentType: registry.contentType };
}
