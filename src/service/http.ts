/** Request and response plumbing for `serve`: Taskcluster-style JSON errors, bounded bodies, no caching. */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { HttpAnswerError } from '../errors.js';

export const badRequest = (message: string) => new HttpAnswerError(400, 'InvalidRequestArguments', message);
export const notFound = (message = 'No such API method; the purge-cache API is under /api/purge-cache/v1') =>
  new HttpAnswerError(404, 'ResourceNotFound', message);

const COMMON_HEADERS = {
  // Always fresh: unlike upstream, `serve` never caches its answers, and nothing in between may.
  'cache-control': 'no-store',
  'x-content-type-options': 'nosniff',
};

export function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    ...COMMON_HEADERS,
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(text),
  });
  res.end(text);
}

export function sendNoContent(res: ServerResponse): void {
  res.writeHead(204, COMMON_HEADERS);
  res.end();
}

export function sendError(res: ServerResponse, req: IncomingMessage, err: HttpAnswerError, path: string): void {
  // requestInfo as Taskcluster sends it, minus params and payload: nothing a caller didn't already know.
  sendJson(res, err.status, {
    code: err.code,
    message: err.message,
    requestInfo: { method: req.method, path, time: new Date().toISOString() },
  });
}

/** The request body as text, refusing more than `limit` bytes. */
export async function readBody(req: IncomingMessage, limit: number): Promise<string> {
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > limit) throw tooLarge(limit);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > limit) throw tooLarge(limit);
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

const tooLarge = (limit: number) => new HttpAnswerError(413, 'PayloadTooLarge', `request body exceeds ${limit} bytes`);
