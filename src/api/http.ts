/**
 * Plumbing for the local API: JSON answers, `{code, message}` errors, bounded
 * bodies parsed strictly, and raw path segments (never normalised: a cache may
 * be named `..`, sent as `%2E%2E`).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type * as z from '../validation.js';
import type { Issue } from '../validation.js';
import { HttpAnswerError } from '../errors.js';

export const badRequest = (message: string) => new HttpAnswerError(400, 'InvalidRequestArguments', message);
export const notFound = (message: string) => new HttpAnswerError(404, 'ResourceNotFound', message);

/** Bodies above this are refused with 413: nothing the API takes comes near it. */
export const BODY_LIMIT = 64 * 1024;

const COMMON_HEADERS = {
  'cache-control': 'no-store',
  'x-content-type-options': 'nosniff',
};

export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    ...COMMON_HEADERS,
    ...headers,
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(text),
  });
  res.end(text);
}

export function sendText(res: ServerResponse, status: number, text: string, contentType: string): void {
  res.writeHead(status, { ...COMMON_HEADERS, 'content-type': contentType, 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

export function sendNoContent(res: ServerResponse): void {
  res.writeHead(204, COMMON_HEADERS);
  res.end();
}

export function sendError(res: ServerResponse, err: HttpAnswerError): void {
  sendJson(res, err.status, { code: err.code, message: err.message }, err.headers);
}

/**
 * The request body as text, at most `limit` bytes. A larger body is drained
 * (not stored) and refused with 413 — draining rather than resetting the
 * connection lets the client read the answer. The server's request timeout
 * bounds how long a client may keep sending.
 */
export function readBody(req: IncomingMessage, limit = BODY_LIMIT): Promise<string> {
  const tooLarge = new HttpAnswerError(413, 'PayloadTooLarge', `the request body exceeds ${limit} bytes`);
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > limit) {
    req.resume();
    return Promise.reject(tooLarge);
  }
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size <= limit) chunks.push(chunk);
    });
    req.on('end', () => {
      if (size > limit) reject(tooLarge);
      else resolve(Buffer.concat(chunks).toString('utf8'));
    });
    req.on('error', reject);
  });
}

/** Parse a JSON body against a strict schema: malformed JSON and unknown or invalid fields are 400. An empty body is `{}`. */
export function parseBody<S extends z.ZodMiniType>(text: string, schema: S): z.infer<S> {
  let value: unknown = {};
  if (text.trim() !== '') {
    try {
      value = JSON.parse(text);
    } catch (err) {
      throw new HttpAnswerError(400, 'MalformedPayload', `the request body is not valid JSON: ${(err as Error).message}`);
    }
  }
  const parsed = schema.safeParse(value);
  if (!parsed.success) throw new HttpAnswerError(400, 'InputValidationError', `invalid request body: ${describeIssues(parsed.error)}`);
  return parsed.data;
}

/** Validate query parameters strictly: an unknown parameter is a 400 too (a typo must not be silently ignored). */
export function parseQuery<S extends z.ZodMiniType>(query: URLSearchParams, schema: S): z.infer<S> {
  const value: Record<string, string> = {};
  for (const [key, v] of query) {
    if (key in value) throw badRequest(`query parameter "${key}" is given more than once`);
    value[key] = v;
  }
  const parsed = schema.safeParse(value);
  if (!parsed.success) throw badRequest(`invalid query: ${describeIssues(parsed.error)}`);
  return parsed.data;
}

function describeIssues(error: { issues: Issue[] }): string {
  return error.issues
    .map((issue) => {
      const where = issue.path.length > 0 ? issue.path.join('.') : '';
      if (issue.code === 'unrecognized_keys') return `unknown field(s) ${issue.keys.map((k) => JSON.stringify(k)).join(', ')}${where ? ` in ${where}` : ''}`;
      return `${where || '(body)'}: ${issue.message}`;
    })
    .join('; ');
}

/**
 * The request target split into decoded path segments and a query, without
 * URL normalisation (which would turn `/v1/caches/%2E%2E` into `/v1/`).
 */
export function splitTarget(target: string): { segments: string[]; query: URLSearchParams; path: string } {
  let raw = target;
  // Absolute-form targets (`GET http://host/path`) are legal HTTP/1.1.
  const absolute = /^[a-z][a-z0-9+.-]*:\/\/[^/?#]*/i.exec(raw);
  if (absolute) raw = raw.slice(absolute[0].length) || '/';
  const hash = raw.indexOf('#');
  if (hash >= 0) raw = raw.slice(0, hash);
  const q = raw.indexOf('?');
  const path = q >= 0 ? raw.slice(0, q) : raw;
  const query = new URLSearchParams(q >= 0 ? raw.slice(q + 1) : '');
  if (!path.startsWith('/')) throw badRequest('the request target must be an absolute path');
  const parts = path.split('/').slice(1);
  // A trailing slash is tolerated: /v1/status/ is /v1/status.
  if (parts.length > 1 && parts[parts.length - 1] === '') parts.pop();
  const segments = parts.map((part) => {
    try {
      return decodeURIComponent(part);
    } catch {
      throw badRequest(`malformed percent-encoding in the path segment ${JSON.stringify(part)}`);
    }
  });
  return { segments, query, path };
}
