/**
 * What the routes show: the agent's state projected into the contract's
 * shapes (src/api/contract.ts) — its status, its caches, a lease. Times are
 * ISO strings; secrets never appear.
 */
import type { Agent } from '../engine/agent.js';
import { locationIds } from '../engine/cycle.js';
import { SETTINGS, type Settings } from '../config/index.js';
import { recordViews } from '../core/contract.js';
import { sinceFor } from '../core/cursor.js';
import type { PendingPurge } from '../core/judge.js';
import { liveLeases, type Lease } from '../core/leases.js';
import { createdAt } from '../core/rule.js';
import type { CacheDir } from '../edges/caches/inventory.js';
import type { TreeSize } from '../edges/caches/size.js';
import { VERSION } from '../version.js';
import type { Backlog } from './backlog.js';
import type { CacheRow, ConfigSummary, LeaseAnswer, PendingView, StatusAnswer } from './contract.js';
import { readiness } from './readiness.js';
import type { ApiContext } from './router.js';

const iso = (ms: number | null | undefined): string | null => (ms === null || ms === undefined ? null : new Date(ms).toISOString());

export const leaseView = (l: Pick<Lease, 'cacheName' | 'owner' | 'expiresAt' | 'ttlSeconds'>): LeaseAnswer => ({
  cacheName: l.cacheName,
  owner: l.owner,
  expiresAt: new Date(l.expiresAt).toISOString(),
  ttlSeconds: l.ttlSeconds,
});

function pendingView(p: PendingPurge): PendingView {
  return {
    reason: p.reason,
    before: new Date(p.beforeMs).toISOString(),
    since: new Date(p.since).toISOString(),
    ...(p.lastError !== undefined ? { lastError: p.lastError } : {}),
  };
}

/** GET /v1/status's answer, with the trash backlog measured by the caller. */
export function statusView(ctx: ApiContext, backlog: Backlog): StatusAnswer {
  const { agent, endpoints } = ctx;
  const now = agent.clock.now();
  const state = agent.state;
  const ready = readiness(agent, ctx.readyThresholdMs);
  const running = agent.running;
  return {
    version: VERSION,
    pid: process.pid,
    startedAt: new Date(ctx.startedAt).toISOString(),
    uptimeSeconds: Math.round((now - ctx.startedAt) / 1000),
    api: endpoints,
    config: configSummary(agent.settings),
    ready: { ready: ready.ready, reason: ready.reason, thresholdSeconds: ready.thresholdMs / 1000 },
    running: running ? { kind: running.kind, ...(running.name !== undefined ? { name: running.name } : {}) } : null,
    lastCycle: agent.lastCycle,
    lastEviction: agent.lastEviction,
    lastSuccessAt: iso(agent.lastSuccessAt),
    cursor: iso(state.cursor),
    nextSince: iso(sinceFor(state.cursor, agent.settings.skewMargin, agent.clock.now())),
    pending: state.pending.map((p) => ({ name: p.name, path: p.path, ...pendingView(p) })),
    leases: liveLeases(state.leases, now).map(leaseView),
    // The purge requests on record: when each arrived, whether every location has applied it, what it purged, what waits.
    requests: recordViews(state, locationIds(agent.sources)),
    locations: agent.observed.locations.map((l) => ({ location: l.id, readable: l.instance !== null, ...(l.error !== undefined ? { error: l.error } : {}) })),
    clockOffsetMs: agent.observed.clockOffsetMs,
    trash: {
      backlogBytes: backlog.bytes,
      backlogFiles: backlog.files,
      backlogPartial: backlog.partial,
      measuredAt: backlog.measuredAt,
      deletedSinceStart: { ...agent.trash.totals },
    },
    tasks: ctx.tasks.size,
  };
}

/** The resolved settings minus every secret (SETTINGS marks them), plus the client id (not a secret) when there are credentials. */
function configSummary(settings: Settings): ConfigSummary {
  const shown: Partial<Record<keyof Settings, unknown>> = {};
  for (const spec of SETTINGS) {
    if (spec.secret || settings[spec.key] === undefined) continue;
    shown[spec.key] = settings[spec.key];
  }
  const credentials: ConfigSummary['credentials'] = settings.credentials
    ? { clientId: settings.credentials.clientId, temporary: settings.credentials.certificate !== undefined }
    : 'anonymous';
  // Only the settings that are not secret were copied, each with its own value: the shape ConfigSummary declares.
  return { ...(shown as Omit<ConfigSummary, 'credentials' | 'durationsIn'>), credentials, durationsIn: 'ms' };
}

/** One cache of GET /v1/caches; `size` only when ?size=1 asked for it. */
export function cacheRow(agent: Agent, c: CacheDir, holders: Map<string, CacheRow['holders']>, size: TreeSize | undefined): CacheRow {
  const state = agent.state;
  const pending = state.pending.find((p) => p.path === c.path && p.key === c.key);
  return {
    name: c.name,
    path: c.path,
    created: iso(createdAt(c, state.firstSeen)),
    inUse: holders.has(c.path),
    holders: holders.get(c.path) ?? [],
    pendingPurge: pending ? pendingView(pending) : null,
    ...(size ? { sizeBytes: size.complete ? size.bytes : null, ...(size.complete ? {} : { sizePartial: true as const }) } : {}),
  };
}
