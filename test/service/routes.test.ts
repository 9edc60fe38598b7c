/** Every route of serve and every error it answers, over real HTTP. */
import { afterEach, describe, expect, it } from 'vitest';
import { startService, type RunningService } from '../../src/service/index.js';
import { call, manualClock, purge } from './helpers.js';

let svc: RunningService | undefined;
afterEach(async () => {
  await svc?.close();
  svc = undefined;
});

async function open(opts: Parameters<typeof startService>[0] = {}): Promise<string> {
  svc = await startService(opts);
  return svc.url;
}

describe('serve: routes', () => {
  it('listens on 127.0.0.1 and answers ping with alive and uptime, never cached', async () => {
    const url = await open();
    expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    const res = await call(url, '/ping');
    expect(res.status).toBe(200);
    expect(res.json).toEqual({ alive: true, uptime: expect.any(Number) });
    expect(res.headers['content-type']).toMatch(/^application\/json/);
    expect(res.headers['cache-control']).toBe('no-store');
  });

  it('answers the Dockerflow monitoring routes the official client knows', async () => {
    const url = await open();
    for (const path of ['/__lbheartbeat__', '/__heartbeat__', '/__version__']) {
      expect((await call(url, path)).status).toBe(200);
    }
  });

  it('files purge requests with a literal slash, %2F or %2f, and lists them in either form', async () => {
    const clock = manualClock(Date.UTC(2024, 0, 1));
    const url = await open({ clock });
    for (const pool of ['p/w', 'p%2Fw', 'p%2fw']) {
      const res = await purge(url, pool, `via ${pool}`);
      expect(res.status).toBe(204);
      expect(res.text).toBe('');
    }
    const expected = ['via p%2Fw', 'via p%2fw', 'via p/w'].map((cacheName) => ({
      provisionerId: 'p',
      workerType: 'w',
      cacheName,
      before: '2024-01-01T00:00:00.000Z',
    }));
    for (const pool of ['p/w', 'p%2Fw']) {
      const res = await call(url, `/purge-cache/${pool}`);
      expect(res.status).toBe(200);
      expect(res.json).toEqual({ requests: expected });
    }
    expect((await call(url, '/purge-cache/p/other')).json).toEqual({ requests: [] });
  });

  it('accepts any string as a cache name', async () => {
    const url = await open();
    const names = ['', '..', 'a/b', '%2F', ' spaced ', 'naïve', 'x'.repeat(10_000), '\u0000nul'];
    for (const name of names) expect((await purge(url, 'p/w', name)).status).toBe(204);
    const listed = (await call(url, '/purge-cache/p/w')).json.requests.map((r: { cacheName: string }) => r.cacheName);
    expect(listed.sort()).toEqual([...names].sort());
  });

  it('moves `before` to now when the same cache is purged again, and answers fresh each time', async () => {
    const clock = manualClock(Date.UTC(2024, 0, 1));
    const url = await open({ clock });
    await purge(url, 'p/w', 'c');
    expect((await call(url, '/purge-cache/p/w')).json.requests[0].before).toBe('2024-01-01T00:00:00.000Z');
    clock.advance(90_000);
    await purge(url, 'p/w', 'c');
    const { requests } = (await call(url, '/purge-cache/p/w')).json;
    expect(requests).toHaveLength(1);
    expect(requests[0].before).toBe('2024-01-01T00:01:30.000Z');
  });

  it('expires a request TTL after its latest POST', async () => {
    const clock = manualClock(Date.UTC(2024, 0, 1));
    const url = await open({ clock, requestTtlMs: 60_000 });
    await purge(url, 'p/w', 'old');
    clock.advance(30_000);
    await purge(url, 'p/w', 'refreshed');
    clock.advance(29_999);
    expect((await call(url, '/purge-cache/p/w')).json.requests).toHaveLength(2);
    clock.advance(1);
    expect((await call(url, '/purge-cache/p/w')).json.requests.map((r: { cacheName: string }) => r.cacheName)).toEqual(['refreshed']);
    expect((await call(url, '/purge-cache/list')).json.requests).toHaveLength(1);
    clock.advance(30_000);
    expect((await call(url, '/purge-cache/p/w')).json.requests).toEqual([]);
  });

  it('filters by `since`, inclusively, and refuses a `since` that is not a date', async () => {
    const clock = manualClock(Date.UTC(2024, 0, 1));
    const url = await open({ clock });
    await purge(url, 'p/w', 'a');
    clock.advance(1);
    await purge(url, 'p/w', 'b');
    const since = (s: string) => call(url, `/purge-cache/p/w?since=${encodeURIComponent(s)}`);
    expect((await since('2024-01-01T00:00:00.001Z')).json.requests.map((r: { cacheName: string }) => r.cacheName)).toEqual(['b']);
    expect((await since('2024-01-01T00:00:00.000Z')).json.requests).toHaveLength(2);
    for (const bad of ['yesterday', '']) {
      const res = await since(bad);
      expect(res.status).toBe(400);
      expect(res.json).toMatchObject({ code: 'InvalidRequestArguments', message: expect.stringContaining('since') });
    }
  });

  it('pages allPurgeRequests with opaque tokens, absent on the last page, limit capped at 1000', async () => {
    const url = await open();
    for (let i = 0; i < 5; i++) await purge(url, `p/w${i % 2}`, `c${i}`);
    const seen: string[] = [];
    let token: string | undefined;
    let pages = 0;
    do {
      const res = await call(url, `/purge-cache/list?limit=2${token ? `&continuationToken=${encodeURIComponent(token)}` : ''}`);
      expect(res.status).toBe(200);
      expect(res.json.requests.length).toBeLessThanOrEqual(2);
      seen.push(...res.json.requests.map((r: { workerType: string; cacheName: string }) => `${r.workerType}:${r.cacheName}`));
      token = res.json.continuationToken;
      if (token !== undefined) expect(token).not.toBe('');
      pages++;
    } while (token !== undefined);
    expect(pages).toBe(3);
    expect(seen).toEqual(['w0:c0', 'w0:c2', 'w0:c4', 'w1:c1', 'w1:c3']);
    const all = await call(url, '/purge-cache/list?limit=5000');
    expect(all.json.requests).toHaveLength(5);
    expect('continuationToken' in all.json).toBe(false);
  });

  it('answers a malformed continuationToken or limit with 400 InvalidRequestArguments', async () => {
    const url = await open();
    for (const query of ['continuationToken=garbage', 'limit=ten', 'limit=-1']) {
      const res = await call(url, `/purge-cache/list?${query}`);
      expect(res.status).toBe(400);
      expect(res.json.code).toBe('InvalidRequestArguments');
    }
  });

  it('validates pool ids: 400 InvalidRequestArguments', async () => {
    const url = await open();
    for (const pool of ['p', 'p/w%2Fx', `${'x'.repeat(39)}/w`, 'p/w.x', 'p%2Fw%2Fx', 'p/%zz']) {
      const res = await call(url, `/purge-cache/${pool}`);
      expect(res.status, pool).toBe(400);
      expect(res.json.code).toBe('InvalidRequestArguments');
    }
  });

  it('validates the purgeCache body: MalformedPayload, InputValidationError, PayloadTooLarge', async () => {
    const url = await open();
    const post = (body: string) => call(url, '/purge-cache/p/w', { body });
    expect((await post('{"cacheName":')).json).toMatchObject({ code: 'MalformedPayload' });
    expect((await post('{"cacheName":')).status).toBe(400);
    for (const body of ['{"cacheName":"x","extra":1}', '{"cacheName":5}', '{}', '[]', '"x"', 'null']) {
      const res = await post(body);
      expect(res.status, body).toBe(400);
      expect(res.json.code).toBe('InputValidationError');
    }
    const huge = await post(JSON.stringify({ cacheName: 'x'.repeat(2 * 1024 * 1024) }));
    expect(huge.status).toBe(413);
    expect(huge.json.code).toBe('PayloadTooLarge');
  });

  it('answers unknown routes and methods with 404 ResourceNotFound, as JSON {code, message}', async () => {
    const url = await open();
    const cases: [string, 'GET' | 'POST' | 'PUT' | 'DELETE'][] = [
      ['/nope', 'GET'],
      ['/ping', 'POST'],
      ['/purge-cache/list', 'POST'],
      ['/purge-cache/p/w', 'PUT'],
      ['/purge-cache/p/w', 'DELETE'],
      ['/purge-cache/p/w/x', 'GET'],
      ['/purge-cache', 'GET'],
    ];
    for (const [path, method] of cases) {
      const res = await call(url, path, { method });
      expect(res.status, `${method} ${path}`).toBe(404);
      expect(res.json).toMatchObject({ code: 'ResourceNotFound', message: expect.any(String) });
    }
    const outside = await call(url, '/../../other');
    expect(outside.status).toBe(404);
  });

  it('answers errors with requestInfo that holds no query string or payload', async () => {
    const url = await open();
    const res = await call(url, '/purge-cache/p/w?since=not-a-date');
    expect(res.json.requestInfo).toEqual({ method: 'GET', path: '/api/purge-cache/v1/purge-cache/p/w', time: expect.any(String) });
  });
});
