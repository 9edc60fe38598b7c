/** serve's Hawk verification: plain and temporary credentials, authorizedScopes, `*` scopes, and every way to fail. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTemporaryCredentials, startService, type RunningService } from '../../src/service/index.js';
import { certificateSignature } from '../../src/service/tempcreds.js';
import { call, purge, type Signer } from './helpers.js';

const clients = {
  admin: { accessToken: 'admin-token-aaaaaaaaaaaa', scopes: ['*'] },
  reader: { accessToken: 'reader-token-bbbbbbbbbbb', scopes: ['purge-cache:purge-requests::p/*'] },
  purger: { accessToken: 'purger-token-ccccccccccc', scopes: ['purge-cache:p/w:build-*'] },
  lister: { accessToken: 'lister-token-ddddddddddd', scopes: ['purge-cache:all-purge-requests'] },
};
const as = (id: keyof typeof clients, extra: Partial<Signer> = {}): Signer => ({ id, key: clients[id].accessToken, ...extra });
const HOUR = 60 * 60 * 1000;

let svc: RunningService;
let url: string;
beforeAll(async () => {
  svc = await startService({ clients });
  url = svc.url;
});
afterAll(() => svc.close());

function temp(issuer: 'admin' | 'reader' | 'purger', scopes: string[], opts: { clientId?: string; start?: number; expiry?: number } = {}) {
  const now = Date.now();
  const creds = createTemporaryCredentials({
    ...(opts.clientId ? { clientId: opts.clientId } : {}),
    credentials: { clientId: issuer, accessToken: clients[issuer].accessToken },
    scopes,
    start: opts.start ?? now,
    expiry: opts.expiry ?? now + HOUR,
  });
  return { creds, signer: { id: creds.clientId, key: creds.accessToken, ext: { certificate: JSON.parse(creds.certificate) } } };
}

function expectAuthFailure(res: { status: number; json: { code: string; message: string } }, text: RegExp) {
  expect(res.status).toBe(401);
  expect(res.json.code).toBe('AuthenticationFailed');
  expect(res.json.message).toMatch(text);
  for (const { accessToken } of Object.values(clients)) expect(res.json.message).not.toContain(accessToken);
}

describe('serve: scopes', () => {
  it('checks purge-cache:purge-requests::<pool> (two colons), with * as a prefix match', async () => {
    expect((await call(url, '/purge-cache/p/w', { sign: as('reader') })).status).toBe(200);
    expect((await call(url, '/purge-cache/p%2Fother', { sign: as('reader') })).status).toBe(200);
    const res = await call(url, '/purge-cache/q/w', { sign: as('reader') });
    expect(res.status).toBe(403);
    expect(res.json.code).toBe('InsufficientScopes');
    expect(res.json.message).toContain('purge-cache:purge-requests::q/w');
    expect(res.json.message).toContain('Client ID reader');
  });

  it('checks purge-cache:<pool>:<cacheName> for purgeCache', async () => {
    expect((await purge(url, 'p/w', 'build-linux', as('purger'))).status).toBe(204);
    const res = await purge(url, 'p/w', 'test-linux', as('purger'));
    expect(res.status).toBe(403);
    expect(res.json.message).toContain('purge-cache:p/w:test-linux');
  });

  it("checks purge-cache:all-purge-requests for allPurgeRequests (the scope in Taskcluster's API reference)", async () => {
    expect((await call(url, '/purge-cache/list', { sign: as('lister') })).status).toBe(200);
    const res = await call(url, '/purge-cache/list', { sign: as('reader') });
    expect(res.status).toBe(403);
    expect(res.json.message).toContain('purge-cache:all-purge-requests');
  });

  it('gives anonymous callers no scopes, and says so', async () => {
    for (const path of ['/purge-cache/p/w', '/purge-cache/list']) {
      const res = await call(url, path);
      expect(res.status).toBe(403);
      expect(res.json.message).toContain('anonymous');
    }
    expect((await purge(url, 'p/w', 'x')).status).toBe(403);
  });

  it('leaves ping open, even to a bad signature', async () => {
    expect((await call(url, '/ping')).status).toBe(200);
    expect((await call(url, '/ping', { sign: { id: 'nobody', key: 'nothing-at-all' } })).status).toBe(200);
  });

  it('narrows scopes with ext.authorizedScopes', async () => {
    const narrowed = as('admin', { ext: { authorizedScopes: ['purge-cache:purge-requests::p/w'] } });
    expect((await call(url, '/purge-cache/p/w', { sign: narrowed })).status).toBe(200);
    const res = await call(url, '/purge-cache/p/x', { sign: narrowed });
    expect(res.status).toBe(403);
    expect(res.json.message).toContain('purge-cache:purge-requests::p/x');
  });

  it('refuses authorizedScopes the client does not have', async () => {
    const res = await call(url, '/purge-cache/p/w', { sign: as('reader', { ext: { authorizedScopes: ['purge-cache:purge-requests::q/w'] } }) });
    expectAuthFailure(res, /authorizedScopes/);
  });
});

describe('serve: Hawk failures', () => {
  it('a wrong key: 401 naming the signature, not the key', async () => {
    expectAuthFailure(await call(url, '/purge-cache/p/w', { sign: { id: 'reader', key: 'not-the-key' } }), /signature does not match/);
  });

  it('an unknown client: 401', async () => {
    expectAuthFailure(await call(url, '/purge-cache/p/w', { sign: { id: 'stranger', key: 'whatever-key' } }), /unknown clientId "stranger"/);
    expectAuthFailure(await call(url, '/purge-cache/p/w', { sign: { id: '__proto__', key: 'whatever-key' } }), /unknown clientId/);
  });

  it('a timestamp more than 15 minutes off: 401 that says to fix the clock', async () => {
    const ts = Math.floor(Date.now() / 1000) - 20 * 60;
    expectAuthFailure(await call(url, '/purge-cache/p/w', { sign: as('reader', { timestamp: ts }) }), /clock/);
    const ok = Math.floor(Date.now() / 1000) - 10 * 60;
    expect((await call(url, '/purge-cache/p/w', { sign: as('reader', { timestamp: ok }) })).status).toBe(200);
  });

  it('a malformed Authorization header or ext: 401', async () => {
    expectAuthFailure(await call(url, '/purge-cache/p/w', { headers: { authorization: 'Hawk nonsense' } }), /Authentication failed/);
    expectAuthFailure(await call(url, '/purge-cache/p/w', { headers: { authorization: 'Basic dXNlcjpwdw==' } }), /Authentication failed/);
    const { header } = (await import('hawk')).default.client.header(`${url}/api/purge-cache/v1/purge-cache/p/w`, 'GET', {
      credentials: { id: 'reader', key: clients.reader.accessToken, algorithm: 'sha256' },
      ext: 'not base64 json',
    });
    expectAuthFailure(await call(url, '/purge-cache/p/w', { headers: { authorization: header } }), /ext/);
  });
});

describe('serve: temporary credentials', () => {
  it("accepts them with the certificate's scopes, which may be fewer than the issuer's", async () => {
    const { signer } = temp('admin', ['purge-cache:purge-requests::p/w']);
    expect((await call(url, '/purge-cache/p/w', { sign: signer })).status).toBe(200);
    expect((await call(url, '/purge-cache/p/x', { sign: signer })).status).toBe(403);
    expect((await call(url, '/purge-cache/list', { sign: signer })).status).toBe(403);
  });

  it('accepts named temporary credentials, under their own name', async () => {
    const { signer } = temp('admin', ['purge-cache:purge-requests::p/w'], { clientId: 'worker-17' });
    expect(signer.id).toBe('worker-17');
    expect((await call(url, '/purge-cache/p/w', { sign: signer })).status).toBe(200);
    const other = await call(url, '/purge-cache/q/w', { sign: signer });
    expect(other.json.message).toContain('Client ID worker-17');
    // The name is part of the signature: another name does not verify.
    expectAuthFailure(await call(url, '/purge-cache/p/w', { sign: { ...signer, id: 'worker-18' } }), /signature/);
  });

  it('refuses certificates whose issuer lacks their scopes', async () => {
    const { signer } = temp('reader', ['purge-cache:purge-requests::*']);
    expectAuthFailure(await call(url, '/purge-cache/p/w', { sign: signer }), /does not have every scope/);
  });

  it('refuses expired and not-yet-valid certificates, with 5 minutes of slack', async () => {
    const now = Date.now();
    const expired = temp('admin', ['*'], { start: now - 2 * HOUR, expiry: now - 6 * 60 * 1000 });
    expectAuthFailure(await call(url, '/purge-cache/p/w', { sign: expired.signer }), /expired/);
    const future = temp('admin', ['*'], { start: now + 6 * 60 * 1000, expiry: now + HOUR });
    expectAuthFailure(await call(url, '/purge-cache/p/w', { sign: future.signer }), /future/);
    const slack = temp('admin', ['*'], { start: now + 4 * 60 * 1000, expiry: now + HOUR });
    expect((await call(url, '/purge-cache/p/w', { sign: slack.signer })).status).toBe(200);
  });

  it('refuses certificates lasting more than 31 days', async () => {
    const now = Date.now();
    const { signer } = temp('admin', ['*']);
    const cert = { ...signer.ext.certificate, start: now - HOUR, expiry: now + 32 * 24 * HOUR };
    cert.signature = certificateSignature(clients.admin.accessToken, cert, 'admin');
    expectAuthFailure(await call(url, '/purge-cache/p/w', { sign: { ...signer, ext: { certificate: cert } } }), /31 days/);
  });

  it('refuses a tampered certificate', async () => {
    const { signer } = temp('admin', ['purge-cache:purge-requests::p/w']);
    const cert = { ...signer.ext.certificate, scopes: ['*'] };
    expectAuthFailure(await call(url, '/purge-cache/q/w', { sign: { ...signer, ext: { certificate: cert } } }), /signature is not valid/);
  });

  it('refuses malformed certificates', async () => {
    const { signer } = temp('admin', ['*']);
    const base = signer.ext.certificate as Record<string, unknown>;
    const cases: [Record<string, unknown> | string, RegExp][] = [
      ['just a string', /must be a JSON object/],
      [{ ...base, version: 2 }, /version must be 1/],
      [{ ...base, seed: 'short' }, /44 characters/],
      [{ ...base, start: String(base.start) }, /numbers/],
      [{ ...base, scopes: 'purge-cache:*' }, /scopes must be an array/],
      [{ ...base, clientId: 'someone' }, /clientId must only be used with ext.certificate.issuer/],
      [{ ...base, issuer: 'admin' }, /issuer must differ/],
      [{ ...base, issuer: 42 }, /issuer must be a string/],
    ];
    for (const [certificate, text] of cases) {
      expectAuthFailure(await call(url, '/purge-cache/p/w', { sign: { ...signer, ext: { certificate } } }), text);
    }
  });
});
