/** `once` and `run`: the agent's two ways of syncing. */
import { Agent } from '../engine/agent.js';
import type { CycleReport } from '../engine/cycle.js';
import { startFields } from '../engine/heartbeat.js';
import { commandContext, printJson, type SettingFlags } from './context.js';
import { requireUsableStateDir } from './state-dir.js';
import type { RunningApi } from '../api/index.js';

export interface OnceFlags extends SettingFlags {
  json?: boolean;
}

/** One cycle, then exit: 0 when it completed, 1 when the query or a purge failed. */
export async function onceCommand(flags: OnceFlags): Promise<number> {
  const ctx = await commandContext(flags, 'once');
  // A dry run only reads the state; a real run writes and locks it.
  await requireUsableStateDir(ctx.settings.stateDir, { write: !ctx.settings.dryRun });
  // A fleet started by one cron line would otherwise query the service all in the same second.
  // The wait comes before the state lock is taken, so it holds up no other command.
  const delayMs = Math.floor(Math.random() * ctx.settings.jitter);
  if (ctx.settings.jitter > 0) {
    ctx.logger.info({ delayMs, jitterMs: ctx.settings.jitter }, 'waiting a random delay (--jitter) before the cycle');
    await new Promise((resolve) => setTimeout(resolve, delayMs));
  }
  const agent = await Agent.start(ctx.settings, { logger: ctx.logger });
  ctx.logger.info(startFields(agent), 'purge-cache-agent once started');
  let report: CycleReport;
  try {
    report = await agent.sync({ join: true });
    // `once` exits only after its trash is empty (a crash's leftovers included).
    if (!ctx.settings.dryRun) {
      // A deletion that failed is a purge whose space did not come back: reported, and retried next run.
      for (const failure of await agent.trash.drain())
        report.failed.push({ name: '(trash)', path: failure.path, error: `could not delete from the trash: ${failure.error}` });
    }
  } finally {
    await agent.close();
  }
  if (flags.json) printJson(ctx, report);
  else ctx.out(summary(report));
  return report.error !== undefined || report.failed.length > 0 ? 1 : 0;
}

export function summary(report: CycleReport): string {
  if (report.error !== undefined) return `query failed: ${report.error}`;
  const verb = report.dryRun ? 'would purge' : 'purged';
  const evictVerb = report.dryRun ? 'would evict' : 'evicted';
  const lines = [
    `${report.requests} purge request(s) since ${report.since ?? 'the beginning'}; ${verb} ${report.purged.length}, deferred ${report.deferred.length}, failed ${report.failed.length}, ${evictVerb} ${report.evicted.length}`,
  ];
  for (const p of report.purged) lines.push(`  ${verb} ${p.name}  ${p.path}`);
  for (const d of report.deferred) lines.push(`  deferred ${d.name}  ${d.path}  (${d.reason})`);
  for (const e of report.evicted) lines.push(`  ${evictVerb} ${e.name}  ${e.path}  (${e.reason}, ${formatBytes(e.bytes)})`);
  for (const f of report.failed) lines.push(`  failed ${f.name}  ${f.path}  (${f.error})`);
  return lines.join('\n');
}

/** 1536 → "1.5 KiB": sizes an operator reads at a glance. */
export function formatBytes(bytes: number): string {
  const units = ['bytes', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${bytes} bytes` : `${value.toFixed(1)} ${units[unit]}`;
}

/** The daemon, with its local API, until SIGTERM or SIGINT. */
export async function runCommand(flags: SettingFlags): Promise<number> {
  const ctx = await commandContext(flags, 'run');
  // Loaded here, not at the top: `once` has no API server and should not load one (nor its metrics),
  // nor the scheduler.
  const { resolveApiServerConfig, startApi } = await import('../api/index.js');
  const { runDaemon } = await import('../engine/daemon.js');
  // API settings are checked before the agent takes the state lock: a bad one exits 2 at once.
  const apiConfig = await resolveApiServerConfig(ctx.settings);
  await requireUsableStateDir(ctx.settings.stateDir, { write: !ctx.settings.dryRun });
  const agent = await Agent.start(ctx.settings, { logger: ctx.logger });
  let api: RunningApi;
  try {
    api = await startApi(agent, { ...apiConfig, logger: ctx.logger });
  } catch (err) {
    await agent.close();
    throw err;
  }
  return runDaemon(agent, ctx.logger, { onStop: () => api.close() });
}
