/**
 * Commands that talk to the running agent through its local API: status,
 * sync, purge and lease. Each finds the agent (its socket, or --api), prints
 * what happened — following a task's output with --wait — and exits non-zero
 * when the task failed or no agent answered (saying where it looked).
 *
 * `lease` also works without a running agent: it then changes the state file
 * directly, under the state lock.
 */
import path from 'node:path';
import { TaskFailedError, UsageError } from '../errors.js';
import { formatDuration, parseDuration } from '../core/duration.js';
import { DEFAULT_LEASE_TTL_SECONDS, validateOwner, validateTtl } from '../core/leases.js';
import { STATE_FILE } from '../edges/state.js';
import { connectToAgent, type ApiClient, type LeaseAnswer, type StatusAnswer, type TaskAnswer } from '../api/client.js';
import { withAgentOrState } from '../engine/agent-link.js';
import { acquireLeaseIn, releaseLeaseIn } from '../engine/leases.js';
import { commandContext, printJson, type CommandContext, type SettingFlags } from './context.js';

export interface StatusFlags extends SettingFlags {
  json?: boolean;
}

/** sync's and purge's: --wait follows the task to its end. */
export interface TaskFlags extends SettingFlags {
  wait?: boolean;
  json?: boolean;
}

/** lease acquire's and lease release's; --ttl is acquire's only, and commander fills in its default. */
export interface LeaseFlags extends SettingFlags {
  owner: string;
  ttl?: string;
  json?: boolean;
}

async function withAgent<T>(ctx: CommandContext, run: (client: ApiClient) => Promise<T>): Promise<T> {
  const client = await connectToAgent(ctx.settings);
  try {
    return await run(client);
  } finally {
    await client.close();
  }
}

/** Follow a task to its end, printing its output; a failed task is an error (exit 1). */
async function followTask(ctx: CommandContext, client: ApiClient, id: string, json: boolean): Promise<TaskAnswer> {
  const view = await client.follow(
    id,
    json
      ? undefined
      : (line) => {
          ctx.out(line);
        },
  );
  if (json) printJson(ctx, view);
  if (view.code !== 0) throw new TaskFailedError(`task ${id} failed: ${view.error || `exit code ${view.code}`}`);
  return view;
}

export async function statusCommand(flags: StatusFlags): Promise<number> {
  const ctx = await commandContext(flags);
  const status = await withAgent(ctx, (client) => client.status());
  if (flags.json) printJson(ctx, status);
  else ctx.out(formatStatus(status));
  return 0;
}

function formatStatus(s: StatusAnswer): string {
  const lines: string[] = [];
  const config = s.config;
  lines.push(`purge-cache-agent ${s.version}, pid ${s.pid}, up ${s.uptimeSeconds}s`);
  lines.push(`  api:          ${s.api.socket}${s.api.tcp ? ` and ${s.api.tcp}` : ''}`);
  // An agent runs only with a worker pool, given either way; String() keeps the line whole should one half be missing.
  const pool = config.workerPoolId ?? `${String(config.provisionerId)}/${String(config.workerType)}`;
  lines.push(`  worker pool:  ${pool}   schedule: ${config.schedule}${config.dryRun ? '   DRY RUN' : ''}`);
  lines.push(`  ready:        ${s.ready.ready ? 'yes' : `no — ${s.ready.reason}`}`);
  const c = s.lastCycle;
  lines.push(
    c
      ? `  last cycle:   ${c.at} ${c.outcome}: ${c.requests} request(s), purged ${c.purged}, deferred ${c.deferred}, failed ${c.failed} (${c.durationMs} ms)${c.error ? ` — ${c.error}` : ''}`
      : '  last cycle:   none yet',
  );
  lines.push(`  cursor:       ${s.cursor ?? 'none (the next query asks for every open request)'}`);
  if (s.running) lines.push(`  running now:  ${s.running.kind}${s.running.name !== undefined ? ` ${JSON.stringify(s.running.name)}` : ''}`);
  lines.push(`  clock offset: ${s.clockOffsetMs === null ? 'unknown' : `${(s.clockOffsetMs / 1000).toFixed(1)}s`}`);
  const t = s.trash;
  lines.push(
    `  trash:        ${t.backlogBytes} bytes waiting${t.backlogPartial ? ' (at least; still counting)' : ''}, ${t.deletedSinceStart.bytes} bytes reclaimed since start`,
  );
  lines.push(`  pending:      ${s.pending.length}`);
  for (const p of s.pending) lines.push(`    ${JSON.stringify(p.name)}  ${p.path}  (${p.reason} since ${p.since}${p.lastError ? `: ${p.lastError}` : ''})`);
  lines.push(`  leases:       ${s.leases.length}`);
  for (const l of s.leases) lines.push(`    ${JSON.stringify(l.cacheName)}  held by ${JSON.stringify(l.owner)} until ${l.expiresAt}`);
  return lines.join('\n');
}

export async function syncCommand(flags: TaskFlags): Promise<number> {
  const ctx = await commandContext(flags);
  return withAgent(ctx, async (client) => {
    const { task_id: id } = await client.sync();
    if (!flags.wait) {
      if (flags.json) printJson(ctx, { task_id: id });
      else ctx.out(`sync started: task ${id} (follow it with: purge-cache-agent sync --wait, or GET /v1/tasks/${id})`);
      return 0;
    }
    if (!flags.json) ctx.out(`sync: task ${id}`);
    await followTask(ctx, client, id, flags.json === true);
    return 0;
  });
}

export async function purgeCommand(cacheName: string, flags: TaskFlags): Promise<number> {
  const ctx = await commandContext(flags);
  const dryRun = ctx.settings.dryRun;
  return withAgent(ctx, async (client) => {
    const answer = await client.purge(cacheName, { dryRun });
    // A dry run's answer has no task, only the paths that would go.
    if (answer.task_id === null) {
      if (flags.json) printJson(ctx, answer);
      else for (const p of answer.paths) ctx.out(`would purge ${JSON.stringify(cacheName)}: ${p}`);
      return 0;
    }
    if (!flags.wait) {
      if (flags.json) printJson(ctx, answer);
      else ctx.out(`purge of ${JSON.stringify(cacheName)} started: task ${answer.task_id}`);
      return 0;
    }
    if (!flags.json) ctx.out(`purge of ${JSON.stringify(cacheName)}: task ${answer.task_id}`);
    await followTask(ctx, client, answer.task_id, flags.json === true);
    return 0;
  });
}

function leaseInput(flags: LeaseFlags, withTtl: boolean): { owner: string; ttlMs: number } {
  const owner = flags.owner;
  const ownerProblem = validateOwner(owner);
  if (ownerProblem) throw new UsageError(`invalid --owner: ${ownerProblem}`);
  if (!withTtl) return { owner, ttlMs: 0 };
  const ttlText = flags.ttl ?? formatDuration(DEFAULT_LEASE_TTL_SECONDS * 1000);
  const ttlMs = parseDuration(ttlText);
  if (ttlMs === undefined) throw new UsageError(`invalid --ttl ${ttlText}: expected a duration such as 90s, 10m or 1h`);
  const ttlProblem = validateTtl(ttlMs);
  if (ttlProblem) throw new UsageError(`invalid --ttl ${ttlText}: ${ttlProblem}`);
  return { owner, ttlMs };
}

export async function leaseAcquireCommand(cacheName: string, flags: LeaseFlags): Promise<number> {
  const ctx = await commandContext(flags);
  const { owner, ttlMs } = leaseInput(flags, true);
  const { value: lease, offline } = await withAgentOrState<LeaseAnswer>(
    ctx.settings,
    ctx.logger,
    (client) => client.acquireLease(cacheName, owner, ttlMs / 1000),
    async (local) => {
      const l = await acquireLeaseIn(local, cacheName, owner, ttlMs, { deferRenewals: false });
      return { cacheName: l.cacheName, owner: l.owner, expiresAt: new Date(l.expiresAt).toISOString(), ttlSeconds: l.ttlSeconds };
    },
  );
  if (flags.json) printJson(ctx, lease);
  else
    ctx.out(
      `lease on ${JSON.stringify(lease.cacheName)} held by ${JSON.stringify(lease.owner)} until ${lease.expiresAt}${offline ? ` (no agent running: written to ${path.join(ctx.settings.stateDir, STATE_FILE)})` : ''}`,
    );
  return 0;
}

export async function leaseReleaseCommand(cacheName: string, flags: LeaseFlags): Promise<number> {
  const ctx = await commandContext(flags);
  const { owner } = leaseInput(flags, false);
  const { value: released, offline } = await withAgentOrState<boolean>(
    ctx.settings,
    ctx.logger,
    (client) => client.releaseLease(cacheName, owner),
    (local) => releaseLeaseIn(local, cacheName, owner),
  );
  if (flags.json) printJson(ctx, { cacheName, owner, released });
  else
    ctx.out(
      released
        ? `released the lease of ${JSON.stringify(owner)} on ${JSON.stringify(cacheName)}${offline ? ' (no agent running: state file changed directly)' : ''}`
        : `${JSON.stringify(owner)} held no live lease on ${JSON.stringify(cacheName)}; nothing to release`,
    );
  return 0;
}
