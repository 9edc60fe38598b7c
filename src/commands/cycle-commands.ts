/** `once` and `run`: the agent's two ways of syncing. */
import { Agent } from '../agent.js';
import { runDaemon } from '../daemon.js';
import type { CycleReport } from '../cycle.js';
import { commandContext, printJson } from './context.js';
import type { RunningApi } from '../api/index.js';

/** One cycle, then exit: 0 when it completed, 1 when the query or a purge failed. */
export async function onceCommand(flags: Record<string, unknown>): Promise<number> {
  const ctx = await commandContext(flags);
  const agent = await Agent.start(ctx.settings, { logger: ctx.logger });
  let report: CycleReport;
  try {
    report = await agent.sync({ join: true });
    // `once` exits only after its trash is empty (a crash's leftovers included).
    if (!ctx.settings.dryRun) {
      // A deletion that failed is a purge whose space did not come back: reported, and retried next run.
      for (const failure of await agent.trash.drain()) report.failed.push({ name: '(trash)', path: failure.path, error: `could not delete from the trash: ${failure.error}` });
    }
  } finally {
    await agent.close();
  }
  if (flags.json) printJson(ctx, report);
  else ctx.out(summary(report));
  return report.error !== undefined || report.failed.length > 0 ? 1 : 0;
}

function summary(report: CycleReport): string {
  if (report.error !== undefined) return `query failed: ${report.error}`;
  const verb = report.dryRun ? 'would purge' : 'purged';
  const lines = [`${report.requests} purge request(s) since ${report.since ?? 'the beginning'}; ${verb} ${report.purged.length}, deferred ${report.deferred.length}, failed ${report.failed.length}`];
  for (const p of report.purged) lines.push(`  ${verb} ${p.name}  ${p.path}`);
  for (const d of report.deferred) lines.push(`  deferred ${d.name}  ${d.path}  (${d.reason})`);
  for (const f of report.failed) lines.push(`  failed ${f.name}  ${f.path}  (${f.error})`);
  return lines.join('\n');
}

/** The daemon, with its local API, until SIGTERM or SIGINT. */
export async function runCommand(flags: Record<string, unknown>): Promise<number> {
  const ctx = await commandContext(flags);
  // Loaded here, not at the top: `once` has no API server and should not load one (nor its metrics).
  const { resolveApiServerConfig, startApi } = await import('../api/index.js');
  // API settings are checked before the agent takes the state lock: a bad one exits 2 at once.
  const apiConfig = await resolveApiServerConfig(ctx.settings);
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
