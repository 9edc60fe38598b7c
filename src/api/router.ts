/**
 * The local API's router: what a route handler is given, and which handler
 * answers a method and path — or the 404 or 405 that says why none does.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Agent } from '../engine/agent.js';
import type { CycleReport } from '../core/report.js';
import { HttpAnswerError } from '../errors.js';
import type { TrashBacklog } from './backlog.js';
import { notFound } from './http.js';
import type { Metrics } from './metrics.js';
import type { OperationTasks } from './operations.js';
import type { TaskStore } from './tasks.js';

export interface ApiContext {
  agent: Agent;
  /** The tasks of syncs and purges, whose results are their reports. */
  tasks: TaskStore<CycleReport>;
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

export type Handler = (r: RouteRequest) => void | Promise<void>;

export type Method = 'GET' | 'PUT' | 'POST' | 'DELETE';

export interface Route {
  /** Path segments; ':' marks a parameter (one whole segment, percent-decoded). */
  pattern: string[];
  methods: Partial<Record<Method, Handler>>;
}

function isMethod(method: string, route: Route): method is keyof Route['methods'] {
  return Object.hasOwn(route.methods, method);
}

/** Find the route for a path: its handler, or a 404, or a 405 with the methods it allows. */
export function match(routes: readonly Route[], method: string, segments: string[]): { handler: Handler; params: string[] } {
  for (const route of routes) {
    if (route.pattern.length !== segments.length) continue;
    const params: string[] = [];
    const fits = route.pattern.every((part, i) => {
      const segment = segments[i] ?? '';
      if (part === ':') {
        params.push(segment);
        return segment !== '';
      }
      return part === segment;
    });
    if (!fits) continue;
    const lookup = method === 'HEAD' ? 'GET' : method;
    const handler = isMethod(lookup, route) ? route.methods[lookup] : undefined;
    if (handler) return { handler, params };
    const allow = Object.keys(route.methods).flatMap((m) => (m === 'GET' ? ['GET', 'HEAD'] : [m]));
    throw new HttpAnswerError(405, 'MethodNotAllowed', `${method} is not allowed here; allowed: ${allow.join(', ')}`, { allow: allow.join(', ') });
  }
  throw notFound(`no such route: ${segments.length === 0 ? '/' : `/${segments.map(encodeURIComponent).join('/')}`}; see the README's "Local API" section`);
}
