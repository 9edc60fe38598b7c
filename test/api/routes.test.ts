/**
 * The local API's access rules, errors and status, over the real unix socket
 * and over TCP on 127.0.0.1, with and without the token, against the `run`
 * daemon as a child process. The cache, lease and task routes are in
 * cache-routes.test.ts.
 */
import { describe, expect, it } from 'vitest';
import { stat } from 'node:fs/promises';
import path from 'node:path';
import { exists } from '../helpers/fixture.js';
import { call, TOKEN } from '../helpers/api.js';
import { fx, d, auth, both } from './routes-daemon.js';

describe('transport and access', () => {
  it('listens on a unix socket with mode 0660, at <state dir>/api.sock by default', async () => {
    expect(d.socket.socketPath).toBe(path.join(fx.stateDir, 'api.sock'));
    const st = await stat(d.socket.socketPath);
    expect(st.isSocket()).toBe(true);
    expect(st.mode & 0o777).toBe(0o660);
  });

  it('serves /healthz, /readyz and /metrics without a token on both transports', async () => {
    for (const target of [d.socket, d.tcp]) {
      expect((await call(target, 'GET', '/healthz')).json).toEqual({ status: 'ok' });
      const ready = await call(target, 'GET', '/readyz');
      expect(ready.status, ready.text).toBe(200);
      const metrics = await call(target, 'GET', '/metrics');
      expect(metrics.status).toBe(200);
      expect(metrics.headers['content-type']).toMatch(/^text\/plain/);
    }
  });

  it('requires the bearer token for every /v1 route over TCP, and not over the socket', async () => {
    const routes: [string, string, string?][] = [
      ['GET', '/v1/status'],
      ['GET', '/v1/caches'],
      ['DELETE', '/v1/caches/plain'],
      ['POST', '/v1/sync', '{}'],
      ['GET', '/v1/tasks/whatever'],
      ['PUT', '/v1/caches/plain/leases/me', '{"ttlSeconds":60}'],
      ['DELETE', '/v1/caches/plain/leases/me'],
      ['GET', '/v1/no-such-route'],
    ];
    const wrong: Record<string, string>[] = [
      {},
      { authorization: 'Bearer ' },
      { authorization: 'Bearer x' }, // far too short
      { authorization: `Bearer ${TOKEN}${TOKEN}` }, // too long
      { authorization: `Bearer ${TOKEN.slice(0, -1)}X` }, // same length, wrong
      { authorization: `Basic ${Buffer.from(`u:${TOKEN}`).toString('base64')}` },
      { authorization: TOKEN },
    ];
    for (const [method, url, body] of routes) {
      for (const headers of wrong) {
        const reply = await call(d.tcp, method, url, { headers, ...(body ? { body } : {}) });
        expect(reply.status, `${method} ${url} with ${JSON.stringify(headers)}`).toBe(401);
        expect(reply.json.code).toBe('AuthenticationFailed');
        expect(typeof reply.json.message).toBe('string');
        expect(reply.headers['www-authenticate']).toMatch(/^Bearer/);
      }
    }
    // The plain cache is still there: nothing above was carried out.
    expect(await exists(path.join(fx.root, 'plain'))).toBe(true);
    expect((await call(d.tcp, 'GET', '/v1/status', { headers: auth })).status).toBe(200);
    expect((await call(d.tcp, 'GET', '/v1/status', { headers: { authorization: `bearer   ${TOKEN}` } })).status).toBe(200);
    expect((await call(d.socket, 'GET', '/v1/status')).status).toBe(200);
  });

  it('never shows the token, in status or in logs', async () => {
    for (const [, target, headers] of both()) {
      const reply = await call(target, 'GET', '/v1/status', { headers });
      expect(reply.text).not.toContain(TOKEN);
      expect(reply.json.api.tokenRequired).toBe(true);
    }
    expect(d.child.output.stderr).not.toContain(TOKEN);
  });
});

describe('errors are JSON {code, message}', () => {
  const expectError = (reply: { status: number; json: any; headers: Record<string, unknown> }, status: number, code: string) => {
    expect(reply.status).toBe(status);
    expect(reply.headers['content-type']).toMatch(/^application\/json/);
    expect(reply.json).toEqual({ code, message: expect.any(String) });
  };

  it('400 for malformed JSON, unknown fields, bad values and unknown query parameters', async () => {
    for (const [, target, headers] of both()) {
      expectError(await call(target, 'PUT', '/v1/caches/plain/leases/me', { headers, body: '{"ttlSeconds":' }), 400, 'MalformedPayload');
      expectError(await call(target, 'PUT', '/v1/caches/plain/leases/me', { headers, body: '{"ttlSeconds":60,"extra":1}' }), 400, 'InputValidationError');
      expectError(await call(target, 'PUT', '/v1/caches/plain/leases/me', { headers, body: '{"ttlSeconds":"60"}' }), 400, 'InputValidationError');
      expectError(await call(target, 'PUT', '/v1/caches/plain/leases/me', { headers, body: '{"ttlSeconds":0}' }), 400, 'InputValidationError');
      expectError(await call(target, 'PUT', '/v1/caches/plain/leases/me', { headers, body: '[]' }), 400, 'InputValidationError');
      expectError(await call(target, 'POST', '/v1/sync', { headers, body: '{"now":true}' }), 400, 'InputValidationError');
      expectError(await call(target, 'GET', '/v1/caches?sise=1', { headers }), 400, 'InvalidRequestArguments');
      expectError(await call(target, 'GET', '/v1/caches?size=maybe', { headers }), 400, 'InvalidRequestArguments');
      expectError(await call(target, 'GET', '/v1/tasks/x?wait=soon', { headers }), 400, 'InvalidRequestArguments');
      expectError(await call(target, 'GET', '/v1/caches/%E0%A4%A', { headers }), 400, 'InvalidRequestArguments');
      expectError(
        await call(target, 'PUT', `/v1/caches/plain/leases/${encodeURIComponent('bad\nowner')}`, { headers, body: '{}' }),
        400,
        'InvalidRequestArguments',
      );
    }
  });

  it('404 for unknown routes, caches and tasks', async () => {
    for (const [, target, headers] of both()) {
      expectError(await call(target, 'GET', '/v1/nothing', { headers }), 404, 'ResourceNotFound');
      expectError(await call(target, 'GET', '/', { headers }), 404, 'ResourceNotFound');
      expectError(await call(target, 'DELETE', '/v1/caches/not-here', { headers }), 404, 'ResourceNotFound');
      expectError(await call(target, 'DELETE', '/v1/caches/not-here?dry_run=1', { headers }), 404, 'ResourceNotFound');
      expectError(await call(target, 'GET', '/v1/tasks/00000000-0000-0000-0000-000000000000', { headers }), 404, 'ResourceNotFound');
      expectError(await call(target, 'DELETE', '/v1/caches/plain/leases/nobody', { headers }), 404, 'ResourceNotFound');
    }
    expectError(await call(d.tcp, 'GET', '/nothing'), 404, 'ResourceNotFound');
  });

  it('405 with an Allow header for a wrong method', async () => {
    for (const [, target, headers] of both()) {
      const a = await call(target, 'POST', '/v1/status', { headers, body: '{}' });
      expectError(a, 405, 'MethodNotAllowed');
      expect(a.headers.allow).toBe('GET, HEAD');
      const b = await call(target, 'GET', '/v1/sync', { headers });
      expectError(b, 405, 'MethodNotAllowed');
      expect(b.headers.allow).toBe('POST');
      const c = await call(target, 'POST', '/v1/caches/plain/leases/me', { headers, body: '{}' });
      expectError(c, 405, 'MethodNotAllowed');
      expect(c.headers.allow).toBe('PUT, DELETE');
      const e = await call(target, 'GET', '/v1/caches/plain', { headers });
      expect(e.headers.allow).toBe('DELETE');
    }
    const probe = await call(d.tcp, 'DELETE', '/healthz');
    expectError(probe, 405, 'MethodNotAllowed');
  });

  it('400 for a request that is not HTTP at all', async () => {
    const { connect } = await import('node:net');
    const text = await new Promise<string>((resolve, reject) => {
      const socket = connect({ path: d.socket.socketPath });
      let data = '';
      socket.on('data', (chunk) => (data += chunk.toString()));
      socket.on('end', () => {
        resolve(data);
      });
      socket.on('error', reject);
      socket.write('THIS IS NOT HTTP\r\n\r\n');
    });
    expect(text).toMatch(/^HTTP\/1\.1 400 /);
    expect(JSON.parse(text.slice(text.indexOf('\r\n\r\n') + 4))).toEqual({ code: 'MalformedRequest', message: expect.any(String) });
  });

  it('413 for a body over the limit, and the connection still answers', async () => {
    const big = JSON.stringify({ ttlSeconds: 60, pad: 'x'.repeat(100 * 1024) });
    for (const [, target, headers] of both()) {
      expectError(await call(target, 'PUT', '/v1/caches/plain/leases/me', { headers, body: big }), 413, 'PayloadTooLarge');
      expectError(await call(target, 'POST', '/v1/sync', { headers, body: big }), 413, 'PayloadTooLarge');
    }
    // Chunked, with no declared length.
    const chunked = await call(d.socket, 'POST', '/v1/sync', { chunked: true, body: big });
    expectError(chunked, 413, 'PayloadTooLarge');
  });
});

describe('GET /v1/status', () => {
  it('has the version, configuration (no secrets), last cycle, cursor, pending, leases, clock offset and trash backlog', async () => {
    const { json } = await call(d.socket, 'GET', '/v1/status');
    expect(json.version).toMatch(/^\d+\.\d+\.\d+/);
    expect(json.config).toMatchObject({ workerPoolId: 'test-prov/test-worker', cacheRoots: [fx.root], stateDir: fx.stateDir, credentials: 'anonymous' });
    expect(json.config.apiToken).toBeUndefined();
    expect(json.config.apiTokenFile).toBe(path.join(fx.tmp.path, 'api-token'));
    expect(json.lastCycle).toMatchObject({ outcome: 'success', at: expect.any(String) });
    expect(json.cursor).toEqual(expect.any(String));
    expect(json.pending).toEqual([]);
    expect(Array.isArray(json.leases)).toBe(true);
    expect(typeof json.clockOffsetMs).toBe('number');
    expect(json.trash).toMatchObject({ backlogBytes: expect.any(Number), backlogPartial: false });
    expect(json.ready).toMatchObject({ ready: true });
  });
});
