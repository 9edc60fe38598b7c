/**
 * The official client (taskcluster-client 55) as a second client of serve:
 * it sends the pool id as %2F, signs with Hawk, puts certificates and
 * authorizedScopes in the ext; serve must take all of it unchanged.
 */
import taskcluster from 'taskcluster-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTemporaryCredentials, startService, type RunningService } from '../../src/service/index.js';
import { certificateSignature, temporaryAccessToken } from '../../src/service/tempcreds.js';
import { PurgeCacheClient } from '../../src/edges/upstream/index.js';

const ADMIN = { clientId: 'admin', accessToken: 'admin-token-for-tc-client-0000' };
const WORKER = { clientId: 'worker', accessToken: 'worker-token-for-tc-client-000' };
const clients = {
  admin: { accessToken: ADMIN.accessToken, scopes: ['*'] },
  worker: { accessToken: WORKER.accessToken, scopes: ['purge-cache:purge-requests::p/w', 'purge-cache:p/w:*'] },
};
const HOUR = 60 * 60 * 1000;

interface TcError extends Error {
  code: string;
  statusCode: number;
}

async function tcError(p: Promise<unknown>): Promise<TcError> {
  try {
    await p;
  } catch (err) {
    return err as TcError;
  }
  throw new Error('expected a failure');
}

async function exercise(tc: InstanceType<typeof taskcluster.PurgeCache>) {
  expect(await tc.ping()).toEqual({ alive: true, uptime: expect.any(Number) });
  await tc.purgeCache('p/w', { cacheName: 'from-taskcluster-client' });
  const { requests } = await tc.purgeRequests('p/w');
  expect(requests.map((r) => r.cacheName)).toContain('from-taskcluster-client');
  const before = requests.find((r) => r.cacheName === 'from-taskcluster-client')!.before;
  expect((await tc.purgeRequests('p/w', { since: before })).requests.map((r) => r.cacheName)).toContain('from-taskcluster-client');
  expect((await tc.purgeRequests('p/w', { since: new Date(Date.parse(before) + 1).toISOString() })).requests.map((r) => r.cacheName)).not.toContain(
    'from-taskcluster-client',
  );
}

describe('taskcluster-client against serve, open access', () => {
  let svc: RunningService;
  beforeAll(async () => {
    svc = await startService({});
  });
  afterAll(() => svc.close());

  it('sends the pool id %2F-encoded, which serve accepts', () => {
    const tc = new taskcluster.PurgeCache({ rootUrl: svc.url, credentials: {} });
    expect(tc.buildUrl((tc as unknown as { purgeRequests: unknown }).purgeRequests, 'p/w')).toBe(`${svc.url}/api/purge-cache/v1/purge-cache/p%2Fw`);
  });

  it('ping, purgeCache, purgeRequests (with since), anonymously', async () => {
    await exercise(new taskcluster.PurgeCache({ rootUrl: svc.url, credentials: {} }));
  });

  it('allPurgeRequests, following continuation tokens', async () => {
    const tc = new taskcluster.PurgeCache({ rootUrl: svc.url, credentials: {} });
    for (let i = 0; i < 5; i++) await tc.purgeCache(`p/page${i}`, { cacheName: `c${i}` });
    const names: string[] = [];
    let continuationToken: string | undefined;
    do {
      const page = await tc.allPurgeRequests({ limit: 2, ...(continuationToken ? { continuationToken } : {}) });
      expect(page.requests.length).toBeLessThanOrEqual(2);
      names.push(...page.requests.map((r) => r.cacheName));
      continuationToken = page.continuationToken;
    } while (continuationToken);
    expect(names).toEqual(expect.arrayContaining(['c0', 'c1', 'c2', 'c3', 'c4']));
  });

  it('gets Taskcluster-style errors: code and statusCode', async () => {
    const tc = new taskcluster.PurgeCache({ rootUrl: svc.url, credentials: {}, retries: 0 });
    const err = await tcError(tc.purgeRequests('not a pool'));
    expect(err.statusCode).toBe(400);
    expect(err.code).toBe('InvalidRequestArguments');
  });
});

describe('taskcluster-client against serve, verifying Hawk', () => {
  let svc: RunningService;
  beforeAll(async () => {
    svc = await startService({ clients });
  });
  afterAll(() => svc.close());

  it('works with permanent credentials', async () => {
    await exercise(new taskcluster.PurgeCache({ rootUrl: svc.url, credentials: WORKER }));
    const admin = new taskcluster.PurgeCache({ rootUrl: svc.url, credentials: ADMIN });
    expect((await admin.allPurgeRequests()).requests.length).toBeGreaterThan(0);
  });

  it('works with temporary credentials from taskcluster.createTemporaryCredentials, plain and named', async () => {
    const plain = taskcluster.createTemporaryCredentials({
      credentials: WORKER,
      scopes: ['purge-cache:purge-requests::p/w', 'purge-cache:p/w:*'],
      expiry: new Date(Date.now() + HOUR),
    });
    await exercise(new taskcluster.PurgeCache({ rootUrl: svc.url, credentials: plain }));
    const named = taskcluster.createTemporaryCredentials({
      clientId: 'worker/temporary',
      credentials: ADMIN,
      scopes: ['purge-cache:purge-requests::p/w', 'purge-cache:p/w:*'],
      expiry: new Date(Date.now() + HOUR),
    });
    await exercise(new taskcluster.PurgeCache({ rootUrl: svc.url, credentials: named }));
  });

  it("their temporary credentials work with this agent's client too, and ours with theirs", async () => {
    const theirs = taskcluster.createTemporaryCredentials({
      credentials: WORKER,
      scopes: ['purge-cache:purge-requests::p/w'],
      expiry: new Date(Date.now() + HOUR),
    });
    const agent = new PurgeCacheClient({ rootUrl: svc.url, credentials: theirs });
    expect((await agent.purgeRequests({ provisionerId: 'p', workerType: 'w' })).attempts).toBe(1);

    const ours = createTemporaryCredentials({
      clientId: 'named-by-us',
      credentials: ADMIN,
      scopes: ['purge-cache:purge-requests::p/w', 'purge-cache:p/w:*'],
      start: new Date(),
      expiry: new Date(Date.now() + HOUR),
    });
    await exercise(new taskcluster.PurgeCache({ rootUrl: svc.url, credentials: ours }));
  });

  it('our certificate algorithm reproduces theirs exactly', () => {
    for (const clientId of [undefined, 'named-one']) {
      const theirs = taskcluster.createTemporaryCredentials({
        ...(clientId ? { clientId } : {}),
        credentials: ADMIN,
        scopes: ['a', 'b:*', ''],
        expiry: new Date(Date.now() + HOUR),
      });
      const cert = JSON.parse(theirs.certificate);
      expect(cert.seed).toHaveLength(44);
      expect(certificateSignature(ADMIN.accessToken, cert, theirs.clientId)).toBe(cert.signature);
      expect(temporaryAccessToken(ADMIN.accessToken, cert.seed)).toBe(theirs.accessToken);
    }
  });

  it('honours authorizedScopes set by the official client', async () => {
    const narrowed = new taskcluster.PurgeCache({ rootUrl: svc.url, credentials: ADMIN, authorizedScopes: ['purge-cache:purge-requests::p/w'] });
    expect((await narrowed.purgeRequests('p/w')).requests).toBeDefined();
    const err = await tcError(narrowed.purgeCache('p/w', { cacheName: 'x' }));
    expect(err.statusCode).toBe(403);
    expect(err.code).toBe('InsufficientScopes');
    expect(err.message).toContain('purge-cache:p/w:x');
  });

  it('a wrong key: 401 AuthenticationFailed; missing scope: 403 InsufficientScopes', async () => {
    const wrong = new taskcluster.PurgeCache({ rootUrl: svc.url, credentials: { clientId: 'worker', accessToken: 'wrong-token-wrong-token' } });
    const e401 = await tcError(wrong.purgeRequests('p/w'));
    expect(e401.statusCode).toBe(401);
    expect(e401.code).toBe('AuthenticationFailed');
    const worker = new taskcluster.PurgeCache({ rootUrl: svc.url, credentials: WORKER });
    const e403 = await tcError(worker.purgeRequests('p/other'));
    expect(e403.statusCode).toBe(403);
    expect(e403.message).toContain('purge-cache:purge-requests::p/other');
    const anon = new taskcluster.PurgeCache({ rootUrl: svc.url, credentials: {} });
    expect((await tcError(anon.allPurgeRequests())).statusCode).toBe(403);
  });
});
