/**
 * Taskcluster credentials and the Hawk header they sign. Everything secret is
 * registered for scrubbing the moment it is read, and no message here ever
 * quotes a credential's value, only the name of the setting it came from.
 */
import { ConfigError } from '../../errors.js';
import { registerSecret } from '../../secrets.js';

export interface Credentials {
  clientId: string;
  accessToken: string;
  /** TASKCLUSTER_CERTIFICATE: the JSON string, or the parsed object. */
  certificate?: string | object;
}

/** Credentials checked and ready to sign with; `ext` is the Hawk ext for temporary credentials. */
export interface SigningCredentials {
  clientId: string;
  accessToken: string;
  ext: string | undefined;
}

export function prepareCredentials(creds: Credentials): SigningCredentials {
  // Register first, so that even a failure below cannot leak them into a log.
  registerSecret(creds.accessToken);
  if (typeof creds.certificate === 'string') registerSecret(creds.certificate);

  if (typeof creds.clientId !== 'string' || creds.clientId === '') {
    throw new ConfigError('TASKCLUSTER_CLIENT_ID is empty; set it together with TASKCLUSTER_ACCESS_TOKEN, or neither for anonymous access', 'clientId');
  }
  if (typeof creds.accessToken !== 'string' || creds.accessToken === '') {
    throw new ConfigError('TASKCLUSTER_ACCESS_TOKEN is empty; set it together with TASKCLUSTER_CLIENT_ID, or neither for anonymous access', 'accessToken');
  }

  let ext: string | undefined;
  // An empty certificate means "none", as in Taskcluster's own clients.
  if (creds.certificate !== undefined && creds.certificate !== '') {
    const certificate = parseCertificate(creds.certificate);
    registerSecret(JSON.stringify(certificate));
    // The ext travels in the Authorization header only, but it embeds the certificate.
    ext = Buffer.from(JSON.stringify({ certificate })).toString('base64');
    registerSecret(ext);
  }
  return { clientId: creds.clientId, accessToken: creds.accessToken, ext };
}

function parseCertificate(certificate: string | object): object {
  let parsed: unknown = certificate;
  if (typeof certificate === 'string') {
    try {
      parsed = JSON.parse(certificate);
    } catch {
      // Never echo the value: it is a credential, even when malformed.
      throw new ConfigError(
        "TASKCLUSTER_CERTIFICATE is not valid JSON; copy it exactly as issued (it is the JSON of the temporary credentials' certificate)",
        'certificate',
      );
    }
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new ConfigError('TASKCLUSTER_CERTIFICATE must be a JSON object', 'certificate');
  }
  return parsed;
}

/** Loaded on the first signed request: anonymous and proxied agents never need it. */
let hawkModule: Promise<Hawk> | undefined;
type Hawk = typeof import('hawk');

/** hawk is CommonJS: its exports are the namespace's default under a bundler, and also named under Node. */
async function loadHawk(): Promise<Hawk> {
  const loaded = (await import('hawk')) as Hawk & { default?: Hawk };
  return loaded.default ?? loaded;
}

/** The Authorization header for one request; sign each attempt anew (Hawk timestamps and nonces). */
export async function hawkAuthorization(creds: SigningCredentials, url: string, method: string): Promise<string> {
  const hawk = await (hawkModule ??= loadHawk());
  const { header } = hawk.client.header(url, method, {
    credentials: { id: creds.clientId, key: creds.accessToken, algorithm: 'sha256' },
    ...(creds.ext !== undefined ? { ext: creds.ext } : {}),
  });
  return header;
}
