/** The domain's shared shapes: what the purge-cache API sends, and what the agent reports. */

/** One purge request exactly as the purge-cache API returns it. */
export interface PurgeRequest {
  provisionerId: string;
  workerType: string;
  cacheName: string;
  /** ISO 8601, on the service's clock. */
  before: string;
}

export interface WorkerPool {
  provisionerId: string;
  workerType: string;
}

export function workerPoolId(pool: WorkerPool): string {
  return `${pool.provisionerId}/${pool.workerType}`;
}

export const WORKER_POOL_ID_PATTERN = /^[A-Za-z0-9_-]{1,38}\/[A-Za-z0-9_-]{1,38}$/;

export function parseWorkerPoolId(id: string): WorkerPool | undefined {
  if (!WORKER_POOL_ID_PATTERN.test(id)) return undefined;
  const [provisionerId, workerType] = id.split('/') as [string, string];
  return { provisionerId, workerType };
}

/** The scope an agent needs to read its pool's purge requests. Two colons: the service checks this exact string. */
export function purgeRequestsScope(workerPoolIdValue: string): string {
  return `purge-cache:purge-requests::${workerPoolIdValue}`;
}

/** The scope needed to file a purge request for one cache. */
export function purgeCacheScope(workerPoolIdValue: string, cacheName: string): string {
  return `purge-cache:${workerPoolIdValue}:${cacheName}`;
}
