/**
 * The local API's routes. Each handler gets decoded path parameters, the
 * query and (for routes that take one) the parsed body; it answers with the
 * shape src/api/contract.ts declares, or throws an HttpAnswerError. See the
 * README's "Local API" section for the contract.
 */
import * as z from '../validation.js';
import { findCaches, listCaches } from '../edges/caches/inventory.js';
import { measureTrees } from '../edges/caches/size.js';
import { DEFAULT_LEASE_TTL_SECONDS, validateOwner, validateTtl } from '../core/leases.js';
import { HttpAnswerError } from '../errors.js';
import type { CachesAnswer, ErrorAnswer, HealthAnswer, LeaseRequest, PurgeAnswer, ReadyAnswer, SyncAnswer, TaskAnswer } from './contract.js';
import { badRequest, notFound, parseBody, parseQuery, readBody, sendJson, sendNoContent, sendText } from './http.js';
import { readiness } from './readiness.js';
import type { Handler, Route, RouteRequest } from './router.js';
import { MAX_WAIT_SECONDS } from './tasks.js';
import { cacheRow, leaseView, statusView } from './views.js';

const flag = z.pipe(
  z.enum(['1', '0', 'true', 'false']),
  z.transform((v) => v === '1' || v === 'true'),
);
const noQuery = z.strictObject({});
const noBody = z.strictObject({});

async function body<S extends z.ZodMiniType>(r: RouteRequest, schema: S): Promise<z.infer<S>> {
  return parseBody(await readBody(r.req), schema);
}

/** The one parameter of a route with one ':' in its pattern. */
function param(r: RouteRequest, index: number): string {
  const value = r.params[index];
  if (value === undefined) throw new Error(`the route has no parameter ${index}: its pattern and its handler disagree`);
  return value;
}

const healthz: Handler = (r) => {
  parseQuery(r.query, noQuery);
  sendJson(r.res, 200, { status: 'ok' } satisfies HealthAnswer);
};

const readyz: Handler = (r) => {
  parseQuery(r.query, noQuery);
  const state = readiness(r.ctx.agent, r.ctx.readyThresholdMs);
  if (state.ready)
    sendJson(r.res, 200, { status: 'ready', lastSuccessAt: state.lastSuccessAt, thresholdSeconds: state.thresholdMs / 1000 } satisfies ReadyAnswer);
  else sendJson(r.res, 503, { code: 'NotReady', message: state.reason } satisfies ErrorAnswer);
};

const metrics: Handler = async (r) => {
  parseQuery(r.query, noQuery);
  sendText(r.res, 200, await r.ctx.metrics.text(), r.ctx.metrics.contentType);
};

const status: Handler = async (r) => {
  parseQuery(r.query, noQuery);
  sendJson(r.res, 200, statusView(r.ctx, await r.ctx.backlog.current()));
};

const listCachesRoute: Handler = async (r) => {
  const { size } = parseQuery(r.query, z.strictObject({ size: z.optional(flag) }));
  const { agent } = r.ctx;
  const inventory = await listCaches(agent.sources);
  const caches = [...inventory.caches].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  const holders = await agent.holdersOf(caches);
  const sizes = size
    ? await measureTrees(
        caches.map((c) => c.path),
        r.ctx.sizeBudgetMs,
      )
    : [];
  const answer: CachesAnswer = {
    caches: caches.map((c, i) => cacheRow(agent, c, holders, sizes[i])),
    ...(inventory.problems.length > 0 ? { problems: inventory.problems } : {}),
  };
  sendJson(r.res, 200, answer);
};

const deleteCache: Handler = async (r) => {
  const name = param(r, 0);
  const { dry_run: dryRun } = parseQuery(r.query, z.strictObject({ dry_run: z.optional(flag) }));
  await body(r, noBody);
  const { agent } = r.ctx;
  const matching = (await findCaches(agent.sources, [name])).caches.filter((c) => c.name === name);
  if (matching.length === 0) throw new HttpAnswerError(404, 'ResourceNotFound', `no cache named ${JSON.stringify(name)} on this worker`);
  if (dryRun) {
    sendJson(r.res, 200, { name, task_id: null, paths: matching.map((c) => c.path).sort() } satisfies PurgeAnswer);
    return;
  }
  const op = agent.purgeNow(name);
  const task = r.ctx.operations.forOperation(op);
  sendJson(r.res, 202, { name, task_id: task.id } satisfies PurgeAnswer);
};

const sync: Handler = async (r) => {
  parseQuery(r.query, noQuery);
  await body(r, noBody);
  const op = r.ctx.agent.syncOperation({ join: true });
  const task = r.ctx.operations.forOperation(op);
  sendJson(r.res, 202, { task_id: task.id, task_state: 'PENDING' } satisfies SyncAnswer);
};

const getTask: Handler = async (r) => {
  const id = param(r, 0);
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
  sendJson(r.res, 200, r.ctx.tasks.view(task, first) satisfies TaskAnswer);
};

const leaseParams = (r: RouteRequest): { cacheName: string; owner: string } => {
  const cacheName = param(r, 0);
  const owner = param(r, 1);
  const problem = validateOwner(owner);
  if (problem) throw badRequest(problem);
  if (cacheName.length > 4096) throw badRequest('a cache name must be at most 4096 characters');
  return { cacheName, owner };
};

const leaseRequest = z.strictObject({ ttlSeconds: z.optional(z.number()) }) satisfies z.ZodMiniType<LeaseRequest>;

const putLease: Handler = async (r) => {
  parseQuery(r.query, noQuery);
  const { cacheName, owner } = leaseParams(r);
  const request = await body(r, leaseRequest);
  const ttlSeconds = request.ttlSeconds ?? DEFAULT_LEASE_TTL_SECONDS;
  const ttlMs = Math.round(ttlSeconds * 1000);
  const problem = validateTtl(ttlMs);
  if (problem) throw new HttpAnswerError(400, 'InputValidationError', `invalid ttlSeconds ${ttlSeconds}: ${problem}`);
  const lease = await r.ctx.agent.acquireLease(cacheName, owner, ttlMs);
  sendJson(r.res, 200, leaseView(lease));
};

const deleteLease: Handler = async (r) => {
  parseQuery(r.query, noQuery);
  const { cacheName, owner } = leaseParams(r);
  await body(r, noBody);
  const released = await r.ctx.agent.releaseLease(cacheName, owner);
  if (!released) throw new HttpAnswerError(404, 'ResourceNotFound', `${JSON.stringify(owner)} holds no live lease on ${JSON.stringify(cacheName)}`);
  sendNoContent(r.res);
};

export const ROUTES: readonly Route[] = [
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
