/** `serve`: the embedded Taskcluster-compatible purge-cache service. */
import { startService, loadClientsFile } from '../service/index.js';
import { createLogger } from '../log.js';
import { UsageError } from '../errors.js';

export async function serveCommand(flags: Record<string, unknown>): Promise<number> {
  const logger = createLogger({ level: (flags.logLevel as 'info' | undefined) ?? (process.env.LOG_LEVEL as 'info' | undefined) ?? 'info' });
  const port = flags.port === undefined ? 8080 : Number(flags.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new UsageError(`invalid --port ${String(flags.port)}: expected 0–65535 (0 picks a free port)`);
  const clients = typeof flags.clients === 'string' ? await loadClientsFile(flags.clients) : undefined;
  const service = await startService({
    host: (flags.host as string | undefined) ?? '127.0.0.1',
    port,
    dataFile: flags.data as string | undefined,
    clients,
    logger,
  });
  process.stdout.write(`${service.url}\n`);
  const signal = await new Promise<string>((resolve) => {
    process.once('SIGTERM', () => resolve('SIGTERM'));
    process.once('SIGINT', () => resolve('SIGINT'));
  });
  logger.info({ signal }, 'purge-cache service stopping');
  await service.close();
  return 0;
}
