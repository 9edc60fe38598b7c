/**
 * Where each purge-cache API call goes. One place builds every URL so the
 * client, its error messages and its tests agree on them exactly.
 */
import { ConfigError } from '../../errors.js';
import type { WorkerPool } from '../../core/model.js';

const ID_PART = /^[A-Za-z0-9_-]{1,38}$/;

/**
 * The API base, `<rootUrl>/api/purge-cache/v1` (or the same under a
 * taskcluster-proxy URL). Rejects URLs that could leak or mislead: anything
 * but http(s), and user:password@ (it would end up in error messages).
 */
export function apiBase(url: string, setting: 'rootUrl' | 'proxyUrl'): string {
  const flag = setting === 'rootUrl' ? '--root-url (TASKCLUSTER_ROOT_URL)' : '--proxy-url (TASKCLUSTER_PROXY_URL)';
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new ConfigError(`${flag} is not a URL; give one like https://tc.example.com`, setting);
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
    throw new ConfigError(`${flag} must be an http:// or https:// URL, not ${parsed.protocol}`, setting);
  }
  if (parsed.username || parsed.password) {
    throw new ConfigError(`${flag} must not contain a user name or password; use TASKCLUSTER_CLIENT_ID/TASKCLUSTER_ACCESS_TOKEN`, setting);
  }
  if (parsed.search || parsed.hash) {
    throw new ConfigError(`${flag} must not contain a query string or fragment`, setting);
  }
  return `${parsed.origin}${parsed.pathname.replace(/\/+$/, '')}/api/purge-cache/v1`;
}

/** Throws unless both halves of the pool id are safe to put in a path as they are. */
export function checkPool(pool: WorkerPool): void {
  for (const [name, value] of [
    ['provisionerId', pool.provisionerId],
    ['workerType', pool.workerType],
  ] as const) {
    if (!ID_PART.test(value)) {
      throw new ConfigError(`${name} ${JSON.stringify(value)} must match ${ID_PART.source}`, 'workerPoolId');
    }
  }
}

/**
 * `/purge-cache/<provisionerId>/<workerType>`: the pool id with a literal `/`,
 * the one form both the old (provisionerId/workerType) and the new
 * (workerPoolId) routes of the service accept.
 */
export function poolPath(pool: WorkerPool): string {
  checkPool(pool);
  return `/purge-cache/${pool.provisionerId}/${pool.workerType}`;
}

export function purgeRequestsPath(pool: WorkerPool, since?: Date): string {
  const path = poolPath(pool);
  if (since === undefined) return path;
  if (!Number.isFinite(since.getTime())) throw new RangeError('purgeRequests: `since` is an invalid Date');
  return `${path}?${new URLSearchParams({ since: since.toISOString() }).toString()}`;
}

export function listPath(continuationToken?: string, limit?: number): string {
  const query = new URLSearchParams();
  if (continuationToken) query.set('continuationToken', continuationToken);
  if (limit !== undefined) query.set('limit', String(limit));
  const qs = query.toString();
  return qs ? `/purge-cache/list?${qs}` : '/purge-cache/list';
}

export const PING_PATH = '/ping';

/** Origin and path of a URL, without its query: what messages show of a request. */
export function describeUrl(url: string): string {
  const parsed = new URL(url);
  return `${parsed.origin}${parsed.pathname}`;
}
