/** Commands that only talk to the purge-cache service: request, requests, ping. */
import { requirePool, requireService, type Settings } from '../config/index.js';
import type { Logger } from '../log.js';
import { PurgeCacheClient } from '../edges/upstream/client.js';
import { commandContext, printJson, type SettingFlags } from './context.js';

export interface RequestsFlags extends SettingFlags {
  /** Every worker pool's requests, not only this one's. */
  all?: boolean;
  json?: boolean;
}

export function clientFor(settings: Settings, logger: Logger): PurgeCacheClient {
  requireService(settings);
  return new PurgeCacheClient({ rootUrl: settings.rootUrl, proxyUrl: settings.proxyUrl, credentials: settings.credentials, logger });
}

/** File a purge request (purgeCache) for the configured worker pool. */
export async function requestCommand(cacheName: string, flags: SettingFlags): Promise<number> {
  const ctx = await commandContext(flags);
  const pool = requirePool(ctx.settings);
  await clientFor(ctx.settings, ctx.logger).purgeCache(pool, cacheName);
  ctx.out(`purge requested: ${cacheName} for ${pool.provisionerId}/${pool.workerType}`);
  return 0;
}

/** The open purge requests for this pool, or for every pool with --all. */
export async function requestsCommand(flags: RequestsFlags): Promise<number> {
  const ctx = await commandContext(flags);
  const client = clientFor(ctx.settings, ctx.logger);
  const requests = flags.all ? await client.allPurgeRequests() : (await client.purgeRequests(requirePool(ctx.settings))).requests;
  if (flags.json) printJson(ctx, { requests });
  else if (requests.length === 0) ctx.out('no open purge requests');
  else for (const r of requests) ctx.out(`${r.before}  ${r.provisionerId}/${r.workerType}  ${JSON.stringify(r.cacheName)}`);
  return 0;
}

export async function pingCommand(flags: SettingFlags): Promise<number> {
  const ctx = await commandContext(flags);
  const answer = await clientFor(ctx.settings, ctx.logger).ping();
  ctx.out(`purge-cache service alive (uptime ${answer.uptime}s)`);
  return 0;
}
