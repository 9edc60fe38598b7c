/**
 * The local API's routes. Each handler gets decoded path parameters, the
 * query and (for routes that take one) the parsed body; it answers or throws
 * an ApiError. See the README's "Local API" section for the contract.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import * as z from '../validation.js';
import type { Agent, Operation } from '../engine/agent.js';
import type { CycleReport } from '../engine/cycle.js';
import { findCaches, listCaches } from '../edges/caches/inventory.js';
import { createdAt } from '../core/rule.js';
import { sinceFor } from '../core/cursor.js';
import { recordViews } from '../core/contract.js';
import { locationIds } from '../engine/cycle.js';
import { SETTINGS } from '../config/index.js';
import { liveLeases, validateOwner, validateTtl } from '../core/leases.js';
import { errorMessage } from '../errors.js';
import { VERSION } from '../version.js';
import type { TrashBacklog } from './backlog.js';
import type { Metrics } from './metrics.js';
import { readiness } from './readiness.js';
import { measureTrees } from '../edges/caches/size.js';
import { MAX_WAIT_SECONDS, type Task, type TaskStore } from './tasks.js';
import { ApiError, badRequest, notFound, parseBody, parseQuery, readBody, sendJson, sendNoContent, sendText } from './http.js';

export interface ApiContext {
  agent: Agent;
  tasks: TaskStore;
  operations: OperationTasks;
  metrics: Metrics;
  backlog: TrashBacklog;
  /** /readyz fails when the last successful cycle is older than this. */
  readyThresholdMs: number;
  /** Budget for ?size=1. */
  sizeBudgetMs: number;
  startedAt: number;
  endpoints: { socket: string; tcp?: string; tokenRequired: boolean };
}

export interface RouteRequest {
  req: IncomingMessage;
  res: ServerResponse;
  params: string[];
  query: URLSearchParams;
  ctx: ApiContext;
  /** Aborts when the client goes away. */
  signal: AbortSignal;
}

type Handler = (r: RouteRequest) => Promise<void>;

interface Route {
  /** Path segments; ':' marks a parameter (one whole segment, percent-decoded). */
  pattern: string[];
  methods: Partial<Record<'GET' | 'PUT' | 'POST' | 'DELETE', Handler>>;
}

/** Tasks for the agent's operations: every cycle and purge gets one, so a sync that joins a cycle sees all of its output. */
export class OperationTasks {
  private readonly byOp = new Map<number, Task>();

  constructor(
    agent: Agent,
    private readonly tasks: TaskStore,
  ) {
    agent.onOperation({
      started: (op) => {
        if (op.kind === 'recheck') return;
        const task = this.forOperation(op);
        tasks.markStarted(task);
        tasks.append(task, op.kind === 'cycle' ? 'cycle started' : `purge of ${JSON.stringify(op.name)} started`);
      },
      progress: (op, line) => {
        if (op.kind !== 'recheck') tasks.append(this.forOperation(op), line);
      },
    });
  }

  forOperation(op: Operation): Task {
    let task = this.byOp.get(op.id);
    if (task) return task;
    const created = this.tasks.create(op.kind === 'cycle' ? 'sync' : 'purge', op.name);
    task = created;
    this.byOp.set(op.id, created);
    if (op.started) this.tasks.markStarted(created);
    op.promise.then(
      (report) => {
        this.byOp.delete(op.id);
        const outcome = outcomeOf(op, report);
        this.tasks.append(created, outcome.summary);
        this.tasks.finish(created, { result: report, code: outcome.code, error: outcome.error });
      },
      (err: unknown) => {
        this.byOp.delete(op.id);
        this.tasks.finish(created, { result: null, code: 1, error: errorMessage(err) });
      },
    );
    return task;
  }
}

function outcomeOf(op: Operation, report: CycleReport): { code: number; error: string; summary: string } {
  const verb = report.dryRun ? 'would purge' : 'purged';
  const counts = `${verb} ${report.purged.length}, deferred ${report.deferred.length}, failed ${report.failed.length}`;
  if (report.error !== undefined)
    return { code: 1, error: `the purge-cache service could not be queried: ${report.error}`, summary: `cycle failed: ${report.error}` };
  if (report.failed.length > 0) {
    const error = `${report.failed.length} purge(s) failed: ${report.failed.map((f) => `${f.path}: ${f.error}`).join('; ')}`;
    return { code: 1, error, summary: `${op.kind === 'cycle' ? 'cycle' : 'purge'} finished with failures: ${counts}` };
  }
  if (op.kind === 'cycle') return { code: 0, error: '', summary: `cycle finished: ${report.requests} request(s), ${counts}` };
  return { code: 0, error: '', summary: `purge finished: ${counts}` };
}

// ---------------------------------------------------------------------------

const flag = z.pipe(
  z.enum(['1', '0', 'true', 'false']),
  z.transform((v) => v === '1' || v === 'true'),
);
const noQuery = z.strictObject({});
const noBody = z.strictObject({});

const iso = (ms: number | null | undefined): string | null => (ms === null || ms === undefined ? null : new Date(ms).toISOString());

async function body<S extends z.ZodMiniType>(r: RouteRequest, schema: S): Promise<z.infer<S>> {
  return parseBody(await readBody(r.req), schema);
}

const healthz: Handler = async (r) => {
  parseQuery(r.query, noQuery);
  sendJson(r.res, 200, { status: 'ok' });
};

const readyz: Handler = async (r) => {
  parseQuery(r.query, noQuery);
  const state = readiness(r.ctx.agent, r.ctx.readyThresholdMs);
  if (state.ready) sendJson(r.res, 200, { status: 'ready', lastSuccessAt: state.lastSuccessAt, thresholdSeconds: state.thresholdMs / 1000 });
  else sendJson(r.res, 503, { code: 'NotReady', message: state.reason });
};

const metrics: Handler = async (r) => {
  parseQuery(r.query, noQuery);
  sendText(r.res, 200, await r.ctx.metrics.text(), r.ctx.metrics.contentType);
};

const status: Handler = async (r) => {
  parseQuery(r.query, noQuery);
  const { agent, endpoints } = r.ctx;
  const now = agent.clock.now();
  const state = agent.state;
  const ready = readiness(agent, r.ctx.readyThresholdMs);
  const backlog = await r.ctx.backlog.current();
  const running = agent.running;
  sendJson(r.res, 200, {
    version: VERSION,
    pid: process.pid,
    startedAt: iso(r.ctx.startedAt),
    uptimeSeconds: Math.round((now - r.ctx.startedAt) / 1000),
    api: endpoints,
    config: configSummary(agent),
    ready: { ready: ready.ready, reason: ready.reason, thresholdSeconds: ready.thresholdMs / 1000 },
    running: running ? { kind: running.kind, ...(running.name !== undefined ? { name: running.name } : {}) } : null,
    lastCycle: agent.lastCycle,
    lastEviction: agent.lastEviction,
    lastSuccessAt: iso(agent.lastSuccessAt),
    cursor: iso(state.cursor),
    nextSince: iso(sinceFor(state.cursor, agent.settings.skewMargin, agent.clock.now())),
    pending: state.pending.map((p) => ({
      name: p.name,
      path: p.path,
      reason: p.reason,
      before: iso(p.beforeMs),
      since: iso(p.since),
      ...(p.lastError !== undefined ? { lastError: p.lastError } : {}),
    })),
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
    tasks: r.ctx.tasks.size,
  });
};

/** The resolved settings minus every secret (SETTINGS marks them), plus the client id (not a secret) when there are credentials. */
function configSummary(agent: Agent): Record<string, unknown> {
  const settings = agent.settings as unknown as Record<string, unknown>;
  const out: Record<string, unknown> = {};
  for (const spec of SETTINGS) {
    if (spec.secret || settings[spec.key] === undefined) continue;
    out[spec.key] = settings[spec.key];
  }
  out.credentials = agent.settings.credentials
    ? { clientId: agent.settings.credentials.clientId, temporary: agent.settings.credentials.certificate !== undefined }
    : 'anonymous';
  out.durationsIn = 'ms';
  return out;
}

const listCachesRoute: Handler = async (r) => {
  const { size } = parseQuery(r.query, z.strictObject({ size: z.optional(flag) }));
  const { agent } = r.ctx;
  const inventory = await listCaches(agent.sources);
  const caches = [...inventory.caches].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  const holders = await agent.holdersOf(caches);
  const state = agent.state;
  const rows: Record<string, unknown>[] = caches.map((c) => {
    const pending = state.pending.find((p) => p.path === c.path && p.key === c.key);
    return {
      name: c.name,
      path: c.path,
      created: iso(createdAt(c, state.firstSeen)),
      inUse: holders.has(c.path),
      holders: holders.get(c.path) ?? [],
      pendingPurge: pending
        ? {
            reason: pending.reason,
            before: iso(pending.beforeMs),
            since: iso(pending.since),
            ...(pending.lastError !== undefined ? { lastError: pending.lastError } : {}),
          }
        : null,
    };
  });
  if (size) {
    const sizes = await measureTrees(
      caches.map((c) => c.path),
      r.ctx.sizeBudgetMs,
    );
    sizes.forEach((s, i) => {
      rows[i]!.sizeBytes = s.complete ? s.bytes : null;
      if (!s.complete) rows[i]!.sizePartial = true;
    });
  }
  sendJson(r.res, 200, { caches: rows, ...(inventory.problems.length > 0 ? { problems: inventory.problems } : {}) });
};

const deleteCache: Handler = async (r) => {
  const [name] = r.params as [string];
  const { dry_run: dryRun } = parseQuery(r.query, z.strictObject({ dry_run: z.optional(flag) }));
  await body(r, noBody);
  const { agent } = r.ctx;
  const matching = (await findCaches(agent.sources, [name])).caches.filter((c) => c.name === name);
  if (matching.length === 0) throw new ApiError(404, 'ResourceNotFound', `no cache named ${JSON.stringify(name)} on this worker`);
  if (dryRun) {
    sendJson(r.res, 200, { name, task_id: null, paths: matching.map((c) => c.path).sort() });
    return;
  }
  const op = agent.purgeNow(name);
  const task = r.ctx.operations.forOperation(op);
  sendJson(r.res, 202, { name, task_id: task.id });
};

const sync: Handler = async (r) => {
  parseQuery(r.query, noQuery);
  await body(r, noBody);
  const op = r.ctx.agent.syncOperation({ join: true });
  const task = r.ctx.operations.forOperation(op);
  sendJson(r.res, 202, { task_id: task.id, task_state: 'PENDING' });
};

const getTask: Handler = async (r) => {
  const [id] = r.params as [string];
  const query = parseQuery(
    r.query,
    z.strictObject({
      first: z.optional(z.pipe(z.string().check(z.regex(/^\d{1,9}$/, 'expected a whole number, 0 or more')), z.transform(Number))),
      wait: z.optional(z.pipe(z.string().check(z.regex(/^\d{1,9}(\.\d+)?$/, 'expected a number of seconds, 0 or more')), z.transform(Number))),
    }),
  );
  const task = r.ctx.tasks.get(id);
  if (!task) throw notFound(`no task ${JSON.stringify(id)} (unknown, or finished more than an hour ago)`);
  const first = query.first ?? 0;
  const waitMs = Math.min(query.wait ?? 0, MAX_WAIT_SECONDS) * 1000;
  await r.ctx.tasks.wait(task, first, waitMs, r.signal);
  if (r.signal.aborted) return;
  sendJson(r.res, 200, r.ctx.tasks.view(task, first));
};

const leaseParams = (r: RouteRequest): { cacheName: string; owner: string } => {
  const [cacheName, owner] = r.params as [string, string];
  const problem = validateOwner(owner);
  if (problem) throw badRequest(problem);
  if (cacheName.length > 4096) throw badRequest('a cache name must be at most 4096 characters');
  return { cacheName, owner };
};

const leaseView = (l: { cacheName: string; owner: string; expiresAt: number; ttlSeconds: number }) => ({
  cacheName: l.cacheName,
  owner: l.owner,
  expiresAt: new Date(l.expiresAt).toISOString(),
  ttlSeconds: l.ttlSeconds,
});

export const DEFAULT_LEASE_TTL_SECONDS = 600;

const putLease: Handler = async (r) => {
  parseQuery(r.query, noQuery);
  const { cacheName, owner } = leaseParams(r);
  const { ttlSeconds = DEFAULT_LEASE_TTL_SECONDS } = await body(r, z.strictObject({ ttlSeconds: z.optional(z.number()) }));
  const ttlMs = Math.round(ttlSeconds * 1000);
  const problem = validateTtl(ttlMs);
  if (problem) throw new ApiError(400, 'InputValidationError', `invalid ttlSeconds ${ttlSeconds}: ${problem}`);
  const lease = await r.ctx.agent.acquireLease(cacheName, owner, ttlMs);
  sendJson(r.res, 200, leaseView(lease));
};

const deleteLease: Handler = async (r) => {
  parseQuery(r.query, noQuery);
  const { cacheName, owner } = leaseParams(r);
  await body(r, noBody);
  const released = await r.ctx.agent.releaseLease(cacheName, owner);
  if (!released) throw new ApiError(404, 'ResourceNotFound', `${JSON.stringify(owner)} holds no live lease on ${JSON.stringify(cacheName)}`);
  sendNoContent(r.res);
};

export const ROUTES: Route[] = [
  { pattern: ['healthz'], methods: { GET: healthz } },
  { pattern: ['readyz'], methods: { GET: readyz } },
  { pattern: ['metrics'], methods: { GET: metrics } },
  { pattern: ['v1', 'status'], methods: { GET: status } },
  { pattern: ['v1', 'caches'], methods: { GET: listCachesRoute } },
  { pattern: ['v1', 'caches', ':'], methods: { DELETE: deleteCache } },
  { pattern: ['v1', 'caches', ':', 'leases', ':'], methods: { PUT: putLease, DELETE: deleteLease } },
  { pattern: ['v1', 'sync'], methods: { POST: sync } },
  { pattern: ['v1', 'tasks', ':'], methods: { GET: getTask } },
];

/** Find the route for a path: its handler, or a 404, or a 405 with the methods it allows. */
export function match(method: string, segments: string[]): { handler: Handler; params: string[] } {
  for (const route of ROUTES) {
    if (route.pattern.length !== segments.length) continue;
    const params: string[] = [];
    const fits = route.pattern.every((part, i) => {
      const segment = segments[i]!;
      if (part === ':') {
        params.push(segment);
        return segment !== '';
      }
      return part === segment;
    });
    if (!fits) continue;
    const lookup = method === 'HEAD' ? 'GET' : method;
    const handler = route.methods[lookup as keyof Route['methods']];
    if (handler) return { handler, params };
    const allow = Object.keys(route.methods).flatMap((m) => (m === 'GET' ? ['GET', 'HEAD'] : [m]));
    throw new ApiError(405, 'MethodNotAllowed', `${method} is not allowed here; allowed: ${allow.join(', ')}`, { allow: allow.join(', ') });
  }
  throw notFound(`no such route: ${segments.length === 0 ? '/' : `/${segments.map(encodeURIComponent).join('/')}`}; see the README's "Local API" section`);
}
