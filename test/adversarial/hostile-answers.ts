/**
 * The hostile and broken answers the purge-cache service can give, each a
 * handler for a real HTTP server on 127.0.0.1, with what the daemon must do
 * about it: fail the cycle or skip the entry, and the log line that says so.
 */
import { type IncomingMessage, type ServerResponse } from 'node:http';
import { POOL, POOL_PARTS } from '../helpers/fixture.js';

export const BEFORE = new Date(Date.now() + 3_600_000).toISOString();
export const entry = (cacheName: unknown, over: Record<string, unknown> = {}) => ({ ...POOL_PARTS, cacheName, before: BEFORE, ...over });

export type Handler = (req: IncomingMessage, res: ServerResponse) => void;

/** Stream `total` bytes (or until the client goes away when total is Infinity), after `prefix`. */
export function stream(res: ServerResponse, prefix: string, total: number, headers: Record<string, string> = {}): void {
  res.writeHead(200, { 'content-type': 'application/json', ...headers });
  res.write(prefix);
  const chunk = Buffer.alloc(256 * 1024, ' ');
  let sent = prefix.length;
  const pump = (): void => {
    while (!res.destroyed && sent < total) {
      sent += chunk.length;
      if (!res.write(chunk)) return void res.once('drain', pump);
    }
    if (!res.destroyed) res.end(']}');
  };
  pump();
}

export const json = (res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) => {
  const text = typeof body === 'string' ? body : JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), ...headers });
  res.end(text);
};

export interface Mode {
  name: string;
  /** What the log must say (msg or err/reason fields). */
  logs: RegExp;
  /** The cycle must fail (the cursor holds) rather than skip entries. */
  fails: boolean;
  handler: Handler;
  /** Caches this mode may legitimately purge (valid entries). */
  purges?: string[];
}

export const VICTIMS = ['victim', 'a/b', '..', 'hundredk-target', 'lured'];
/** A cache whose name carries a forged log line: purged (its request is valid), and logged escaped. */
export const FORGER = 'forger\n{"level":50,"msg":"FORGED LINE"}\n';
export const lure = { hits: 0 };

export function modes(lureUrl: string): Mode[] {
  const all = VICTIMS.map((v) => entry(v));
  return [
    {
      name: 'not JSON (an HTML sign-in page)',
      fails: true,
      logs: /is not JSON/,
      handler: (_q, r) => {
        r.writeHead(200, { 'content-type': 'text/html' });
        r.end('<html><title>Sign in</title>victim</html>');
      },
    },
    {
      name: 'truncated JSON',
      fails: true,
      logs: /is not JSON/,
      handler: (_q, r) => {
        json(r, 200, JSON.stringify({ requests: all }).slice(0, 150));
      },
    },
    {
      name: 'JSON followed by garbage',
      fails: true,
      logs: /is not JSON/,
      handler: (_q, r) => {
        json(r, 200, JSON.stringify({ requests: all }) + '{"requests":[]}');
      },
    },
    {
      name: 'an empty 200 body',
      fails: true,
      logs: /is not JSON/,
      handler: (_q, r) => {
        json(r, 200, '');
      },
    },
    {
      name: '1,000,000 nested arrays',
      fails: true,
      logs: /is not JSON|is not an object/,
      handler: (_q, r) => {
        json(r, 200, '['.repeat(1_000_000) + ']'.repeat(1_000_000));
      },
    },
    {
      name: 'wrong envelope: requests is an object',
      fails: true,
      logs: /is not an object with a "requests" array/,
      handler: (_q, r) => {
        json(r, 200, { requests: { 0: entry('victim') } });
      },
    },
    {
      name: 'wrong envelope: null',
      fails: true,
      logs: /is not an object with a "requests" array/,
      handler: (_q, r) => {
        json(r, 200, 'null');
      },
    },
    {
      name: 'wrong envelope: a top-level array of requests',
      fails: true,
      logs: /is not an object with a "requests" array/,
      handler: (_q, r) => {
        json(r, 200, all);
      },
    },
    {
      name: 'wrong envelope: requests hidden in __proto__',
      fails: true,
      logs: /is not an object with a "requests" array/,
      handler: (_q, r) => {
        json(r, 200, `{"__proto__":{"requests":${JSON.stringify(all)}}}`);
      },
    },
    {
      name: 'wrong types in every field',
      fails: false,
      logs: /skipping an invalid purge request/,
      handler: (_q, r) => {
        json(r, 200, {
          requests: [
            entry(42),
            entry(['victim']),
            entry({ toString: 'victim' }),
            entry(null),
            entry('victim', { before: 0 }),
            entry('victim', { before: null }),
            entry('victim', { provisionerId: 7 }),
            entry('victim', { workerType: ['x'] }),
            'victim',
            7,
            null,
            ['victim', BEFORE],
          ],
        });
      },
    },
    {
      name: 'missing fields',
      fails: false,
      logs: /skipping an invalid purge request/,
      handler: (_q, r) => {
        const without = (field: string) => Object.fromEntries(Object.entries(entry('victim')).filter(([key]) => key !== field));
        json(r, 200, { requests: [without('cacheName'), without('before'), without('provisionerId'), without('workerType'), {}] });
      },
    },
    {
      name: 'a cacheName hidden in __proto__',
      fails: false,
      logs: /skipping an invalid purge request/,
      handler: (_q, r) => {
        json(
          r,
          200,
          `{"requests":[{"provisionerId":"${POOL_PARTS.provisionerId}","workerType":"${POOL_PARTS.workerType}","before":"${BEFORE}","__proto__":{"cacheName":"victim"}}]}`,
        );
      },
    },
    {
      name: 'invalid before',
      fails: false,
      logs: /before: not an ISO 8601 date-time/,
      handler: (_q, r) => {
        json(r, 200, {
          requests: [
            'yesterday',
            '',
            'NaN',
            'Infinity',
            '2024-13-45T99:00:00Z',
            '2024-05-01T12:00:00',
            '+275760-09-13T00:00:00.000Z',
            '-000001-01-01T00:00:00Z',
            '1714564800',
            '2024-05-01T12:00:00Z\n',
            ' 2024-05-01T12:00:00Z',
          ].map((b) => entry('victim', { before: b })),
        });
      },
    },
    {
      name: 'requests for other worker pools',
      fails: false,
      logs: /for worker pool .*, not test-prov\/test-worker/,
      handler: (_q, r) => {
        json(r, 200, {
          requests: [
            entry('victim', { workerType: 'other' }),
            entry('a/b', { provisionerId: 'elsewhere' }),
            entry('..', { provisionerId: 'test-prov/test-worker', workerType: '' }),
            entry('victim', { provisionerId: 'TEST-PROV' }),
          ],
        });
      },
    },
    {
      name: 'cache names that try to forge log lines',
      fails: false,
      logs: /purged cache/,
      purges: [FORGER],
      handler: (_q, r) => {
        json(r, 200, { requests: [entry(FORGER), entry('\u001b[2J\rFORGED')] });
      },
    },
    {
      name: 'a 5 MB cache name',
      fails: false,
      logs: /cannot exist on disk/,
      handler: (_q, r) => {
        json(r, 200, { requests: [entry('v'.repeat(5 * 1024 * 1024))] });
      },
    },
    {
      name: 'a hostile Date header',
      fails: false,
      logs: /clock differs from the purge-cache service's/,
      handler: (_q, r) => {
        json(r, 200, { requests: [] }, { date: 'Tue, 01 Jan 2999 00:00:00 GMT' });
      },
    },
    ...[301, 302, 303, 307, 308].map((status): Mode => ({
      name: `a ${status} redirect to a server that would purge`,
      fails: true,
      logs: new RegExp(`redirect \\(${status}\\).*not followed`),
      handler: (_q, r) => {
        r.writeHead(status, { location: `${lureUrl}/api/purge-cache/v1/purge-cache/${POOL}` });
        r.end();
      },
    })),
    {
      name: 'a 50 MB body with its Content-Length',
      fails: true,
      logs: /larger than 33554432 bytes/,
      handler: (_q, r) => {
        stream(r, `{"requests":[${JSON.stringify(entry('victim'))},`, 50 * 1024 * 1024, { 'content-length': String(50 * 1024 * 1024 + 2) });
      },
    },
    {
      name: 'a 50 MB chunked body',
      fails: true,
      logs: /larger than 33554432 bytes/,
      handler: (_q, r) => {
        stream(r, `{"requests":[${JSON.stringify(entry('victim'))},`, 50 * 1024 * 1024);
      },
    },
    {
      name: 'an endless body',
      fails: true,
      logs: /larger than 33554432 bytes/,
      handler: (_q, r) => {
        stream(r, `{"requests":[${JSON.stringify(entry('victim'))},`, Infinity);
      },
    },
    {
      name: 'a 500 with an endless error body (retried, then given up)',
      fails: true,
      logs: /gave up after 6 attempts/,
      handler: (_q, r) => {
        r.writeHead(500, { 'content-type': 'application/json' });
        const chunk = Buffer.alloc(256 * 1024, ' ');
        const pump = (): void => {
          while (!r.destroyed) if (!r.write(chunk)) return void r.once('drain', pump);
        };
        pump();
      },
    },
    {
      name: '16 million tiny invalid entries (32 MB, just under the cap)',
      fails: false,
      logs: /skipping \d+ more invalid purge requests/,
      handler: (_q, r) => {
        const n = Math.floor((32 * 1024 * 1024 - 64) / 2);
        json(r, 200, `{"requests":[${'0,'.repeat(n - 1)}0]}`);
      },
    },
    {
      name: '100,000 valid requests (12 MB)',
      fails: false,
      logs: /purged cache/,
      purges: ['hundredk-target'],
      handler: (_q, r) => {
        json(r, 200, { requests: [...Array.from({ length: 99_999 }, (_, i) => entry(`cache-name-number-${i}-not-on-this-worker`)), entry('hundredk-target')] });
      },
    },
  ];
}
