/** Test doubles that are real: HTTP servers on 127.0.0.1, and a logger whose lines can be read back. */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import pino from 'pino';
import { loggerOptions, type Logger } from '../../src/log.js';
import { POOL_PARTS } from './fixture.js';

export interface TestServer {
  url: string;
  server: Server;
  /** Every request seen, in order: method, raw URL and headers. */
  seen: { method: string; url: string; headers: IncomingMessage['headers'] }[];
  close(): Promise<void>;
}

export async function listen(handler: (req: IncomingMessage, res: ServerResponse, n: number) => void): Promise<TestServer> {
  const seen: TestServer['seen'] = [];
  const server = createServer((req, res) => {
    seen.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers });
    handler(req, res, seen.length);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    server,
    seen,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => {
          resolve();
        });
        server.closeAllConnections();
      }),
  };
}

export function json(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), ...headers });
  res.end(text);
}

export interface CapturedLog {
  logger: Logger;
  /** Parsed JSON log lines. */
  lines(): { level: string; msg: string; [k: string]: unknown }[];
  /** Everything written, as text (for searching for leaked secrets). */
  text(): string;
}

export function captureLogger(): CapturedLog {
  let buffer = '';
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      buffer += chunk.toString();
      cb();
    },
  });
  // The agent's own line shape (level names, ISO times), so tests read what operators read.
  const logger = pino(loggerOptions('debug'), stream);
  return {
    logger,
    text: () => buffer,
    lines: () =>
      buffer
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as { level: string; msg: string }),
  };
}

/** A sleep that doesn't: it records the delay asked for. */
export function recordingSleep(): { sleep: (ms: number) => Promise<void>; delays: number[] } {
  const delays: number[] = [];
  return {
    delays,
    sleep: (ms: number) => {
      delays.push(ms);
      return Promise.resolve();
    },
  };
}

export function entry(cacheName: string, overrides: Record<string, unknown> = {}) {
  return { ...POOL_PARTS, cacheName, before: '2024-05-01T12:00:00.000Z', ...overrides };
}

/** Servers a test file started, closed after each test by closeServers(). */
const started: TestServer[] = [];

/** listen(), remembered for closeServers(). */
export async function serve(handler: Parameters<typeof listen>[0]): Promise<TestServer> {
  const s = await listen(handler);
  started.push(s);
  return s;
}

export async function closeServers(): Promise<void> {
  await Promise.all(started.splice(0).map((s) => s.close()));
}

/** The error a promise rejects with, checked to be a `type` when given; fails the test if it resolves. */
export async function caught(p: Promise<unknown>): Promise<Error>;
export async function caught<E extends Error>(p: Promise<unknown>, type: abstract new (...args: never[]) => E): Promise<E>;
export async function caught(p: Promise<unknown>, type: abstract new (...args: never[]) => Error = Error): Promise<Error> {
  try {
    await p;
  } catch (err) {
    if (err instanceof type) return err;
    throw new Error(`expected a ${type.name}, got ${String(err)}`);
  }
  throw new Error('expected a failure');
}
