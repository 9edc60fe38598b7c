/**
 * The purge-cache API of `serve`. Each handler runs the checks in
 * Taskcluster's order: authenticate (401), validate (400), authorize (403),
 * then act. The pool id is accepted as `<provisionerId>/<workerType>` with a
 * literal slash (old route) and as one `%2F`-encoded segment (what the
 * official clients send for the new `/purge-cache/<workerPoolId>` route).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import * as z from 'zod';
import { purgeCacheScope, purgeRequestsScope, workerPoolId, type WorkerPool } from '../core/model.js';
import { ANONYMOUS, authenticate, type Clients, type Principal } from './auth.js';
import { badRequest, notFound, readBody, sendJson, sendNoContent } from './http.js';
import { satisfies } from './scopes.js';
import type { EntryKey, RequestStore } from './store.js';
import { HttpAnswerError } from '../errors.js';

export const API_PREFIX = '/api/purge-cache/v1';
export const ALL_PURGE_REQUESTS_SCOPE = 'purge-cache:all-purge-requests';
const ID_PART = /^[A-Za-z0-9_-]{1,38}$/;
const MAX_PAGE = 1000;
const MAX_BODY_BYTES = 1024 * 1024;

export interface RouteContext {
  store: RequestStore;
  /** Undefined: open access, no authentication at all. */
  clients: Clients | undefined;
  now: () => number;
  uptimeSeconds: () => number;
}

type Handler = (req: IncomingMessage, res: ServerResponse, query: URLSearchParams, ctx: RouteContext) => Promise<void>;

/** Finds the handler for a request; throws 404 (or 400 for a malformed pool id). */
export function route(method: string, path: string): Handler {
  if (!path.startsWith(`${API_PREFIX}/`)) throw notFound();
  const segments = path.slice(API_PREFIX.length + 1).split('/');
  const [first, ...rest] = segments;
  if (method === 'GET' && rest.length === 0) {
    if (first === 'ping') return ping;
    if (first === '__lbheartbeat__' || first === '__heartbeat__')
      return (_req, res) => {
        sendJson(res, 200, {});
        return Promise.resolve();
      };
    if (first === '__version__')
      return (_req, res) => {
        sendJson(res, 200, { source: 'purge-cache-agent serve', version: '1' });
        return Promise.resolve();
      };
  }
  if (first !== 'purge-cache' || rest.length === 0 || rest.length > 2) throw notFound();
  if (rest.length === 1 && rest[0] === 'list') {
    if (method === 'GET') return allPurgeRequests;
    throw notFound();
  }
  if (method !== 'GET' && method !== 'POST') throw notFound();
  const pool = parsePool(rest);
  return method === 'GET' ? (req, res, query, ctx) => purgeRequests(req, res, query, ctx, pool) : (req, res, _query, ctx) => purgeCache(req, res, ctx, pool);
}

function parsePool(rest: string[]): WorkerPool {
  let parts: string[];
  try {
    // One segment holds both parts, percent-encoded slash and all.
    parts = rest.length === 2 ? rest.map(decodeURIComponent) : decodeURIComponent(rest.join('/')).split('/');
  } catch {
    throw badRequest('the worker pool id in the path is not valid percent-encoding');
  }
  if (parts.length !== 2) throw badRequest('workerPoolId must be <provisionerId>/<workerType>');
  const [provisionerId, workerType] = parts as [string, string];
  for (const [name, value] of [
    ['provisionerId', provisionerId],
    ['workerType', workerType],
  ] as const) {
    if (!ID_PART.test(value)) throw badRequest(`${name} must match ${ID_PART.source}`);
  }
  return { provisionerId, workerType };
}

async function principal(req: IncomingMessage, ctx: RouteContext): Promise<Principal> {
  if (ctx.clients === undefined) return { clientId: null, scopes: ['*'] };
  return authenticate(req, ctx.clients, ctx.now());
}

function authorize(who: Principal, scope: string): void {
  if (satisfies(who.scopes, scope)) return;
  const name = who === ANONYMOUS ? 'anonymous (no credentials given)' : who.clientId;
  throw new HttpAnswerError(
    403,
    'InsufficientScopes',
    `Client ID ${name} does not have sufficient scopes and is missing the following scope:\n\n\`\`\`\n${scope}\n\`\`\``,
  );
}

const ping: Handler = (_req, res, _query, ctx) => {
  sendJson(res, 200, { alive: true, uptime: ctx.uptimeSeconds() });
  return Promise.resolve();
};

async function purgeRequests(req: IncomingMessage, res: ServerResponse, query: URLSearchParams, ctx: RouteContext, pool: WorkerPool) {
  const who = await principal(req, ctx);
  const sinceText = query.get('since');
  let since: number | undefined;
  if (sinceText !== null) {
    since = Date.parse(sinceText);
    if (!Number.isFinite(since)) throw badRequest('since must be a date-time, ISO 8601 (e.g. 2024-05-01T12:00:00.000Z)');
  }
  authorize(who, purgeRequestsScope(workerPoolId(pool)));
  sendJson(res, 200, { requests: ctx.store.forPool(pool, since) });
}

const purgeCacheBody = z.strictObject({ cacheName: z.string() });

async function purgeCache(req: IncomingMessage, res: ServerResponse, ctx: RouteContext, pool: WorkerPool) {
  const who = await principal(req, ctx);
  const text = await readBody(req, MAX_BODY_BYTES);
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    throw new HttpAnswerError(400, 'MalformedPayload', 'the request body is not valid JSON');
  }
  const parsed = purgeCacheBody.safeParse(body);
  if (!parsed.success) {
    const issues = parsed.error.issues.map((i) => `${i.path.join('.') || 'body'}: ${i.message}`).join('; ');
    throw new HttpAnswerError(400, 'InputValidationError', `the body must be {"cacheName": "<string>"} and nothing else: ${issues}`);
  }
  const { cacheName } = parsed.data;
  authorize(who, purgeCacheScope(workerPoolId(pool), cacheName));
  await ctx.store.purge(pool, cacheName);
  sendNoContent(res);
}

const allPurgeRequests: Handler = async (req, res, query, ctx) => {
  const who = await principal(req, ctx);
  const limitText = query.get('limit');
  let limit = MAX_PAGE;
  if (limitText !== null) {
    if (!/^[0-9]{1,9}$/.test(limitText)) throw badRequest('limit must be a whole number');
    // As upstream: 0 means the default, and anything above the maximum is capped.
    limit = Math.min(Number(limitText) || MAX_PAGE, MAX_PAGE);
  }
  const tokenText = query.get('continuationToken');
  const after = tokenText ? decodeToken(tokenText) : undefined;
  authorize(who, ALL_PURGE_REQUESTS_SCOPE);
  const { requests, next } = ctx.store.page(after, limit);
  sendJson(res, 200, next ? { requests, continuationToken: encodeToken(next) } : { requests });
};

/** Opaque to clients: the key of the last request of the previous page. */
function encodeToken(key: EntryKey): string {
  return Buffer.from(JSON.stringify(key)).toString('base64url');
}

function decodeToken(token: string): EntryKey {
  try {
    const key: unknown = JSON.parse(Buffer.from(token, 'base64url').toString('utf8'));
    if (Array.isArray(key) && key.length === 3 && key.every((k) => typeof k === 'string')) return key as EntryKey;
  } catch {
    // fall through
  }
  throw badRequest('continuationToken is not one this service issued');
}
