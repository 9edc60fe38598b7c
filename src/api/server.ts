/**
 * The local API server: node:http on a unix socket (mode 0660) and, with
 * --listen, on TCP as well. Over TCP every /v1 route needs the bearer token;
 * /healthz, /readyz and /metrics are open on both, and slow or idle TCP
 * clients give way to new ones so the probes keep answering. The socket is protected by
 * its mode (and its directory's): whoever may open it may use the API.
 */
import { createServer, STATUS_CODES, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { connect, type AddressInfo } from 'node:net';
import { chmod, lstat, mkdir, unlink } from 'node:fs/promises';
import path from 'node:path';
import type { Agent } from '../engine/agent.js';
import type { CycleReport } from '../core/report.js';
import {
  AgentError,
  ApiSocketInUseError,
  ApiStartError,
  ConfigError,
  LeaseLimitError,
  PortInUseError,
  errnoCode,
  errorMessage,
  HttpAnswerError,
} from '../errors.js';
import type { Logger } from '../log.js';
import { scrub } from '../secrets.js';
import type { ApiServerConfig } from './config.js';
import { TokenCheck } from './auth.js';
import { TrashBacklog } from './backlog.js';
import { limitConnections, TCP_CONNECTION_LIMITS } from './connections.js';
import { sendError, splitTarget } from './http.js';
import { createMetrics } from './metrics.js';
import { scheduleInterval } from './readiness.js';
import { OperationTasks } from './operations.js';
import { match, type ApiContext } from './router.js';
import { ROUTES } from './routes.js';
import { TaskStore, type TaskStoreOptions } from './tasks.js';

export interface ApiOptions extends ApiServerConfig {
  logger: Logger;
  /** Budget for ?size=1 (default 2 s). */
  sizeBudgetMs?: number;
  /** Budget of one trash backlog measurement (default 1 s). */
  backlogBudgetMs?: number;
  tasks?: TaskStoreOptions;
}

export interface RunningApi {
  socketPath: string;
  /** http://HOST:PORT when listening on TCP. */
  tcpUrl?: string;
  context: ApiContext;
  close(): Promise<void>;
}

const SOCKET_MODE = 0o660;

export async function startApi(agent: Agent, options: ApiOptions): Promise<RunningApi> {
  const { logger } = options;
  const tokenCheck = options.token ? new TokenCheck(options.token) : null;
  const tasks = new TaskStore<CycleReport>(options.tasks);
  const backlog = new TrashBacklog(agent.sources, options.backlogBudgetMs ?? 1_000);
  const interval = await scheduleInterval(agent.settings.schedule);
  const context: ApiContext = {
    agent,
    tasks,
    operations: new OperationTasks(agent, tasks),
    metrics: createMetrics(agent, backlog),
    backlog,
    readyThresholdMs: 3 * interval + agent.settings.jitter,
    sizeBudgetMs: options.sizeBudgetMs ?? 2_000,
    startedAt: agent.clock.now(),
    endpoints: { socket: options.socketPath, tokenRequired: tokenCheck !== null },
  };

  const servers: Server[] = [];
  let socketIno: number | null = null;
  const close = async (): Promise<void> => {
    tasks.close();
    await Promise.all(
      servers.map(
        (server) =>
          new Promise<void>((resolve) => {
            server.close(() => {
              resolve();
            });
            server.closeAllConnections();
          }),
      ),
    );
    // Remove the socket file only if it is still ours.
    if (socketIno !== null) {
      const st = await lstat(options.socketPath).catch(() => null);
      if (st?.isSocket() && st.ino === socketIno) await unlink(options.socketPath).catch(() => {});
    }
  };

  try {
    const unixServer = makeServer(context, logger, null);
    servers.push(unixServer);
    await removeStaleSocket(options.socketPath);
    await mkdir(path.dirname(options.socketPath), { recursive: true, mode: 0o750 });
    // Create the socket with its final mode, then set it explicitly (umask-independent).
    const previous = process.umask(0o117);
    try {
      unixServer.listen(options.socketPath);
    } finally {
      process.umask(previous);
    }
    await listening(unixServer);
    unixServer.on('error', (err) => {
      logger.error({ err: errorMessage(err) }, 'local API socket error');
    });
    socketIno = (await lstat(options.socketPath)).ino;
    await chmod(options.socketPath, SOCKET_MODE);

    let tcpUrl: string | undefined;
    if (options.listen) {
      const tcpServer = makeServer(context, logger, tokenCheck ?? 'no-token');
      servers.push(tcpServer);
      tcpServer.listen(options.listen.port, options.listen.host);
      await listening(tcpServer);
      tcpServer.on('error', (err) => {
        logger.error({ err: errorMessage(err) }, 'local API TCP error');
      });
      const address = tcpServer.address() as AddressInfo;
      const host = address.address.includes(':') ? `[${address.address}]` : address.address;
      tcpUrl = `http://${host}:${address.port}`;
      context.endpoints.tcp = tcpUrl;
    }
    logger.info(
      { socket: options.socketPath, tcp: tcpUrl ?? null, tokenRequired: tokenCheck !== null, readyThresholdMs: context.readyThresholdMs },
      'local API listening',
    );
    return { socketPath: options.socketPath, ...(tcpUrl ? { tcpUrl } : {}), context, close };
  } catch (err) {
    await close();
    if (errnoCode(err) === 'EADDRINUSE' && options.listen) {
      throw new PortInUseError('--listen', options.listen.host, options.listen.port);
    }
    if (err instanceof AgentError) throw err;
    // Only a setting the operator can fix is a configuration error (exit 2); a refused permission or a full disk
    // is the machine's state, reported as a failure to start (exit 1) that names the path.
    const code = errnoCode(err);
    const setting = options.listen && code === 'EADDRNOTAVAIL' ? 'listen' : 'apiSocket';
    if (code === 'EADDRNOTAVAIL' || code === 'ENAMETOOLONG' || code === 'EINVAL') {
      throw new ConfigError(`cannot start the local API: ${errorMessage(err)}; check --${setting === 'listen' ? 'listen' : 'api-socket'}`, setting);
    }
    throw new ApiStartError(options.socketPath, errorMessage(err), { cause: err });
  }
}

function listening(server: Server): Promise<void> {
  return new Promise((resolve, reject) => {
    if (server.listening) {
      resolve();
      return;
    }
    const onError = (err: Error): void => {
      reject(err);
    };
    server.once('error', onError);
    server.once('listening', () => {
      server.off('error', onError);
      resolve();
    });
  });
}

/**
 * A socket file left by an agent that died is removed — but only if nothing
 * answers on it: a live agent's socket is never taken over, and anything
 * that is not a socket is never deleted.
 */
async function removeStaleSocket(socketPath: string): Promise<void> {
  const st = await lstat(socketPath).catch((err: unknown) => {
    if (errnoCode(err) === 'ENOENT') return null;
    throw err;
  });
  if (!st) return;
  if (!st.isSocket()) {
    throw new ConfigError(`${socketPath} exists and is not a socket; refusing to replace it (set --api-socket elsewhere, or remove it)`, 'apiSocket');
  }
  const answers = await new Promise<boolean>((resolve, reject) => {
    const probe = connect({ path: socketPath });
    probe.setTimeout(2_000, () => {
      probe.destroy();
      resolve(true); // accepted but silent: something is there
    });
    probe.once('connect', () => {
      probe.destroy();
      resolve(true);
    });
    probe.once('error', (err) => {
      const code = errnoCode(err);
      if (code === 'ECONNREFUSED' || code === 'ENOENT') resolve(false);
      else reject(err);
    });
  });
  if (answers) {
    throw new ApiSocketInUseError(
      `another process (most likely another purge-cache-agent) answers on the API socket ${socketPath}; stop it, or give this agent its own --api-socket`,
    );
  }
  await unlink(socketPath).catch((err: unknown) => {
    if (errnoCode(err) !== 'ENOENT') throw err;
  });
}

/** `auth`: null on the unix socket (no token needed); a TokenCheck, or 'no-token' (every /v1 route refused) on TCP. */
function makeServer(ctx: ApiContext, logger: Logger, auth: TokenCheck | 'no-token' | null): Server {
  const tcp = auth !== null;
  // Timeouts are enforced at each check: every second on TCP, so a stalled client is dropped promptly.
  const server = createServer({ connectionsCheckingInterval: tcp ? 1_000 : 30_000 }, (req, res) => {
    handle(req, res, ctx, logger, auth).catch((err: unknown) => {
      logger.error({ err: errorMessage(err) }, 'local API: failed to answer');
      res.destroy();
    });
  });
  // Slow or stalled clients must not hold connections for ever. (Long polls
  // are not affected: these bound receiving the request, not answering it.)
  server.headersTimeout = 10_000;
  server.requestTimeout = 30_000;
  server.keepAliveTimeout = 5_000;
  server.maxRequestsPerSocket = 1_000;
  if (tcp) {
    // Slow or idle clients on TCP are pushed out by newer ones (src/api/connections.ts); node's own
    // cap, which would refuse the newest connection (the probe), stays out of reach.
    limitConnections(server, TCP_CONNECTION_LIMITS);
    server.maxConnections = 8 * TCP_CONNECTION_LIMITS.total;
  } else {
    server.maxConnections = 256;
  }
  // Requests node:http cannot even parse (or that time out) get a JSON error too, then the connection closes.
  server.on('clientError', (err: NodeJS.ErrnoException, socket: Duplex) => {
    const started = (socket as Duplex & { _httpMessage?: { headersSent?: boolean } })._httpMessage?.headersSent;
    if (err.code === 'ECONNRESET' || !socket.writable || started) {
      socket.destroy();
      return;
    }
    const [status, code] =
      err.code === 'HPE_HEADER_OVERFLOW'
        ? [431, 'RequestHeaderFieldsTooLarge']
        : err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
          ? [408, 'RequestTimeout']
          : [400, 'MalformedRequest'];
    const body = JSON.stringify({ code, message: `the request could not be read: ${err.code ?? err.message}` });
    socket.end(
      `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
    );
  });
  return server;
}

async function handle(req: IncomingMessage, res: ServerResponse, ctx: ApiContext, logger: Logger, auth: TokenCheck | 'no-token' | null): Promise<void> {
  const method = req.method ?? 'GET';
  const controller = new AbortController();
  res.on('close', () => {
    controller.abort();
  });
  let where = req.url ?? '/';
  try {
    const { segments, query, path: rawPath } = splitTarget(req.url ?? '/');
    where = rawPath;
    if (auth !== null && segments[0] === 'v1') {
      if (auth === 'no-token') {
        throw new HttpAnswerError(
          401,
          'AuthenticationFailed',
          'the /v1 routes are not available over TCP: no API token is configured (--api-token-file); use the unix socket',
          { 'www-authenticate': 'Bearer realm="purge-cache-agent"' },
        );
      }
      if (!auth.accepts(req.headers.authorization)) {
        throw new HttpAnswerError(401, 'AuthenticationFailed', 'missing or wrong API token: send "Authorization: Bearer <token>"', {
          'www-authenticate': 'Bearer realm="purge-cache-agent"',
        });
      }
    }
    const { handler, params } = match(ROUTES, method, segments);
    await handler({ req, res, params, query, ctx, signal: controller.signal });
    logger.debug({ method, path: rawPath, status: res.statusCode }, 'local API request');
  } catch (err) {
    let apiError: HttpAnswerError;
    if (err instanceof HttpAnswerError) {
      apiError = err;
    } else if (err instanceof LeaseLimitError) {
      // 409, not 429: what stands in the way is the leases held now, not the rate of calls; it clears when leases go.
      apiError = new HttpAnswerError(409, 'LeaseLimitReached', err.message);
    } else {
      logger.error({ err: errorMessage(err), method, path: where }, 'local API: internal error');
      apiError = new HttpAnswerError(500, 'InternalServerError', `the agent failed to handle the request: ${scrub(errorMessage(err))}`);
    }
    if (res.headersSent) {
      res.destroy();
      return;
    }
    // A body we did not read would be parsed as the next request: drain it.
    if (!req.complete) req.resume();
    sendError(res, apiError);
    logger.debug({ method, path: where, status: apiError.status, code: apiError.code }, 'local API request refused');
  }
}
