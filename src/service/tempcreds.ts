/**
 * Taskcluster temporary credentials: a certificate signed with the issuing
 * client's access token, and an access token derived from it. The algorithm is
 * the one taskcluster-client's createTemporaryCredentials and Taskcluster's
 * auth service use, so credentials minted by either verify against `serve`.
 */
import { createHmac, randomBytes } from 'node:crypto';

export interface Certificate {
  version: 1;
  scopes: string[];
  start: number;
  expiry: number;
  seed: string;
  signature: string;
  issuer?: string;
}

export interface TemporaryCredentialsOptions {
  /** Names the temporary credentials; the issuer then goes in the certificate. */
  clientId?: string;
  /** The issuing (permanent) credentials. */
  credentials: { clientId: string; accessToken: string };
  scopes: string[];
  start: Date | number;
  expiry: Date | number;
}

export interface TemporaryCredentials {
  clientId: string;
  accessToken: string;
  /** JSON, as TASKCLUSTER_CERTIFICATE carries it. */
  certificate: string;
}

export const MAX_CERTIFICATE_LIFETIME_MS = 31 * 24 * 60 * 60 * 1000;

/**
 * The certificate's signature: base64 HMAC-SHA256, keyed with the issuer's
 * access token, over `version:1`, [`clientId:<name>`, `issuer:<issuer>`],
 * `seed:`, `start:`, `expiry:`, `scopes:` and one line per scope, joined by "\n".
 */
export function certificateSignature(
  issuerAccessToken: string,
  cert: Pick<Certificate, 'seed' | 'start' | 'expiry' | 'scopes' | 'issuer'>,
  credentialName: string,
): string {
  const lines = ['version:1'];
  if (cert.issuer !== undefined) lines.push(`clientId:${credentialName}`, `issuer:${cert.issuer}`);
  lines.push(`seed:${cert.seed}`, `start:${cert.start}`, `expiry:${cert.expiry}`, 'scopes:', ...cert.scopes);
  return createHmac('sha256', issuerAccessToken).update(lines.join('\n')).digest('base64');
}

/** The temporary access token: base64url, no padding, of HMAC-SHA256(issuer's token, seed). */
export function temporaryAccessToken(issuerAccessToken: string, seed: string): string {
  return createHmac('sha256', issuerAccessToken).update(seed).digest('base64url');
}

export function createTemporaryCredentials(opts: TemporaryCredentialsOptions): TemporaryCredentials {
  const start = typeof opts.start === 'number' ? opts.start : opts.start.getTime();
  const expiry = typeof opts.expiry === 'number' ? opts.expiry : opts.expiry.getTime();
  if (!Number.isFinite(start) || !Number.isFinite(expiry) || expiry < start) {
    throw new RangeError('temporary credentials need a valid start before their expiry');
  }
  if (expiry - start > MAX_CERTIFICATE_LIFETIME_MS) throw new RangeError('temporary credentials cannot last more than 31 days');
  const named = opts.clientId !== undefined;
  if (named && opts.clientId === opts.credentials.clientId) {
    throw new RangeError("named temporary credentials must have a name other than their issuer's");
  }
  const cert: Certificate = {
    version: 1,
    scopes: [...opts.scopes],
    start,
    expiry,
    // 44 characters, like two slugids: what the auth service expects.
    seed: randomBytes(33).toString('base64url'),
    signature: '',
    ...(named ? { issuer: opts.credentials.clientId } : {}),
  };
  const name = opts.clientId ?? opts.credentials.clientId;
  cert.signature = certificateSignature(opts.credentials.accessToken, cert, name);
  return {
    clientId: name,
    accessToken: temporaryAccessToken(opts.credentials.accessToken, cert.seed),
    certificate: JSON.stringify(cert),
  };
}
