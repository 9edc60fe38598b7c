/**
 * The service's answers are untrusted input: the agent deletes directories on
 * the strength of them. The envelope must be right or the whole call fails;
 * each purge request is then checked on its own, and a bad one is skipped
 * with a reason instead of spoiling the good ones.
 */
import * as z from '../../validation.js';
import type { Issue } from '../../validation.js';
import { UpstreamResponseError } from '../../errors.js';
import type { PurgeRequest, WorkerPool } from '../../core/model.js';
import { workerPoolId } from '../../core/model.js';
import { scrub } from '../../secrets.js';
import type { RawResponse } from './transport.js';

export interface InvalidEntry {
  index: number;
  reason: string;
}

/**
 * ISO 8601 date-time with an explicit zone, as the service writes it
 * (`Date#toJSON`). Looser forms (`"March 7"`, no zone) would be read in the
 * agent's local time, so a purge could hinge on the worker's TZ: refuse them.
 */
const ISO_DATE_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:\d{2})$/;

export function isServiceTimestamp(value: string): boolean {
  return ISO_DATE_TIME.test(value) && Number.isFinite(Date.parse(value));
}

const entrySchema = z.object({
  provisionerId: z.string(),
  workerType: z.string(),
  cacheName: z.string(),
  before: z.string().check(z.refine(isServiceTimestamp, { error: 'not an ISO 8601 date-time with a time zone' })),
});

/**
 * The requests array is checked to be an array, not copied: z.array() would
 * copy every element, and an answer at the size cap can hold 16 million of them
 * (each entry is validated on its own below).
 */
const entriesArray = z.custom<unknown[]>((value) => Array.isArray(value), { error: 'expected an array' });
const purgeRequestsSchema = z.object({ requests: entriesArray });
const listSchema = z.object({
  requests: entriesArray,
  continuationToken: z.nullish(z.string()),
});
const pingSchema = z.object({ alive: z.boolean(), uptime: z.number() });

export function parseJson(raw: RawResponse, where: string): unknown {
  const text = raw.body.toString('utf8');
  try {
    return JSON.parse(text);
  } catch {
    const type = raw.headers['content-type'] ?? 'no content-type';
    throw new UpstreamResponseError(
      `the purge-cache service's answer to ${where} is not JSON (${type}, starts ${JSON.stringify(preview(text))}); ` +
        'check that --root-url points at a Taskcluster deployment',
    );
  }
}

function envelope<T>(schema: z.ZodMiniType<T>, body: unknown, where: string, expected: string): T {
  const result = schema.safeParse(body);
  if (!result.success) {
    throw new UpstreamResponseError(`the purge-cache service's answer to ${where} is not ${expected}: ${describeIssues(result.error.issues)}`);
  }
  return result.data;
}

/**
 * Invalid entries kept (with their reasons) per answer; the rest are only
 * counted. A 32 MiB answer of `0,0,0,…` holds 16 million entries: keeping a
 * reason object for each took the daemon to 1.7 GB.
 */
export const MAX_INVALID_KEPT = 1000;

function validateEntries(
  entries: unknown[],
  accept: (r: PurgeRequest) => string | undefined,
): { requests: PurgeRequest[]; invalid: InvalidEntry[]; invalidCount: number } {
  const requests: PurgeRequest[] = [];
  const invalid: InvalidEntry[] = [];
  let invalidCount = 0;
  // The reason is worked out only for entries that are kept.
  const skip = (index: number, reason: () => string): void => {
    invalidCount++;
    if (invalid.length < MAX_INVALID_KEPT) invalid.push({ index, reason: reason() });
  };
  entries.forEach((entry, index) => {
    if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) {
      skip(index, () => 'entry is not an object');
      return;
    }
    const result = entrySchema.safeParse(entry);
    if (!result.success) {
      skip(index, () => describeIssues(result.error.issues));
      return;
    }
    // A fresh object: unknown fields of hostile input go no further.
    const { provisionerId, workerType, cacheName, before } = result.data;
    const request = { provisionerId, workerType, cacheName, before };
    const refusal = accept(request);
    if (refusal) skip(index, () => refusal);
    else requests.push(request);
  });
  return { requests, invalid, invalidCount };
}

export function validatePurgeRequests(body: unknown, pool: WorkerPool, where: string) {
  const { requests } = envelope(purgeRequestsSchema, body, where, 'an object with a "requests" array');
  return validateEntries(requests, (r) =>
    r.provisionerId === pool.provisionerId && r.workerType === pool.workerType
      ? undefined
      : `for worker pool ${preview(`${r.provisionerId}/${r.workerType}`)}, not ${workerPoolId(pool)}`,
  );
}

export function validateListPage(body: unknown, where: string) {
  const page = envelope(listSchema, body, where, 'an object with a "requests" array');
  return { ...validateEntries(page.requests, () => undefined), continuationToken: page.continuationToken ?? undefined };
}

export function validatePing(body: unknown, where: string): { alive: boolean; uptime: number } {
  const { alive, uptime } = envelope(pingSchema, body, where, '{"alive": boolean, "uptime": number}');
  return { alive, uptime };
}

/** The service's `{code, message}` from an error body, when it has them. */
export function serviceError(raw: RawResponse): { code?: string; message?: string } {
  let body: unknown;
  try {
    body = JSON.parse(raw.body.toString('utf8'));
  } catch {
    return {};
  }
  if (typeof body !== 'object' || body === null) return {};
  const { code, message } = body as { code?: unknown; message?: unknown };
  return {
    ...(typeof code === 'string' ? { code: preview(code, 100) } : {}),
    ...(typeof message === 'string' ? { message: scrub(message).slice(0, 4000) } : {}),
  };
}

function describeIssues(issues: Issue[]): string {
  return issues
    .slice(0, 5)
    .map((i) => `${i.path.length ? i.path.join('.') : 'value'}: ${i.message}`)
    .join('; ');
}

/** A short, printable rendering of untrusted text for messages and logs. */
export function preview(text: string, max = 80): string {
  // \p{Cc} is exactly U+0000–U+001F and U+007F–U+009F: the C0 and C1 controls and DEL.
  const clean = scrub(text).replace(/\p{Cc}/gu, '?');
  return clean.length > max ? `${clean.slice(0, max)}…` : clean;
}
