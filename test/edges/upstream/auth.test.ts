/** The client's Hawk signing, plain and temporary, checked by `serve`'s verification (a real Taskcluster-compatible server). */
import { request } from 'undici';
import hawk from 'hawk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, UpstreamHttpError } from '../../../src/errors.js';
import { createTemporaryCredentials, startService, type RunningService } from '../../../src/service/index.js';
import { PurgeCacheClient } from '../../../src/edges/upstream/index.js';
import { scrub } from '../../../src/secrets.js';
import { captureLogger, json, listen, type TestServer, caught } from '../../helpers/servers.js';
import { POOL_PARTS } from '../../helpers/fixture.js';

const ADMIN = { clientId: 'admin', accessToken: 'admin-access-token-0123456789' };
const WORKER = { clientId: 'worker', accessToken: 'worker-access-token-0123456789' };
const clients = {
  [ADMIN.clientId]: { accessToken: ADMIN.accessToken, scopes: ['*'] },
  [WORKER.clientId]: { accessToken: WORKER.accessToken, scopes: ['purge-cache:purge-requests::test-prov/test-worker'] },
};

let svc: RunningService;
beforeAll(async () => {
  svc = await startService({ clients });
  await new PurgeCacheClient({ rootUrl: svc.url, credentials: ADMIN }).purgeCache(POOL_PARTS, 'c1');
});
afterAll(() => svc.close());

describe('Hawk signing against serve', () => {
  it('works with plain credentials', async () => {
    const client = new PurgeCacheClient({ rootUrl: svc.url, credentials: WORKER });
    const result = await client.purgeRequests(POOL_PARTS);
    expect(result.requests.map((r) => r.cacheName)).toEqual(['c1']);
  });

  it('works with temporary credentials, the certificate given as JSON text or as an object', async () => {
    const temp = createTemporaryCredentials({
      credentials: WORKER,
      scopes: ['purge-cache:purge-requests::test-prov/test-worker'],
      start: Date.now(),
      expiry: Date.now() + 60 * 60 * 1000,
    });
    expect(temp.clientId).toBe('worker');
    for (const certificate of [temp.certificate, JSON.parse(temp.certificate) as object]) {
      const client = new PurgeCacheClient({ rootUrl: svc.url, credentials: { ...temp, certificate } });
      expect((await client.purgeRequests(POOL_PARTS)).requests).toHaveLength(1);
    }
  });

  it('signs with Hawk sha256 and puts {"certificate": <object>} in the ext; registers the secrets for scrubbing', async () => {
    const temp = createTemporaryCredentials({ credentials: WORKER, scopes: [], start: Date.now(), expiry: Date.now() + 60_000 });
    const recorder = await listen((_req, res) => {
      json(res, 200, { alive: true, uptime: 0 });
    });
    try {
      await new PurgeCacheClient({ rootUrl: recorder.url, credentials: temp }).ping();
      const header = String(recorder.seen[0]!.headers.authorization);
      const attrs = hawk.utils.parseAuthorizationHeader(header);
      expect(attrs.id).toBe('worker');
      expect(JSON.parse(Buffer.from(attrs.ext!, 'base64').toString('utf8'))).toEqual({ certificate: JSON.parse(temp.certificate) });
      expect(scrub(`token ${temp.accessToken} cert ${temp.certificate}`)).toBe('token [REDACTED] cert [REDACTED]');
    } finally {
      await recorder.close();
    }
  });

  it('works with named temporary credentials', async () => {
    const temp = createTemporaryCredentials({
      clientId: 'worker/temp-1',
      credentials: ADMIN,
      scopes: ['purge-cache:test-prov/test-worker:*'],
      start: Date.now(),
      expiry: Date.now() + 60 * 60 * 1000,
    });
    const client = new PurgeCacheClient({ rootUrl: svc.url, credentials: temp });
    await client.purgeCache(POOL_PARTS, 'c2');
    // The certificate grants purging only.
    const err = await caught(client.purgeRequests(POOL_PARTS), UpstreamHttpError);
    expect(err).toBeInstanceOf(UpstreamHttpError);
    expect(err.status).toBe(403);
  });

  it('a wrong key fails at once with a clear 401 that quotes no credential', async () => {
    const key = 'wrong-access-token-9876543210';
    const log = captureLogger();
    const client = new PurgeCacheClient({ rootUrl: svc.url, credentials: { clientId: 'worker', accessToken: key }, logger: log.logger });
    const err = await caught(client.purgeRequests(POOL_PARTS), UpstreamHttpError);
    expect(err).toBeInstanceOf(UpstreamHttpError);
    expect(err.status).toBe(401);
    expect(err.serviceCode).toBe('AuthenticationFailed');
    expect(err.retryable).toBe(false);
    expect(err.message).toMatch(/purge-cache service refused GET \/purge-cache\/test-prov\/test-worker \(401 AuthenticationFailed\)/);
    expect(err.message).toMatch(/TASKCLUSTER_ACCESS_TOKEN/);
    for (const text of [err.message, String(err.stack), log.text()]) {
      expect(text).not.toContain(key);
      expect(text).not.toContain('Hawk id=');
    }
  });

  it('403 names the missing scope, with the two colons', async () => {
    const client = new PurgeCacheClient({ rootUrl: svc.url, credentials: WORKER });
    const err = await caught(client.purgeRequests({ provisionerId: 'test-prov', workerType: 'other' }), UpstreamHttpError);
    expect(err.status).toBe(403);
    expect(err.serviceCode).toBe('InsufficientScopes');
    expect(err.serviceMessage).toContain('purge-cache:purge-requests::test-prov/other');
    expect(err.message).toContain("The agent's client needs the scope purge-cache:purge-requests::test-prov/other (note the two colons)");
  });

  it('anonymous access gets no Authorization header and a 403 that says so', async () => {
    const client = new PurgeCacheClient({ rootUrl: svc.url });
    const err = await caught(client.purgeRequests(POOL_PARTS), UpstreamHttpError);
    expect(err.status).toBe(403);
    expect(err.message).toMatch(/No credentials are configured/);
    expect(err.message).toContain('purge-cache:purge-requests::test-prov/test-worker');
  });

  it('a certificate that is not JSON is a ConfigError naming TASKCLUSTER_CERTIFICATE, not quoting it', () => {
    const certificate = '{"version":1,"seed":"not-quite-json-secret-seed"';
    let err: unknown;
    try {
      new PurgeCacheClient({ rootUrl: svc.url, credentials: { ...WORKER, certificate } });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).message).toContain('TASKCLUSTER_CERTIFICATE');
    expect((err as ConfigError).message).not.toContain('not-quite-json-secret-seed');
  });
});

describe('proxy mode', () => {
  let proxy: TestServer;
  beforeAll(async () => {
    // A stand-in for taskcluster-proxy: it refuses signed requests, and signs what it forwards to serve.
    proxy = await listen((req, res) => {
      if (req.headers.authorization !== undefined) {
        res.writeHead(400);
        res.end('the proxy signs; clients must not');
        return;
      }
      const target = `${svc.url}${req.url}`;
      const { header } = hawk.client.header(target, req.method ?? 'GET', {
        credentials: { id: ADMIN.clientId, key: ADMIN.accessToken, algorithm: 'sha256' },
      });
      request(target, {
        method: req.method as 'GET' | 'POST',
        headers: { authorization: header, 'content-type': req.headers['content-type'] ?? 'application/json' },
        ...(req.method === 'POST' ? { body: req } : {}),
      }).then(
        async (upstream) => {
          res.writeHead(upstream.statusCode, { 'content-type': String(upstream.headers['content-type'] ?? 'application/json') });
          res.end(Buffer.from(await upstream.body.arrayBuffer()));
        },
        () => {
          res.writeHead(502);
          res.end();
        },
      );
    });
  });
  afterAll(() => proxy.close());

  it('sends requests to <proxyUrl>/api/purge-cache/v1/... unsigned, even when credentials are configured', async () => {
    const client = new PurgeCacheClient({ proxyUrl: proxy.url, credentials: WORKER });
    await client.purgeCache(POOL_PARTS, 'via-proxy');
    const result = await client.purgeRequests(POOL_PARTS);
    expect(result.requests.map((r) => r.cacheName)).toContain('via-proxy');
    expect(proxy.seen.map((r) => `${r.method} ${r.url}`)).toEqual([
      'POST /api/purge-cache/v1/purge-cache/test-prov/test-worker',
      'GET /api/purge-cache/v1/purge-cache/test-prov/test-worker',
    ]);
    expect(proxy.seen.every((r) => r.headers.authorization === undefined)).toBe(true);
  });
});
