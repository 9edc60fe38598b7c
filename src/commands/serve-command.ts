/** `serve`: the embedded Taskcluster-compatible purge-cache service. */
import { startService, loadClientsFile } from '../service/index.js';
import { isLoopback } from '../api/config.js';
import { createLogger } from '../log.js';
import { ConfigError, PortInUseError, UsageError, errnoCode } from '../errors.js';

/**
 * Whether serving on `host` is allowed. Without --clients anyone who reaches
 * the port may file purge requests, so only a loopback address is open by
 * default; anything else needs --clients, or --allow-anonymous to say that
 * open access is intended.
 */
export function exposure(host: string, hasClients: boolean, allowAnonymous: boolean): 'hawk' | 'loopback' | 'anonymous' | 'refused' {
  if (hasClients) return 'hawk';
  if (isLoopback(host)) return 'loopback';
  return allowAnonymous ? 'anonymous' : 'refused';
}

export async function serveCommand(flags: Record<string, unknown>): Promise<number> {
  const logger = createLogger({ level: (flags.logLevel as 'info' | undefined) ?? (process.env.LOG_LEVEL as 'info' | undefined) ?? 'info' });
  const port = flags.port === undefined ? 8080 : Number(flags.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new UsageError(`invalid --port ${String(flags.port)}: expected 0–65535 (0 picks a free port)`);
  const host = (flags.host as string | undefined) ?? '127.0.0.1';
  const access = exposure(host, typeof flags.clients === 'string', Boolean(flags.allowAnonymous));
  if (access === 'refused') {
    throw new ConfigError(
      `refusing to serve open access on ${host} (--host): it is not a loopback address, so anyone who reaches it could file and read purge requests. ` +
        'Pass --clients FILE to verify Hawk credentials and scopes, or --allow-anonymous if open access is intended',
      'host',
    );
  }
  const clients = typeof flags.clients === 'string' ? await loadClientsFile(flags.clients) : undefined;
  const service = await startService({ host, port, dataFile: flags.data as string | undefined, clients, logger }).catch((err: unknown) => {
    throw errnoCode(err) === 'EADDRINUSE' ? new PortInUseError('--port', host, port) : err;
  });
  if (access === 'anonymous') {
    logger.warn(
      { url: service.url },
      'serving open access on a non-loopback address (--allow-anonymous): anyone who reaches this port may file and read purge requests',
    );
  }
  process.stdout.write(`${service.url}\n`);
  const signal = await new Promise<string>((resolve) => {
    process.once('SIGTERM', () => {
      resolve('SIGTERM');
    });
    process.once('SIGINT', () => {
      resolve('SIGINT');
    });
  });
  logger.info({ signal }, 'purge-cache service stopping');
  await service.close();
  return 0;
}
