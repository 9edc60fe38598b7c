/**
 * A client of the local API, for the CLI commands (status, sync, purge,
 * lease) and for exec: it finds the running agent — through its unix socket,
 * or over TCP with --api and the token — and speaks the routes.
 */
import { Agent as Dispatcher } from 'undici';
import type { Settings } from '../config/index.js';
import { AgentError, AgentUnreachableError, errnoCode, errorMessage } from '../errors.js';
import { clientSocketCandidates, loadApiToken } from './config.js';
import type { TaskView } from './tasks.js';

export type Endpoint = { kind: 'socket'; socketPath: string } | { kind: 'tcp'; url: string; token?: string };

/** The agent answered with an error (`code` and `message` from its body). */
export class ApiRequestError extends AgentError {
  readonly code = 'PCA_API_REQUEST';
  constructor(
    message: string,
    readonly status: number,
    readonly apiCode: string,
  ) {
    super(message);
  }
}

/** Why a place did not answer: no socket, nothing listening, or something else (permissions, ...). */
export interface Attempt {
  where: string;
  reason: string;
  /** True when nothing can be running there (no socket file, or a stale one). */
  absent: boolean;
}

/** No agent answered anywhere the client looked; `attempts` says where and why. */
export class NoAgentError extends AgentUnreachableError {
  constructor(readonly attempts: Attempt[]) {
    super(
      `no purge-cache-agent answered; looked at ${attempts.map((a) => `${a.where} (${a.reason})`).join(', ')}. ` +
        'Start one with `purge-cache-agent run`, or point --api-socket (or --api with --api-token-file) at it',
    );
  }
}

export interface LeaseView {
  cacheName: string;
  owner: string;
  expiresAt: string;
  ttlSeconds: number;
}

/** Path segments are percent-encoded, dots included, so `.` and `..` survive every URL parser on the way. */
export function encodeSegment(value: string): string {
  return encodeURIComponent(value).replace(/\./g, '%2E');
}

/** Long polls last at most 60 s on the agent's side; the client waits a little longer. */
const TIMEOUT_MS = 90_000;
const FOLLOW_WAIT_SECONDS = 30;

export class ApiClient {
  private readonly dispatcher: Dispatcher;
  private readonly origin: string;

  constructor(readonly endpoint: Endpoint) {
    if (endpoint.kind === 'socket') {
      this.dispatcher = new Dispatcher({ connect: { socketPath: endpoint.socketPath, timeout: 5_000 }, headersTimeout: TIMEOUT_MS, bodyTimeout: TIMEOUT_MS });
      this.origin = 'http://localhost';
    } else {
      this.dispatcher = new Dispatcher({ connect: { timeout: 5_000 }, headersTimeout: TIMEOUT_MS, bodyTimeout: TIMEOUT_MS });
      this.origin = new URL(endpoint.url).origin;
    }
  }

  /** Where this client talks to, for messages. */
  get where(): string {
    return this.endpoint.kind === 'socket' ? this.endpoint.socketPath : this.endpoint.url;
  }

  /** One request. Answers of 400 and above throw ApiRequestError; network failures throw as undici reports them. */
  async call<T = unknown>(method: string, path: string, body?: unknown): Promise<{ status: number; body: T }> {
    const headers: Record<string, string> = { accept: 'application/json' };
    if (body !== undefined) headers['content-type'] = 'application/json';
    if (this.endpoint.kind === 'tcp' && this.endpoint.token) headers.authorization = `Bearer ${this.endpoint.token}`;
    // origin + path, not a URL: the path is sent exactly as encoded.
    const res = await this.dispatcher.request({
      origin: this.origin,
      path,
      method: method as 'GET',
      headers,
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
    const text = await res.body.text();
    let parsed: unknown = null;
    if (text !== '') {
      try {
        parsed = JSON.parse(text);
      } catch {
        parsed = text;
      }
    }
    if (res.statusCode >= 400) {
      const err = (parsed ?? {}) as { code?: string; message?: string };
      const apiCode = typeof err.code === 'string' ? err.code : `HTTP${res.statusCode}`;
      let message = typeof err.message === 'string' ? err.message : `HTTP ${res.statusCode}`;
      if (res.statusCode === 401) message += ' (the token comes from --api-token-file or PURGE_CACHE_AGENT_API_TOKEN)';
      throw new ApiRequestError(`the agent at ${this.where} refused ${method} ${decodeForHumans(path)}: ${message}`, res.statusCode, apiCode);
    }
    return { status: res.statusCode, body: parsed as T };
  }

  async healthz(): Promise<void> {
    await this.call('GET', '/healthz');
  }

  async status(): Promise<Record<string, any>> {
    return (await this.call<Record<string, any>>('GET', '/v1/status')).body;
  }

  async sync(): Promise<{ task_id: string; task_state: string }> {
    return (await this.call<{ task_id: string; task_state: string }>('POST', '/v1/sync')).body;
  }

  async purge(name: string, opts: { dryRun?: boolean } = {}): Promise<{ name: string; task_id: string | null; paths?: string[] }> {
    const query = opts.dryRun ? '?dry_run=1' : '';
    return (await this.call<{ name: string; task_id: string | null; paths?: string[] }>('DELETE', `/v1/caches/${encodeSegment(name)}${query}`)).body;
  }

  async task(id: string, first = 0, waitSeconds = 0): Promise<TaskView> {
    return (await this.call<TaskView>('GET', `/v1/tasks/${encodeSegment(id)}?first=${first}&wait=${waitSeconds}`)).body;
  }

  /** Poll a task until it finishes, handing each new output line to `onLine` as it appears. */
  async follow(id: string, onLine: (line: string) => void = () => {}): Promise<TaskView> {
    let first = 0;
    for (;;) {
      const view = await this.task(id, first, FOLLOW_WAIT_SECONDS);
      for (const line of view.output) onLine(line);
      first = view.last;
      if (view.finished) return view;
    }
  }

  async acquireLease(cacheName: string, owner: string, ttlSeconds: number): Promise<LeaseView> {
    return (await this.call<LeaseView>('PUT', `/v1/caches/${encodeSegment(cacheName)}/leases/${encodeSegment(owner)}`, { ttlSeconds })).body;
  }

  /** False when the owner held no live lease on the cache. */
  async releaseLease(cacheName: string, owner: string): Promise<boolean> {
    try {
      await this.call('DELETE', `/v1/caches/${encodeSegment(cacheName)}/leases/${encodeSegment(owner)}`);
      return true;
    } catch (err) {
      if (err instanceof ApiRequestError && err.status === 404) return false;
      throw err;
    }
  }

  async close(): Promise<void> {
    await this.dispatcher.close();
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
  const attempts: Attempt[] = [];
  for (const endpoint of endpoints) {
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

function describeFailure(where: string, err: unknown): Attempt {
  const code = errnoCode(err) ?? errnoCode((err as { cause?: unknown })?.cause);
  switch (code) {
    case 'ENOENT':
      return { where, reason: 'no socket there', absent: true };
    case 'ECONNREFUSED':
      return { where, reason: 'nothing is listening', absent: true };
    case 'EACCES':
    case 'EPERM':
      return { where, reason: 'permission denied: run as the agent\'s user or a member of its group', absent: false };
    default:
      return { where, reason: errorMessage(err), absent: false };
  }
}
