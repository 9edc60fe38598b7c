/**
 * A client of the local API, for the CLI commands (status, sync, purge,
 * lease) and for exec: it finds the running agent — through its unix socket,
 * or over TCP with --api and the token — and speaks the routes.
 */
import { Agent as HttpAgent, request as httpRequest, type IncomingMessage } from 'node:http';
import { lstat } from 'node:fs/promises';
import { createRequire } from 'node:module';
import type { Settings } from '../config/index.js';
import { errnoCode, errorMessage, ApiRequestError, type Attempt, NoAgentError } from '../errors.js';
import { clientSocketCandidates, loadApiToken } from './config.js';
import type { CachesAnswer, LeaseAnswer, PurgeAnswer, RouteName, Routes, StatusAnswer, SyncAnswer, TaskAnswer } from './contract.js';

// The engine's commands (exec, leases) reach the agent through this client only: they take the contract's types from here.
export type * from './contract.js';

export type Endpoint = { kind: 'socket'; socketPath: string } | { kind: 'tcp'; url: string; token?: string };

/** Path segments are percent-encoded, dots included, so `.` and `..` survive every URL parser on the way. */
export function encodeSegment(value: string): string {
  return encodeURIComponent(value).replace(/\./g, '%2E');
}

/** Long polls last at most 60 s on the agent's side; the client waits a little longer. */
const TIMEOUT_MS = 90_000;
const FOLLOW_WAIT_SECONDS = 30;
const CONNECT_TIMEOUT_MS = 5_000;

async function readText(res: IncomingMessage): Promise<string> {
  res.setEncoding('utf8');
  let text = '';
  for await (const chunk of res) text += chunk as string;
  return text;
}

/** node:https (with TLS and crypto) only for an https endpoint: the local API is a socket or plain HTTP, and start-up pays for each module. */
function https(): typeof import('node:https') {
  return createRequire(import.meta.url)('node:https') as typeof import('node:https');
}

export class ApiClient {
  // node:http rather than undici: its parser is native, so `exec` and the other
  // short commands don't compile undici's WebAssembly one (about 20 MB) to ask a question.
  private readonly agent: HttpAgent;
  private readonly request: typeof httpRequest;
  private readonly target: { socketPath: string; servername: string } | { host: string; port: number };

  constructor(readonly endpoint: Endpoint) {
    const url = endpoint.kind === 'tcp' ? new URL(endpoint.url) : null;
    const secure = url?.protocol === 'https:';
    this.agent = secure ? new (https().Agent)({ keepAlive: true }) : new HttpAgent({ keepAlive: true });
    this.request = secure ? https().request : httpRequest;
    this.target = url
      ? { host: url.hostname.replace(/^\[(.*)\]$/, '$1'), port: Number(url.port || (secure ? 443 : 80)) }
      : // A server name given up front spares Node's agent from testing the
        // default host "localhost" against its IPv6 pattern, whose first use
        // compiles a regular expression for longer than exec's whole lease.
        { socketPath: (endpoint as { socketPath: string }).socketPath, servername: 'localhost' };
  }

  /** Where this client talks to, for messages. */
  get where(): string {
    return this.endpoint.kind === 'socket' ? this.endpoint.socketPath : this.endpoint.url;
  }

  /** One request. Answers of 400 and above throw ApiRequestError; network failures throw as node:http reports them. */
  private async call(method: string, path: string, body?: unknown): Promise<{ status: number; body: unknown }> {
    const headers: Record<string, string> = { accept: 'application/json' };
    if (body !== undefined) headers['content-type'] = 'application/json';
    if (this.endpoint.kind === 'tcp' && this.endpoint.token) headers.authorization = `Bearer ${this.endpoint.token}`;
    // A path, not a URL: it is sent exactly as encoded.
    const res = await this.send(method, path, headers, body === undefined ? undefined : JSON.stringify(body));
    const status = res.statusCode ?? 0;
    const text = await readText(res);
    let parsed: unknown = null;
    if (text !== '') {
      try {
        parsed = JSON.parse(text);
      } catch {
        parsed = text;
      }
    }
    if (status >= 400) {
      const err = (parsed ?? {}) as { code?: string; message?: string };
      const apiCode = typeof err.code === 'string' ? err.code : `HTTP${status}`;
      let message = typeof err.message === 'string' ? err.message : `HTTP ${status}`;
      if (status === 401) message += ' (the token comes from --api-token-file or PURGE_CACHE_AGENT_API_TOKEN)';
      throw new ApiRequestError(`the agent at ${this.where} refused ${method} ${decodeForHumans(path)}: ${message}`, status, apiCode);
    }
    return { status, body: parsed };
  }

  /**
   * A route's answer, in the shape the contract declares: the agent's routes
   * are built against the same declarations, so their JSON is taken as it.
   */
  private async ask<K extends RouteName>(route: K, path: string, body?: Routes[K]['request']): Promise<Routes[K]['answer']> {
    const method = route.slice(0, route.indexOf(' '));
    return (await this.call(method, path, body)).body as Routes[K]['answer'];
  }

  /** One exchange; connecting is bounded by CONNECT_TIMEOUT_MS, then each silence by TIMEOUT_MS. */
  private send(method: string, path: string, headers: Record<string, string>, body: string | undefined): Promise<IncomingMessage> {
    if (body !== undefined) headers['content-length'] = String(Buffer.byteLength(body));
    return new Promise((resolve, reject) => {
      const req = this.request({ ...this.target, agent: this.agent, method, path, headers, timeout: TIMEOUT_MS });
      const connecting = setTimeout(
        () => req.destroy(Object.assign(new Error(`connecting took longer than ${CONNECT_TIMEOUT_MS} ms`), { code: 'ETIMEDOUT' })),
        CONNECT_TIMEOUT_MS,
      );
      req.once('socket', (socket) => {
        if (!socket.connecting) clearTimeout(connecting);
        else
          socket.once('connect', () => {
            clearTimeout(connecting);
          });
      });
      req.once('timeout', () => req.destroy(Object.assign(new Error(`no answer within ${TIMEOUT_MS} ms`), { code: 'ETIMEDOUT' })));
      req.once('response', (res) => {
        clearTimeout(connecting);
        resolve(res);
      });
      req.once('error', (err) => {
        clearTimeout(connecting);
        reject(err);
      });
      req.end(body);
    });
  }

  async healthz(): Promise<void> {
    await this.ask('GET /healthz', '/healthz');
  }

  status(): Promise<StatusAnswer> {
    return this.ask('GET /v1/status', '/v1/status');
  }

  caches(): Promise<CachesAnswer> {
    return this.ask('GET /v1/caches', '/v1/caches');
  }

  sync(): Promise<SyncAnswer> {
    return this.ask('POST /v1/sync', '/v1/sync');
  }

  purge(name: string, opts: { dryRun?: boolean } = {}): Promise<PurgeAnswer> {
    const query = opts.dryRun ? '?dry_run=1' : '';
    return this.ask('DELETE /v1/caches/{name}', `/v1/caches/${encodeSegment(name)}${query}`);
  }

  task(id: string, first = 0, waitSeconds = 0): Promise<TaskAnswer> {
    return this.ask('GET /v1/tasks/{id}', `/v1/tasks/${encodeSegment(id)}?first=${first}&wait=${waitSeconds}`);
  }

  /** Poll a task until it finishes, handing each new output line to `onLine` as it appears. */
  async follow(id: string, onLine: (line: string) => void = () => {}): Promise<TaskAnswer> {
    let first = 0;
    for (;;) {
      const view = await this.task(id, first, FOLLOW_WAIT_SECONDS);
      for (const line of view.output) onLine(line);
      first = view.last;
      if (view.finished) return view;
    }
  }

  acquireLease(cacheName: string, owner: string, ttlSeconds: number): Promise<LeaseAnswer> {
    return this.ask('PUT /v1/caches/{name}/leases/{owner}', `/v1/caches/${encodeSegment(cacheName)}/leases/${encodeSegment(owner)}`, { ttlSeconds });
  }

  /** False when the owner held no live lease on the cache. */
  async releaseLease(cacheName: string, owner: string): Promise<boolean> {
    try {
      await this.ask('DELETE /v1/caches/{name}/leases/{owner}', `/v1/caches/${encodeSegment(cacheName)}/leases/${encodeSegment(owner)}`);
      return true;
    } catch (err) {
      if (err instanceof ApiRequestError && err.status === 404) return false;
      throw err;
    }
  }

  /** Close the kept-alive connections, at once; it returns a promise because every caller awaits it like the requests. */
  close(): Promise<void> {
    this.agent.destroy();
    return Promise.resolve();
  }
}

function decodeForHumans(path: string): string {
  try {
    return decodeURIComponent(path);
  } catch {
    return path;
  }
}

/**
 * Find the running agent: --api (TCP, with the token) when set, else the
 * first socket that answers among those the settings point at. Throws
 * NoAgentError saying where it looked and why each place failed.
 */
export async function connectToAgent(settings: Settings, env: NodeJS.ProcessEnv = process.env): Promise<ApiClient> {
  const endpoints: Endpoint[] = [];
  if (settings.api) {
    const token = await loadApiToken(settings);
    endpoints.push({ kind: 'tcp', url: settings.api, ...(token ? { token } : {}) });
  } else {
    for (const socketPath of clientSocketCandidates(settings, env)) endpoints.push({ kind: 'socket', socketPath });
  }
  return connectToFirst(endpoints);
}

async function connectToFirst(endpoints: readonly Endpoint[]): Promise<ApiClient> {
  const attempts: Attempt[] = [];
  for (const endpoint of endpoints) {
    // No socket file, no agent: say so without building a request (the
    // commands run before every task ask this on hosts where no agent runs).
    if (endpoint.kind === 'socket') {
      const missing = await lstat(endpoint.socketPath).then(
        () => null,
        (err: unknown) => (errnoCode(err) === 'ENOENT' ? err : null),
      );
      if (missing !== null) {
        attempts.push(describeFailure(endpoint.socketPath, missing));
        continue;
      }
    }
    const client = new ApiClient(endpoint);
    try {
      await client.healthz();
      return client;
    } catch (err) {
      await client.close().catch(() => {});
      attempts.push(describeFailure(client.where, err));
    }
  }
  throw new NoAgentError(attempts);
}

/** A running agent's client, or no client and the NoAgentError that says where no agent was found. */
export type AgentPresence = { client: ApiClient } | { client: null; looked: NoAgentError };

/**
 * Is an agent running? Its client when one answers; no client when none runs
 * at all — every place looked at has no socket, or nothing listening on it.
 * Anything else throws: an agent that is there but cannot be reached (a
 * refused permission, a wrong token), and --api naming an address where
 * nothing answers, since the operator said an agent runs there. `socketPath`
 * asks about that one socket only.
 */
export async function findAgent(settings: Settings, opts: { socketPath?: string; env?: NodeJS.ProcessEnv } = {}): Promise<AgentPresence> {
  const viaApi = opts.socketPath === undefined && Boolean(settings.api);
  try {
    const client =
      opts.socketPath === undefined ? await connectToAgent(settings, opts.env) : await connectToFirst([{ kind: 'socket', socketPath: opts.socketPath }]);
    return { client };
  } catch (err) {
    if (err instanceof NoAgentError && !viaApi && err.attempts.every((a) => a.absent)) return { client: null, looked: err };
    throw err;
  }
}

function describeFailure(where: string, err: unknown): Attempt {
  const code = errnoCode(err) ?? (err instanceof Error ? errnoCode(err.cause) : undefined);
  switch (code) {
    case 'ENOENT':
      return { where, reason: 'no socket there', absent: true };
    case 'ECONNREFUSED':
      return { where, reason: 'nothing is listening', absent: true };
    case 'EACCES':
    case 'EPERM':
      return { where, reason: "permission denied: run as the agent's user or a member of its group", absent: false };
    default:
      return { where, reason: errorMessage(err), absent: false };
  }
}
