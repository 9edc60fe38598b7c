/** What each command requires of the settings, checked up front so a misconfiguration fails before any work starts. */
import { ConfigError } from '../errors.js';
import { parseWorkerPoolId, WORKER_POOL_ID_PATTERN, type WorkerPool } from '../core/model.js';
import type { Settings } from './schema.js';

export { loadSettings, flagAttribute, readConfigFile, type SettingFlags } from './load.js';
export { SETTINGS, settingsFor, defaultTextFor } from './settings.js';
export { DEFAULTS, COMMANDS, type Settings, type SettingSpec, type CommandName } from './schema.js';

export function requirePool(settings: Settings): WorkerPool {
  const { workerPoolId, provisionerId, workerType } = settings;
  if (workerPoolId !== undefined) {
    const pool = parseWorkerPoolId(workerPoolId);
    if (!pool) {
      throw new ConfigError(
        `invalid workerPoolId "${workerPoolId}": expected <provisionerId>/<workerType> matching ${WORKER_POOL_ID_PATTERN.source}`,
        'workerPoolId',
      );
    }
    if ((provisionerId && provisionerId !== pool.provisionerId) || (workerType && workerType !== pool.workerType)) {
      throw new ConfigError(
        'workerPoolId disagrees with provisionerId/workerType; set either --worker-pool-id or --provisioner-id with --worker-type',
        'workerPoolId',
      );
    }
    return pool;
  }
  if (provisionerId !== undefined || workerType !== undefined) {
    if (!provisionerId || !workerType) {
      throw new ConfigError('--provisioner-id and --worker-type go together (or use --worker-pool-id)', provisionerId ? 'workerType' : 'provisionerId');
    }
    const pool = parseWorkerPoolId(`${provisionerId}/${workerType}`);
    if (!pool) {
      throw new ConfigError(`invalid provisionerId/workerType "${provisionerId}/${workerType}": each must match ^[A-Za-z0-9_-]{1,38}$`, 'workerPoolId');
    }
    return pool;
  }
  throw new ConfigError(
    'no worker pool configured: set --worker-pool-id (or TASKCLUSTER_WORKER_POOL_ID), or --provisioner-id with --worker-type',
    'workerPoolId',
  );
}

export function requireService(settings: Settings): void {
  if (!settings.rootUrl && !settings.proxyUrl) {
    throw new ConfigError('no purge-cache service configured: set --root-url (or TASKCLUSTER_ROOT_URL), or --proxy-url', 'rootUrl');
  }
}

export function requireCaches(settings: Settings): void {
  if (settings.cacheRoots.length === 0 && settings.caches.length === 0) {
    throw new ConfigError('no caches configured: give at least one --cache-root DIR (or PURGE_CACHE_AGENT_CACHE_ROOTS) or --cache NAME=PATH', 'cacheRoots');
  }
}
