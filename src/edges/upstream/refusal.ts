/**
 * Turning a non-2xx answer into an error a person can act on: what was
 * refused, the service's own code and message, and what to change. For 403
 * that means the exact scope to grant.
 */
import { UpstreamHttpError } from '../../errors.js';
import { purgeCacheScope, purgeRequestsScope, workerPoolId, type WorkerPool } from '../../core/model.js';
import { preview, serviceError } from './response.js';
import type { RawResponse } from './transport.js';

export type CallKind =
  { kind: 'purgeRequests'; pool: WorkerPool } | { kind: 'purgeCache'; pool: WorkerPool; cacheName: string } | { kind: 'allPurgeRequests' } | { kind: 'ping' };

export interface RefusalContext {
  /** Whose credentials signed the request. */
  credentials: 'own' | 'proxy' | 'anonymous';
  /** The Authorization header sent, so an echo of it can be cut out of the message. */
  authorization: string | undefined;
  retryable: boolean;
}

/** The scope the call needs, as the service checks it. */
export function requiredScope(call: CallKind): string | undefined {
  switch (call.kind) {
    case 'purgeRequests':
      return purgeRequestsScope(workerPoolId(call.pool));
    case 'purgeCache':
      return purgeCacheScope(workerPoolId(call.pool), call.cacheName);
    case 'allPurgeRequests':
      return 'purge-cache:all-purge-requests';
    case 'ping':
      return undefined;
  }
}

export function describeRefusal(raw: RawResponse, where: string, call: CallKind, ctx: RefusalContext): UpstreamHttpError {
  const { status } = raw;
  if (status >= 300 && status < 400) {
    const location = raw.headers.location;
    const target = typeof location === 'string' ? safeLocation(location) : 'an unnamed location';
    return new UpstreamHttpError(
      `the purge-cache service answered ${where} with a redirect (${status}) to ${target}, which is not followed; ` +
        "check --root-url (scheme, host and path must be the deployment's exact root URL)",
      status,
      undefined,
      undefined,
      false,
    );
  }
  const service = serviceError(raw);
  let message = service.message ?? '(no message)';
  if (ctx.authorization) {
    // A service (or something in front of it) echoing our signature must not put it in a log.
    message = message.split(ctx.authorization).join('[REDACTED]');
    const mac = /mac="([^"]+)"/.exec(ctx.authorization)?.[1];
    if (mac) message = message.split(mac).join('[REDACTED]');
  }
  const label = service.code ? `${status} ${service.code}` : String(status);
  const hint = hintFor(status, call, ctx);
  return new UpstreamHttpError(
    `purge-cache service refused ${where} (${label}): ${message}${hint ? `\n${hint}` : ''}`,
    status,
    service.code,
    service.message,
    ctx.retryable,
  );
}

function hintFor(status: number, call: CallKind, ctx: RefusalContext): string | undefined {
  if (status === 401) {
    return ctx.credentials === 'proxy'
      ? 'Check the credentials taskcluster-proxy signs with.'
      : "Check TASKCLUSTER_CLIENT_ID and TASKCLUSTER_ACCESS_TOKEN (and TASKCLUSTER_CERTIFICATE for temporary credentials), and that this machine's clock is right.";
  }
  if (status === 403) {
    const scope = requiredScope(call);
    const who =
      ctx.credentials === 'anonymous'
        ? 'No credentials are configured (anonymous access); set TASKCLUSTER_CLIENT_ID and TASKCLUSTER_ACCESS_TOKEN for a client that has'
        : ctx.credentials === 'proxy'
          ? 'The credentials taskcluster-proxy signs with need'
          : "The agent's client needs";
    if (!scope) return undefined;
    const note = call.kind === 'purgeRequests' ? ' (note the two colons)' : '';
    return `${who} the scope ${preview(scope, 300)}${note}.`;
  }
  if (status === 404) return 'Check --root-url: is the purge-cache service deployed there?';
  if (status === 429) return 'The service is rate-limiting this client.';
  if (status >= 500) return 'The service failed; it is usually temporary.';
  return undefined;
}

/** A redirect target for a message: no credentials, no control characters, bounded length. */
function safeLocation(location: string): string {
  try {
    const url = new URL(location);
    url.username = '';
    url.password = '';
    return preview(url.href, 200);
  } catch {
    return preview(location, 200);
  }
}
