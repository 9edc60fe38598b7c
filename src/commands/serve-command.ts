/** `serve`: the embedded Taskcluster-compatible purge-cache service. */
import { startService, loadClientsFile } from '../service/index.js';
import { isLoopback } from '../api/config.js';
import type { LevelWithSilent } from 'pino';
import { createLogger } from '../log.js';
import type { SettingFlags } from './context.js';
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

/** serve's own flags (it reads no settings but --log-level); commander fills in the defaults of --host and --port. */
export interface ServeFlags extends SettingFlags {
  host: string;
  port: string;
  data?: string;
  clients?: string;
  allowAnonymous?: boolean;
}

export async function serveCommand(flags: ServeFlags): Promise<number> {
  // The level goes to pino as given: it refuses one it does not know.
  const logger = createLogger({ level: (flags.logLevel ?? process.env.LOG_LEVEL ?? 'info') as LevelWithSilent });
  const port = Number(flags.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new UsageError(`invalid --port ${flags.port}: expected 0–65535 (0 picks a free port)`);
  const host = flags.host;
  const access = exposure(host, flags.clients !== undefined, flags.allowAnonymous === true);
  if (access === 'refused') {
    throw new ConfigError(
      `refusing to serve open access on ${host} (--host): it is not a loopback address, so anyone who reaches it could file and read purge requests. ` +
        'Pass --clients FILE to verify Hawk credentials and scopes, or --allow-anonymous if open access is intended',
      'host',
    );
  }
  const clients = flags.clients === undefined ? undefined : await loadClientsFile(flags.clients);
  const service = await startService({ host, port, dataFile: flags.data, clients, logger }).catch((err: unknown) => {
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
