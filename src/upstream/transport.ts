/**
 * One HTTP attempt, bounded in time and in memory. undici's headers/body
 * timeouts are idle timeouts (a server dribbling a byte a second never trips
 * them), so an AbortSignal deadline covers the whole attempt, body included;
 * and the body is counted as it arrives so a huge answer is cut off rather
 * than buffered.
 */
import { request, type Dispatcher } from 'undici';
import type { IncomingHttpHeaders } from 'node:http';
import { AgentError, UpstreamNetworkError, UpstreamResponseError, errnoCode } from '../errors.js';
import { scrub } from '../secrets.js';
import { describeUrl } from './urls.js';

/** Error bodies only need their {code, message}; beyond this they are cut, not failed. */
const ERROR_BODY_LIMIT = 64 * 1024;

export interface Outgoing {
  method: 'GET' | 'POST';
  url: string;
  headers: Record<string, string>;
  body?: string;
}

export interface RawResponse {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

export interface TransportOptions {
  timeoutMs: number;
  maxResponseBytes: number;
  dispatcher: Dispatcher | undefined;
  /** Abandons the attempt at once (the agent is stopping). */
  signal?: AbortSignal | undefined;
}

export const ABANDONED = 'abandoned: the agent is stopping (the cursor holds, so nothing is missed)';

export async function sendOnce(out: Outgoing, opts: TransportOptions): Promise<RawResponse> {
  const where = `${out.method} ${describeUrl(out.url)}`;
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), opts.timeoutMs);
  const abandon = (): void => controller.abort();
  opts.signal?.addEventListener('abort', abandon, { once: true });
  try {
    const res = await request(out.url, {
      method: out.method,
      headers: out.headers,
      body: out.body,
      signal: controller.signal,
      headersTimeout: opts.timeoutMs,
      bodyTimeout: opts.timeoutMs,
      dispatcher: opts.dispatcher,
    });
    const headers = res.headers as IncomingHttpHeaders;
    if (res.statusCode >= 300 && res.statusCode < 400) {
      // Not followed, so its body is of no use.
      discard(res.body);
      return { status: res.statusCode, headers, body: Buffer.alloc(0) };
    }
    const ok = res.statusCode >= 200 && res.statusCode < 300;
    const body = await readCapped(res.body, ok ? opts.maxResponseBytes : ERROR_BODY_LIMIT, ok, headers, where);
    return { status: res.statusCode, headers, body };
  } catch (err) {
    if (opts.signal?.aborted) throw new UpstreamNetworkError(`${where}: ${ABANDONED}`);
    if (controller.signal.aborted) {
      throw new UpstreamNetworkError(
        `the purge-cache service did not answer ${where} within ${opts.timeoutMs} ms; ` +
          'check that it is up and reachable (a proxy or firewall may be stalling the connection)',
      );
    }
    if (err instanceof AgentError) throw err;
    throw new UpstreamNetworkError(
      `could not reach the purge-cache service for ${where}: ${describeNetworkError(err)}; ` +
        'check --root-url, DNS and the network',
      { cause: err },
    );
  } finally {
    clearTimeout(timer);
    opts.signal?.removeEventListener('abort', abandon);
  }
}

async function readCapped(
  body: AsyncIterable<Buffer> & Discardable,
  limit: number,
  failWhenOver: boolean,
  headers: IncomingHttpHeaders,
  where: string,
): Promise<Buffer> {
  const tooLarge = () =>
    new UpstreamResponseError(
      `the purge-cache service's answer to ${where} is larger than ${limit} bytes; refusing to read it ` +
        '(raise maxResponseBytes only if the service really holds that many purge requests)',
    );
  const declared = Number(headers['content-length']);
  if (failWhenOver && Number.isFinite(declared) && declared > limit) {
    discard(body);
    throw tooLarge();
  }
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body) {
    if (size + chunk.length > limit) {
      discard(body);
      if (failWhenOver) throw tooLarge();
      chunks.push(chunk.subarray(0, limit - size));
      size = limit;
      break;
    }
    chunks.push(chunk);
    size += chunk.length;
  }
  return Buffer.concat(chunks, size);
}

interface Discardable {
  on(event: 'error', listener: (err: Error) => void): unknown;
  destroy(): unknown;
}

/** Stops reading a body. undici reports the abort as an 'error' event: expected here, so swallowed. */
function discard(body: Discardable): void {
  body.on('error', () => undefined);
  body.destroy();
}

function describeNetworkError(err: unknown): string {
  const code = errnoCode(err) ?? errnoCode((err as { cause?: unknown } | null)?.cause);
  const message = err instanceof Error ? err.message : String(err);
  return scrub(code && !message.includes(code) ? `${code} ${message}` : message);
}
