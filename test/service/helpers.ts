/** Raw HTTP against serve (real requests on 127.0.0.1), optionally Hawk-signed. */
import hawk from 'hawk';
import { request } from 'undici';
import type { Clock } from '../../src/edges/clock.js';

export interface Signer {
  id: string;
  key: string;
  ext?: object;
  /** Hawk timestamp in seconds, to test skew. */
  timestamp?: number;
}

export interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
  // Tests poke into varied JSON shapes; strict typing here would only add casts.
  json: any;
}

export async function call(
  base: string,
  path: string,
  opts: { method?: 'GET' | 'POST' | 'PUT' | 'DELETE'; body?: string; headers?: Record<string, string>; sign?: Signer } = {},
): Promise<Reply> {
  const url = `${base}/api/purge-cache/v1${path}`;
  const method = opts.method ?? (opts.body === undefined ? 'GET' : 'POST');
  const headers: Record<string, string> = { ...opts.headers };
  if (opts.body !== undefined) headers['content-type'] ??= 'application/json';
  if (opts.sign) {
    headers.authorization = hawk.client.header(url, method, {
      credentials: { id: opts.sign.id, key: opts.sign.key, algorithm: 'sha256' },
      ...(opts.sign.ext ? { ext: Buffer.from(JSON.stringify(opts.sign.ext)).toString('base64') } : {}),
      ...(opts.sign.timestamp !== undefined ? { timestamp: opts.sign.timestamp } : {}),
    }).header;
  }
  const res = await request(url, { method, headers, ...(opts.body !== undefined ? { body: opts.body } : {}) });
  const text = await res.body.text();
  let json: unknown;
  try {
    json = text ? JSON.parse(text) : undefined;
  } catch {
    json = undefined;
  }
  return { status: res.statusCode, headers: res.headers, text, json };
}

export function manualClock(start: number): Clock & { set(ms: number): void; advance(ms: number): void } {
  let now = start;
  let mono = 0;
  return {
    now: () => now,
    monotonic: () => mono,
    set: (ms) => void (now = ms),
    advance: (ms) => {
      now += ms;
      mono += ms;
    },
  };
}

export const purge = (base: string, pool: string, cacheName: string, sign?: Signer) =>
  call(base, `/purge-cache/${pool}`, { body: JSON.stringify({ cacheName }), ...(sign ? { sign } : {}) });
