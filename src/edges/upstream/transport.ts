/**
 * One HTTP attempt, bounded in time and in memory. A deadline covers the whole
 * attempt, body included (idle timeouts alone let a server dribbling a byte a
 * second hold a cycle forever), and the body is counted as it arrives so a
 * huge answer is cut off rather than buffered.
 *
 * Built on node:http/https: their parser is native, whereas undici (and the
 * global fetch built on it) compiles a WebAssembly parser in every process —
 * about 20 MB of resident memory and, at exit, a wait for that compilation —
 * which `once` and `exec`, started before every task, would pay each time.
 */
import { request as httpRequest, type IncomingHttpHeaders, type IncomingMessage } from 'node:http';
import { AgentError, UpstreamNetworkError, UpstreamResponseError, errnoCode } from '../../errors.js';
import { scrub } from '../../secrets.js';
import { describeUrl } from './urls.js';

/** Error bodies only need their {code, message}; beyond this they are cut, not failed. */
const ERROR_BODY_LIMIT = 64 * 1024;

export interface Outgoing {
  method: 'GET' | 'POST';
  url: string;
  headers: Record<string, string>;
  body?: string | undefined;
}

export interface RawResponse {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

export interface TransportOptions {
  timeoutMs: number;
  maxResponseBytes: number;
  /** Abandons the attempt at once (the agent is stopping). */
  signal?: AbortSignal | undefined;
}

export const ABANDONED = 'abandoned: the agent is stopping (the cursor holds, so nothing is missed)';

export async function sendOnce(out: Outgoing, opts: TransportOptions): Promise<RawResponse> {
  const where = `${out.method} ${describeUrl(out.url)}`;
  const controller = new AbortController();
  const timer = setTimeout(() => {
    controller.abort();
  }, opts.timeoutMs);
  const abandon = (): void => {
    controller.abort();
  };
  opts.signal?.addEventListener('abort', abandon, { once: true });
  try {
    const res = await exchange(out, controller.signal);
    const headers = res.headers;
    const status = res.statusCode ?? 0;
    if (status >= 300 && status < 400) {
      // Not followed, so its body is of no use.
      discard(res);
      return { status, headers, body: Buffer.alloc(0) };
    }
    const ok = status >= 200 && status < 300;
    const body = await readCapped(res, ok ? opts.maxResponseBytes : ERROR_BODY_LIMIT, ok, headers, where);
    return { status, headers, body };
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
      `could not reach the purge-cache service for ${where}: ${describeNetworkError(err)}; ` + 'check --root-url, DNS and the network',
      { cause: err },
    );
  } finally {
    clearTimeout(timer);
    opts.signal?.removeEventListener('abort', abandon);
  }
}

/** Send the request; resolve with the response once its head has arrived. The signal destroys both. */
async function exchange(out: Outgoing, signal: AbortSignal): Promise<IncomingMessage> {
  const url = new URL(out.url);
  // node:https (with TLS and crypto) is loaded only for an https URL: ~10 ms of start-up otherwise spent for nothing.
  const send = url.protocol === 'https:' ? (await import('node:https')).request : httpRequest;
  const headers: Record<string, string> = { ...out.headers };
  if (out.body !== undefined) headers['content-length'] = String(Buffer.byteLength(out.body));
  return await new Promise((resolve, reject) => {
    const req = send(url, { method: out.method, headers, signal });
    req.once('response', resolve);
    req.once('error', reject);
    req.end(out.body);
  });
}
async function readCapped(body: IncomingMessage, limit: number, failWhenOver: boolean, headers: IncomingHttpHeaders, where: string): Promise<Buffer> {
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
  // Without setEncoding() a response body yields Buffers.
  for await (const chunk of body as AsyncIterable<Buffer>) {
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

/** Stops reading a body. The abort may surface as an 'error' event: expected here, so swallowed. */
function discard(body: Discardable): void {
  body.on('error', () => undefined);
  body.destroy();
}

function describeNetworkError(err: unknown): string {
  const code = errnoCode(err) ?? errnoCode((err as { cause?: unknown } | null)?.cause);
  const message = err instanceof Error ? err.message : String(err);
  return scrub(code && !message.includes(code) ? `${code} ${message}` : message);
}
