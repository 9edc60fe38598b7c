/**
 * `serve`: a Taskcluster-compatible purge-cache service on node:http, for the
 * demo, for tests, and for sites without Taskcluster. Official clients work
 * against it unchanged.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { systemClock, type Clock } from '../edges/clock.js';
import { silentLogger, type Logger } from '../log.js';
import type { Clients } from './auth.js';
import { parseClients } from './clients.js';
import { sendError } from './http.js';
import { route, type RouteContext } from './routes.js';
import { RequestStore } from './store.js';
import { HttpAnswerError } from '../errors.js';

export interface ServiceOptions {
  /** Default 127.0.0.1. */
  host?: string | undefined;
  /** Default 0: an ephemeral port. */
  port?: number | undefined;
  /** Persist requests here (JSON, written atomically, mode 0600); default in memory. */
  dataFile?: string | undefined;
  /** Verify Hawk and enforce scopes; without it access is open. */
  clients?: Clients | undefined;
  logger?: Logger;
  clock?: Clock;
  /** Requests expire this long after their latest POST. Default 24 h. */
  requestTtlMs?: number;
}

export interface RunningService {
  /** The rootUrl to give clients, e.g. http://127.0.0.1:PORT */
  url: string;
  port: number;
  close(): Promise<void>;
}

export async function startService(opts: ServiceOptions = {}): Promise<RunningService> {
  const clock = opts.clock ?? systemClock;
  const logger = opts.logger ?? silentLogger();
  const clients = opts.clients === undefined ? undefined : parseClients(opts.clients, 'clients');
  const store = await RequestStore.open(opts.dataFile, clock, opts.requestTtlMs ?? 24 * 60 * 60 * 1000);
  const started = clock.monotonic();
  const ctx: RouteContext = {
    store,
    clients,
    now: () => clock.now(),
    uptimeSeconds: () => Math.max(0, (clock.monotonic() - started) / 1000),
  };

  const server = createServer((req, res) => {
    handle(req, res, ctx, logger).catch((err: unknown) => {
      logger.error({ err }, 'purge-cache service: failed to answer');
      res.destroy();
    });
  });
  // Slow or stalled clients must not hold connections for ever.
  server.requestTimeout = 30_000;
  server.headersTimeout = 15_000;

  const host = opts.host ?? '127.0.0.1';
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;
  const url = `http://${host.includes(':') ? `[${host}]` : host}:${port}`;
  logger.info({ url, auth: clients ? 'hawk' : 'open', dataFile: opts.dataFile ?? null }, 'purge-cache service listening');

  return {
    url,
    port,
    close: async () => {
      const closed = new Promise<void>((resolve) =>
        server.close(() => {
          resolve();
        }),
      );
      server.closeAllConnections();
      await closed;
      await store.flush();
    },
  };
}

async function handle(req: IncomingMessage, res: ServerResponse, ctx: RouteContext, logger: Logger): Promise<void> {
  const [path = '/', queryText = ''] = (req.url ?? '/').split(/\?(.*)/s);
  const method = req.method ?? 'GET';
  try {
    const handler = route(method, path);
    await handler(req, res, new URLSearchParams(queryText), ctx);
    logger.debug({ method, path, status: res.statusCode }, 'purge-cache request');
  } catch (err) {
    let apiError: HttpAnswerError;
    if (err instanceof HttpAnswerError) {
      apiError = err;
    } else {
      // The details go to the log only; the caller learns nothing about the inside.
      logger.error({ err, method, path }, 'purge-cache service: internal error');
      apiError = new HttpAnswerError(500, 'InternalServerError', 'the purge-cache service failed to handle the request; see its log');
    }
    // A body left unread would be parsed as the next request: close instead.
    const hasBody = req.headers['transfer-encoding'] !== undefined || Number(req.headers['content-length'] ?? 0) > 0;
    if (hasBody && !req.complete) res.setHeader('connection', 'close');
    sendError(res, req, apiError, path);
    logger.debug({ method, path, status: apiError.status, code: apiError.code }, 'purge-cache request refused');
  }
}
