/**
 * Hawk authentication for `serve`, as Taskcluster's auth service does it:
 * permanent credentials from the clients file, temporary credentials whose
 * certificate rides in the Hawk `ext`, and `ext.authorizedScopes` narrowing.
 * Failures become 401s whose messages say what is wrong but quote no secret.
 */
import type { IncomingMessage } from 'node:http';
import { timingSafeEqual } from 'node:crypto';
import hawk from 'hawk';

import { isValidScope, satisfiesAll } from './scopes.js';
import { certificateSignature, MAX_CERTIFICATE_LIFETIME_MS, temporaryAccessToken } from './tempcreds.js';
import { HttpAnswerError, ServiceAuthError } from '../errors.js';

export interface ClientEntry {
  accessToken: string;
  scopes: string[];
}
export type Clients = Record<string, ClientEntry>;

/** Who made a request. Anonymous callers have no scopes. */
export interface Principal {
  clientId: string | null;
  scopes: string[];
}

export const ANONYMOUS: Principal = { clientId: null, scopes: [] };

/** Taskcluster allows 15 minutes of clock skew (clients' clocks drift; Hawk's 60 s default is too tight). */
const TIMESTAMP_SKEW_SEC = 15 * 60;
/** A certificate's start and expiry are checked with this much slack either way. */
const CERTIFICATE_SLACK_MS = 5 * 60 * 1000;

export async function authenticate(req: IncomingMessage, clients: Clients, now: number): Promise<Principal> {
  const header = req.headers.authorization;
  if (header === undefined) return ANONYMOUS;
  try {
    const { credentials } = await hawk.server.authenticate(
      req,
      (id) => {
        // Hawk hands over only the id; the ext (with any certificate) is in the same header.
        const { ext } = hawk.utils.parseAuthorizationHeader(header);
        return loadCredentials(clients, id, ext, now);
      },
      { timestampSkewSec: TIMESTAMP_SKEW_SEC, localtimeOffsetMsec: now - Date.now() },
    );
    const { user, scopes } = credentials as unknown as { user: string; scopes: string[] };
    return { clientId: user, scopes };
  } catch (err) {
    throw new HttpAnswerError(401, 'AuthenticationFailed', authFailureMessage(err));
  }
}

function authFailureMessage(err: unknown): string {
  const reason = err instanceof Error ? err.message : String(err);
  if (reason === 'Bad mac') {
    return 'Authentication failed: the Hawk signature does not match. Check the access token, and that the request reached the host and port the client signed for.';
  }
  if (reason === 'Stale timestamp') {
    return `Authentication failed: the Hawk timestamp is more than ${TIMESTAMP_SKEW_SEC / 60} minutes off the service's clock; fix the client's clock.`;
  }
  return `Authentication failed: ${reason}`;
}

function loadCredentials(clients: Clients, credentialName: string, rawExt: string | undefined, now: number) {
  const ext = rawExt ? parseExt(rawExt) : {};
  let issuerId = credentialName;
  const cert = ext.certificate;
  if (typeof cert === 'object' && cert !== null && 'issuer' in cert) {
    if (typeof cert.issuer !== 'string') throw new ServiceAuthError('ext.certificate.issuer must be a string');
    if (cert.issuer === credentialName) throw new ServiceAuthError('ext.certificate.issuer must differ from the supplied clientId');
    issuerId = cert.issuer;
  }
  // Own-property lookup only: a clientId of "__proto__" or "constructor" is just unknown.
  const client = Object.hasOwn(clients, issuerId) ? clients[issuerId] : undefined;
  if (!client) throw new ServiceAuthError(`unknown clientId ${JSON.stringify(issuerId.slice(0, 100))}`);

  let key = client.accessToken;
  let scopes = client.scopes;
  if (ext.certificate !== undefined) {
    const verified = verifyCertificate(ext.certificate, client, credentialName, issuerId, now);
    key = verified.key;
    scopes = verified.scopes;
  }
  if (ext.authorizedScopes !== undefined) {
    const narrowed = ext.authorizedScopes;
    if (!Array.isArray(narrowed) || !narrowed.every(isValidScope)) {
      throw new ServiceAuthError('ext.authorizedScopes must be an array of valid scopes');
    }
    if (!satisfiesAll(scopes, narrowed)) {
      throw new ServiceAuthError('the credentials do not satisfy every scope in ext.authorizedScopes');
    }
    scopes = narrowed;
  }
  return { key, algorithm: 'sha256' as const, user: credentialName, scopes };
}

function parseExt(raw: string): Record<string, unknown> {
  let ext: unknown;
  try {
    ext = JSON.parse(Buffer.from(raw, 'base64').toString('utf8'));
  } catch {
    throw new ServiceAuthError('failed to parse ext (it must be base64 of a JSON object)');
  }
  if (typeof ext !== 'object' || ext === null || Array.isArray(ext)) throw new ServiceAuthError('ext must be a JSON object');
  return ext as Record<string, unknown>;
}

function verifyCertificate(value: unknown, issuer: ClientEntry, credentialName: string, issuerId: string, now: number): { key: string; scopes: string[] } {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new ServiceAuthError('ext.certificate must be a JSON object');
  }
  const cert = value as Record<string, unknown>;
  if (cert.version !== 1) throw new ServiceAuthError('ext.certificate.version must be 1');
  if (typeof cert.seed !== 'string' || cert.seed.length !== 44) throw new ServiceAuthError('ext.certificate.seed must be a string of 44 characters');
  if (typeof cert.start !== 'number' || typeof cert.expiry !== 'number') {
    throw new ServiceAuthError('ext.certificate.start and .expiry must be numbers (ms since the epoch)');
  }
  if (!Array.isArray(cert.scopes) || !cert.scopes.every(isValidScope)) {
    throw new ServiceAuthError('ext.certificate.scopes must be an array of valid scopes');
  }
  if (cert.start > now + CERTIFICATE_SLACK_MS) throw new ServiceAuthError('ext.certificate.start is in the future');
  if (cert.expiry < now - CERTIFICATE_SLACK_MS) throw new ServiceAuthError('ext.certificate has expired');
  if (cert.expiry - cert.start > MAX_CERTIFICATE_LIFETIME_MS) throw new ServiceAuthError('ext.certificate cannot last longer than 31 days');
  if (cert.issuer === undefined && 'clientId' in cert) {
    throw new ServiceAuthError('ext.certificate.clientId must only be used with ext.certificate.issuer');
  }
  const scopes = cert.scopes;
  if (!satisfiesAll(issuer.scopes, scopes)) {
    throw new ServiceAuthError(`the certificate's issuer ${JSON.stringify(issuerId)} does not have every scope the certificate grants`);
  }
  const expected = certificateSignature(
    issuer.accessToken,
    { seed: cert.seed, start: cert.start, expiry: cert.expiry, scopes, ...(cert.issuer !== undefined ? { issuer: issuerId } : {}) },
    credentialName,
  );
  if (typeof cert.signature !== 'string' || !sameString(cert.signature, expected)) {
    throw new ServiceAuthError(
      cert.issuer !== undefined ? 'ext.certificate.signature is not valid, or the wrong clientId was given' : 'ext.certificate.signature is not valid',
    );
  }
  return { key: temporaryAccessToken(issuer.accessToken, cert.seed), scopes };
}

function sameString(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}
