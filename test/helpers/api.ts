/**
 * Helpers for the local API's tests: the `run` daemon as a child process, raw
 * HTTP over its unix socket or 127.0.0.1, and a gate in front of the embedded
 * purge-cache service that can hold or fail requests (to keep a cycle in
 * flight, or to take the service "down").
 */
import { request as httpRequest, createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import parsePrometheusTextFormat from 'parse-prometheus-text-format';
import { startCli, finished, waitForOutput, logLines, type CliResult } from './cli.js';
import { POOL, type Fixture } from './fixture.js';
import { eventually } from './wait.js';

export const TOKEN = 'test-api-token-0123456789abcdef';

export interface Reply {
  status: number;
  headers: IncomingHttpHeaders;
  text: string;
  json: any;
}

/** Where to send a request: the agent's unix socket, or its TCP port on 127.0.0.1. */
export type Target = { socketPath: string } | { port: number };

/** One raw HTTP request (no client-side URL normalisation: the path goes out as written). */
export function call(
  target: Target,
  method: string,
  urlPath: string,
  opts: { headers?: Record<string, string>; body?: string | Buffer; signal?: AbortSignal; chunked?: boolean } = {},
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      {
        ...('socketPath' in target ? { socketPath: target.socketPath } : { host: '127.0.0.1', port: target.port }),
        method,
        path: urlPath,
        headers: {
          ...(opts.body !== undefined
            ? { 'content-type': 'application/json', ...(opts.chunked ? {} : { 'content-length': String(Buffer.byteLength(opts.body)) }) }
            : {}),
          ...opts.headers,
        },
        agent: false,
        ...(opts.signal ? { signal: opts.signal } : {}),
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let json: unknown = undefined;
          try {
            json = text === '' ? undefined : JSON.parse(text);
          } catch {
            json = undefined;
          }
          resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json });
        });
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    if (opts.body !== undefined) req.write(opts.body);
    req.end();
  });
}

export const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

export interface Daemon {
  child: ReturnType<typeof startCli>;
  socket: { socketPath: string };
  /** Present when started with --listen. */
  tcp: { port: number };
  tcpUrl: string;
  stop(): Promise<CliResult>;
}

/**
 * Start `run` and wait until its API listens. `args` come after the fixture's
 * cache root and state dir; the service URL is `serviceUrl` (the fixture's, or a gate's).
 */
export async function startDaemon(
  fx: Fixture,
  opts: { serviceUrl?: string; args?: string[]; env?: Record<string, string>; listen?: boolean } = {},
): Promise<Daemon> {
  const args = [
    'run',
    '--root-url',
    opts.serviceUrl ?? fx.service.url,
    '--worker-pool-id',
    POOL,
    '--cache-root',
    fx.root,
    '--state-dir',
    fx.stateDir,
    '--jitter',
    '0',
    // Only the cycle at start, unless a test asks for a schedule.
    '--schedule',
    '0 0 1 1 *',
    '--recheck',
    '250ms',
    ...(opts.listen === false ? [] : ['--listen', '127.0.0.1:0']),
    ...(opts.args ?? []),
  ];
  const child = startCli(args, { env: opts.env ?? {} });
  const exited = () => child.exitCode !== null || child.signalCode !== null;
  // 'purge-cache-agent started' is logged by the daemon right before it installs its signal handlers (same tick):
  // once it is out, a SIGTERM from the test is handled as a stop, never as the default kill.
  await waitForOutput(child, (o) => exited() || (o.stderr.includes('local API listening') && o.stderr.includes('purge-cache-agent started')));
  if (exited()) throw new Error(`run exited before its API listened:\n${child.output.stderr}`);
  const line = logLines(child.output.stderr).find((l) => l.msg === 'local API listening')!;
  const tcpUrl = typeof line.tcp === 'string' ? line.tcp : '';
  return {
    child,
    socket: { socketPath: String(line.socket) },
    tcp: { port: tcpUrl ? Number(new URL(tcpUrl).port) : 0 },
    tcpUrl,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      return finished(child);
    },
  };
}

/** Write the API token to a file in the fixture's temp dir; returns its path. */
export async function tokenFile(fx: Fixture, token = TOKEN): Promise<string> {
  const file = path.join(fx.tmp.path, 'api-token');
  await writeFile(file, `${token}\n`, { mode: 0o600 });
  return file;
}

/** Wait for the cycle at start to finish (status shows a last cycle). */
export async function firstCycle(d: Daemon): Promise<void> {
  await eventually(async () => ((await call(d.socket, 'GET', '/v1/status')).json?.lastCycle ? true : undefined), 'the first cycle');
}

/** Follow a task to its end through the API. */
export async function finishedTask(target: Target, id: string, headers: Record<string, string> = {}): Promise<any> {
  let first = 0;
  const output: string[] = [];
  for (;;) {
    const reply = await call(target, 'GET', `/v1/tasks/${id}?first=${first}&wait=20`, { headers });
    if (reply.status !== 200) throw new Error(`GET task ${id}: ${reply.status} ${reply.text}`);
    output.push(...reply.json.output);
    first = reply.json.last;
    if (reply.json.finished) return { ...reply.json, output };
  }
}

/** /metrics parsed by a Prometheus text parser: name → samples. */
export async function metrics(target: Target): Promise<Map<string, ReturnType<typeof parsePrometheusTextFormat>[number]>> {
  const reply = await call(target, 'GET', '/metrics');
  if (reply.status !== 200) throw new Error(`/metrics: ${reply.status}`);
  return new Map(parsePrometheusTextFormat(reply.text).map((family) => [family.name, family]));
}

/** The value of an unlabelled (or label-matched) counter or gauge. */
export function sample(families: Awaited<ReturnType<typeof metrics>>, name: string, labels: Record<string, string> = {}): number {
  const family = families.get(name);
  if (!family) throw new Error(`metric ${name} is missing`);
  const found = family.metrics.find((m) => Object.entries(labels).every(([k, v]) => m.labels?.[k] === v));
  if (!found || found.value === undefined) throw new Error(`metric ${name}${JSON.stringify(labels)} has no sample`);
  return Number(found.value);
}

/**
 * A gate in front of the purge-cache service on 127.0.0.1. 'pass' forwards,
 * 'hold' keeps requests until release(), 'fail' answers 500 (the service is down).
 */
export interface Gate {
  url: string;
  mode: 'pass' | 'hold' | 'fail';
  /** purgeRequests queries that reached the gate. */
  queries: number;
  held(): number;
  release(): void;
  close(): Promise<void>;
}

export async function startGate(targetUrl: string): Promise<Gate> {
  const target = new URL(targetUrl);
  const waiting: (() => void)[] = [];
  const gate: Gate = {
    url: '',
    mode: 'pass',
    queries: 0,
    held: () => waiting.length,
    release() {
      gate.mode = 'pass';
      for (const forward of waiting.splice(0)) forward();
    },
    close: async () => {
      await new Promise<void>((resolve) => {
        server.close(() => {
          resolve();
        });
        server.closeAllConnections();
      });
    },
  };
  const server: Server = createServer((req, res) => {
    if (req.method === 'GET' && /\/purge-cache\/[^/]+\/[^/?]+/.test(req.url ?? '') && !(req.url ?? '').includes('/list')) gate.queries++;
    const forward = (): void => {
      const upstream = httpRequest(
        { host: target.hostname, port: target.port, method: req.method, path: req.url, headers: req.headers, agent: false },
        (answer) => {
          res.writeHead(answer.statusCode ?? 502, answer.headers);
          answer.pipe(res);
        },
      );
      upstream.on('error', () => res.destroy());
      req.pipe(upstream);
    };
    if (gate.mode === 'fail') {
      req.resume();
      const body = JSON.stringify({ code: 'InternalServerError', message: 'the gate is closed' });
      res.writeHead(500, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
      res.end(body);
    } else if (gate.mode === 'hold') {
      waiting.push(forward);
    } else {
      forward();
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  gate.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return gate;
}
