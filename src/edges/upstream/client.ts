/**
 * The purge-cache API as the agent uses it. Each call is retried as
 * Taskcluster's own clients do, each answer is validated before anything acts
 * on it, and each failure becomes one of the shared upstream errors with a
 * message that says what to do.
 */
import { ConfigError, UpstreamHttpError, UpstreamNetworkError, UpstreamResponseError } from '../../errors.js';
import { silentLogger, type Logger } from '../../log.js';
import { registerSecret } from '../../secrets.js';
import type { PurgeRequest, WorkerPool } from '../../core/model.js';
import { prepareCredentials, hawkAuthorization, type Credentials, type SigningCredentials } from './credentials.js';
import { describeRefusal, type CallKind } from './refusal.js';
import { parseJson, validateListPage, validatePing, validatePurgeRequests, type InvalidEntry } from './response.js';
import { backoffDelay, defaultSleep, isRetryableStatus, MAX_DELAY_MS, retryAfterMs } from './retry.js';
import { sendOnce, ABANDONED, type RawResponse } from './transport.js';
import { apiBase, checkPool, describeUrl, listPath, poolPath, purgeRequestsPath, PING_PATH } from './urls.js';

export type { Credentials };

export interface UpstreamOptions {
  /** Required unless proxyUrl is given. */
  rootUrl?: string | undefined;
  /** TASKCLUSTER_PROXY_URL: requests go to <proxyUrl>/api/purge-cache/v1/… unsigned; the proxy signs them. */
  proxyUrl?: string | undefined;
  /** None: anonymous, no Authorization header. */
  credentials?: Credentials | undefined;
  /** Deadline for one attempt, body included. Default 30 s. */
  timeoutMs?: number | undefined;
  /** Retries after the first attempt. Default 5. */
  maxRetries?: number | undefined;
  /** Backoff base: base × 2^retry ±25 %, at most 30 s. Default 100 ms. */
  baseDelayMs?: number | undefined;
  /** Larger successful answers fail instead of being buffered. Default 32 MiB. */
  maxResponseBytes?: number | undefined;
  logger?: Logger;
  random?: () => number;
  sleep?: (ms: number) => Promise<void>;
  /** Aborting it abandons every call in flight and every retry (the agent is stopping). */
  signal?: AbortSignal;
}

export interface PurgeRequestsResult {
  /** Valid entries for this pool only. */
  requests: PurgeRequest[];
  /** Entries skipped, each with the reason (also logged); at most MAX_INVALID_KEPT of them. */
  invalid: InvalidEntry[];
  /** How many entries were skipped in all. */
  invalidCount: number;
  /** The response's Date header in ms, for clock-offset estimation. */
  serverDate: number | null;
  attempts: number;
}

/** Invalid entries logged one by one; past this, one summary line (a hostile answer must not flood the log). */
const MAX_INVALID_LOG_LINES = 100;
/** allPurgeRequests stops here rather than let a runaway pager fill memory. */
const MAX_LISTED_REQUESTS = 1_000_000;

interface CallResult {
  raw: RawResponse;
  attempts: number;
  where: string;
}

export class PurgeCacheClient {
  private readonly base: string;
  private readonly signing: SigningCredentials | undefined;
  private readonly proxied: boolean;
  private readonly timeoutMs: number;
  private readonly maxRetries: number;
  private readonly baseDelayMs: number;
  private readonly maxResponseBytes: number;
  private readonly logger: Logger;
  private readonly random: () => number;
  private readonly sleep: (ms: number) => Promise<void>;
  private readonly signal: AbortSignal | undefined;

  constructor(opts: UpstreamOptions) {
    if (opts.proxyUrl) {
      this.base = apiBase(opts.proxyUrl, 'proxyUrl');
      this.proxied = true;
      // Unused here, but still secrets: keep them out of every log line.
      registerSecret(opts.credentials?.accessToken);
      if (typeof opts.credentials?.certificate === 'string') registerSecret(opts.credentials.certificate);
      // The proxy holds the credentials and signs; a signature of ours would be for the wrong host.
      this.signing = undefined;
    } else if (opts.rootUrl) {
      this.base = apiBase(opts.rootUrl, 'rootUrl');
      this.proxied = false;
      this.signing = opts.credentials ? prepareCredentials(opts.credentials) : undefined;
    } else {
      throw new ConfigError('no root URL: set --root-url or TASKCLUSTER_ROOT_URL (or a proxy URL)', 'rootUrl');
    }
    this.timeoutMs = positive(opts.timeoutMs ?? 30_000, 'timeoutMs');
    this.maxRetries = nonNegativeInteger(opts.maxRetries ?? 5, 'maxRetries');
    this.baseDelayMs = nonNegative(opts.baseDelayMs ?? 100, 'baseDelayMs');
    this.maxResponseBytes = positive(opts.maxResponseBytes ?? 32 * 1024 * 1024, 'maxResponseBytes');
    this.logger = opts.logger ?? silentLogger();
    this.random = opts.random ?? Math.random;
    this.sleep = opts.sleep ?? defaultSleep;
    this.signal = opts.signal;
  }

  /** The open purge requests for one pool, `before >= since` when since is given. */
  async purgeRequests(pool: WorkerPool, since?: Date): Promise<PurgeRequestsResult> {
    const { raw, attempts, where } = await this.call('GET', purgeRequestsPath(pool, since), { kind: 'purgeRequests', pool });
    const { requests, invalid, invalidCount } = validatePurgeRequests(parseJson(raw, where), pool, where);
    this.logInvalid(invalid, invalidCount, where);
    return { requests, invalid, invalidCount, serverDate: dateHeader(raw), attempts };
  }

  /** File a purge request: caches named cacheName on this pool's workers are purged. */
  async purgeCache(pool: WorkerPool, cacheName: string): Promise<void> {
    checkPool(pool);
    if (typeof cacheName !== 'string') throw new TypeError('purgeCache: cacheName must be a string');
    await this.call('POST', poolPath(pool), { kind: 'purgeCache', pool, cacheName }, JSON.stringify({ cacheName }));
  }

  /** Every open purge request of every pool, following the continuation tokens to the end. */
  async allPurgeRequests(opts: { limit?: number } = {}): Promise<PurgeRequest[]> {
    const { limit } = opts;
    if (limit !== undefined && !(Number.isInteger(limit) && limit >= 1 && limit <= 1000)) {
      throw new ConfigError(`limit must be an integer from 1 to 1000, not ${limit}`, 'limit');
    }
    const all: PurgeRequest[] = [];
    const seen = new Set<string>();
    let token: string | undefined;
    do {
      const { raw, where } = await this.call('GET', listPath(token, limit), { kind: 'allPurgeRequests' });
      const page = validateListPage(parseJson(raw, where), where);
      this.logInvalid(page.invalid, page.invalidCount, where);
      all.push(...page.requests);
      // Absent is the end; old servers sent "" on the last page.
      token = page.continuationToken || undefined;
      if (token !== undefined) {
        if (seen.has(token)) {
          throw new UpstreamResponseError(`the purge-cache service repeated a continuation token for ${where}; its paging loops, giving up`);
        }
        seen.add(token);
      }
      if (all.length > MAX_LISTED_REQUESTS) {
        throw new UpstreamResponseError(`the purge-cache service listed more than ${MAX_LISTED_REQUESTS} purge requests; giving up`);
      }
    } while (token !== undefined);
    return all;
  }

  async ping(): Promise<{ alive: boolean; uptime: number }> {
    const { raw, where } = await this.call('GET', PING_PATH, { kind: 'ping' });
    return validatePing(parseJson(raw, where), where);
  }

  /** One API call with retries; resolves with a 2xx answer, or throws the last failure. */
  private async call(method: 'GET' | 'POST', path: string, kind: CallKind, body?: string): Promise<CallResult> {
    const url = this.base + path;
    const where = `${method} ${path.split('?')[0]}`;
    for (let attempt = 1; ; attempt++) {
      let failure: UpstreamHttpError | UpstreamNetworkError;
      let asked: number | undefined;
      try {
        const headers: Record<string, string> = { accept: 'application/json', 'user-agent': 'purge-cache-agent' };
        if (body !== undefined) headers['content-type'] = 'application/json';
        if (this.signing) headers.authorization = await hawkAuthorization(this.signing, url, method);
        const raw = await sendOnce({ method, url, headers, body }, { timeoutMs: this.timeoutMs, maxResponseBytes: this.maxResponseBytes, signal: this.signal });
        this.logger.debug({ method, url: describeUrl(url), status: raw.status, attempt }, 'purge-cache service answered');
        if (raw.status >= 200 && raw.status < 300) return { raw, attempts: attempt, where };
        failure = describeRefusal(raw, where, kind, {
          credentials: this.proxied ? 'proxy' : this.signing ? 'own' : 'anonymous',
          authorization: headers.authorization,
          retryable: isRetryableStatus(raw.status),
        });
        if (!failure.retryable) throw failure;
        if (raw.status === 429) asked = retryAfterMs(raw.headers['retry-after'], Date.now());
      } catch (err) {
        if (!(err instanceof UpstreamNetworkError)) throw err;
        failure = err;
      }
      if (attempt > this.maxRetries || this.signal?.aborted) {
        failure.message += ` (gave up after ${attempt} attempt${attempt === 1 ? '' : 's'})`;
        throw failure;
      }
      if (asked !== undefined && asked > MAX_DELAY_MS) {
        failure.message += ` (the service asked to wait ${Math.ceil(asked / 1000)} s before retrying; try again later)`;
        throw failure;
      }
      const delay = Math.max(backoffDelay(attempt, this.baseDelayMs, this.random), asked ?? 0);
      this.logger.warn({ attempt, delayMs: Math.round(delay), err: failure.message }, `retrying ${where}`);
      const stop = abandoned(this.signal);
      await Promise.race([this.sleep(delay), stop.promise]);
      stop.dispose();
      if (this.signal?.aborted) throw new UpstreamNetworkError(`${where}: ${ABANDONED}`);
    }
  }

  private logInvalid(invalid: InvalidEntry[], total: number, where: string): void {
    for (const entry of invalid.slice(0, MAX_INVALID_LOG_LINES)) {
      this.logger.warn({ index: entry.index, reason: entry.reason }, `skipping an invalid purge request in the answer to ${where}`);
    }
    const logged = Math.min(invalid.length, MAX_INVALID_LOG_LINES);
    if (total > logged) {
      this.logger.warn({ skipped: total - logged }, `skipping ${total - logged} more invalid purge requests in the answer to ${where}`);
    }
  }
}

/** Resolves when `signal` aborts (never, without one), to cut a retry's wait short; dispose() unhooks it. */
function abandoned(signal: AbortSignal | undefined): { promise: Promise<void>; dispose(): void } {
  let onAbort = (): void => {};
  const promise = new Promise<void>((resolve) => {
    onAbort = () => {
      resolve();
    };
    if (signal?.aborted) resolve();
    else signal?.addEventListener('abort', onAbort, { once: true });
  });
  return { promise, dispose: () => signal?.removeEventListener('abort', onAbort) };
}

function dateHeader(raw: RawResponse): number | null {
  const value = raw.headers.date;
  const ms = typeof value === 'string' ? Date.parse(value) : NaN;
  return Number.isFinite(ms) ? ms : null;
}

function positive(value: number, name: string): number {
  if (!(Number.isFinite(value) && value > 0)) throw new ConfigError(`${name} must be a positive number, not ${value}`, name);
  return value;
}

function nonNegative(value: number, name: string): number {
  if (!(Number.isFinite(value) && value >= 0)) throw new ConfigError(`${name} must be 0 or more, not ${value}`, name);
  return value;
}

function nonNegativeInteger(value: number, name: string): number {
  if (!(Number.isInteger(value) && value >= 0)) throw new ConfigError(`${name} must be a whole number, 0 or more, not ${value}`, name);
  return value;
}
