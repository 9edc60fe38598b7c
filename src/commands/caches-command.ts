/** `caches`: the local caches, without contacting the service. */
import { requireCaches } from '../config/index.js';
import { listCaches, resolveSources } from '../edges/caches/inventory.js';
import { createdAt } from '../core/rule.js';
import { StateStore } from '../edges/state.js';
import { commandContext, printJson, type SettingFlags } from './context.js';

export interface CachesFlags extends SettingFlags {
  json?: boolean;
}

export async function cachesCommand(flags: CachesFlags): Promise<number> {
  const ctx = await commandContext(flags);
  requireCaches(ctx.settings);
  const sources = await resolveSources(ctx.settings.cacheRoots, ctx.settings.caches);
  const { caches, problems } = await listCaches(sources);
  // First-seen times live in the state; read it without locking, since a running agent holds the lock.
  const state = await StateStore.peek(ctx.settings.stateDir, ctx.logger);
  for (const problem of problems) ctx.logger.warn(problem, 'cannot read a cache location');
  const rows = caches
    .map((c) => {
      const created = createdAt(c, state.firstSeen);
      return { name: c.name, path: c.path, created: created === null ? null : new Date(created).toISOString() };
    })
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  if (flags.json) printJson(ctx, { caches: rows });
  else if (rows.length === 0) ctx.out('no caches');
  else for (const row of rows) ctx.out(`${JSON.stringify(row.name)}  ${row.path}  created ${row.created ?? 'unknown'}`);
  return problems.length > 0 ? 1 : 0;
}
