import { afterEach, describe, expect, it } from 'vitest';
import { UpstreamHttpError, UpstreamNetworkError } from '../../../src/errors.js';
import { PurgeCacheClient } from '../../../src/edges/upstream/index.js';
import { backoffDelay, isRetryableStatus, MAX_DELAY_MS, retryAfterMs } from '../../../src/edges/upstream/retry.js';
import { captureLogger, entry, json, listen, recordingSleep, serve, closeServers, caught } from '../../helpers/servers.js';
import { POOL_PARTS } from '../../helpers/fixture.js';

afterEach(closeServers);

describe('backoff policy', () => {
  it('doubles from the base, with ±25 % jitter, at most 30 s', () => {
    expect(backoffDelay(1, 100, () => 0.5)).toBe(200);
    expect(backoffDelay(3, 100, () => 0.5)).toBe(800);
    expect(backoffDelay(1, 100, () => 0)).toBe(150);
    expect(backoffDelay(1, 100, () => 1)).toBe(250);
    expect(backoffDelay(20, 100, () => 1)).toBe(MAX_DELAY_MS);
  });

  it('reads Retry-After as seconds or as an HTTP date', () => {
    const now = Date.UTC(2024, 0, 1, 0, 0, 0);
    expect(retryAfterMs('3', now)).toBe(3000);
    expect(retryAfterMs(new Date(now + 5000).toUTCString(), now)).toBe(5000);
    expect(retryAfterMs(new Date(now - 5000).toUTCString(), now)).toBe(0);
    expect(retryAfterMs('soon', now)).toBeUndefined();
    expect(retryAfterMs(undefined, now)).toBeUndefined();
  });

  it('retries 5xx and 429, nothing else', () => {
    expect([500, 502, 503, 599, 429].every(isRetryableStatus)).toBe(true);
    expect([400, 401, 403, 404, 409, 301].some(isRetryableStatus)).toBe(false);
  });
});

describe('retries', () => {
  it('retries a 500 and then succeeds, with growing delays', async () => {
    const s = await serve((_req, res, n) => {
      if (n <= 2) json(res, 500, { code: 'InternalServerError', message: 'boom' });
      else json(res, 200, { requests: [entry('c')] });
    });
    const { sleep, delays } = recordingSleep();
    const log = captureLogger();
    const client = new PurgeCacheClient({ rootUrl: s.url, sleep, random: () => 0.5, baseDelayMs: 10, logger: log.logger });
    const result = await client.purgeRequests(POOL_PARTS);
    expect(result.attempts).toBe(3);
    expect(result.requests).toHaveLength(1);
    expect(delays).toEqual([20, 40]);
    expect(log.lines().filter((l) => l.msg.startsWith('retrying'))).toHaveLength(2);
  });

  it('gives up after maxRetries with the service code and the number of attempts', async () => {
    const s = await serve((_req, res) => {
      json(res, 503, { code: 'ServiceUnavailable', message: 'down for maintenance' });
    });
    const { sleep, delays } = recordingSleep();
    const err = await caught(new PurgeCacheClient({ rootUrl: s.url, sleep }).purgeRequests(POOL_PARTS), UpstreamHttpError);
    expect(err).toBeInstanceOf(UpstreamHttpError);
    expect(err.status).toBe(503);
    expect(err.serviceCode).toBe('ServiceUnavailable');
    expect(err.retryable).toBe(true);
    expect(err.message).toContain('down for maintenance');
    expect(err.message).toContain('gave up after 6 attempts');
    expect(s.seen).toHaveLength(6);
    expect(delays).toHaveLength(5);
  });

  it('does not retry a 403', async () => {
    const s = await serve((_req, res) => {
      json(res, 403, { code: 'InsufficientScopes', message: 'missing purge-cache:purge-requests::test-prov/test-worker' });
    });
    const { sleep, delays } = recordingSleep();
    const err = await caught(new PurgeCacheClient({ rootUrl: s.url, sleep }).purgeRequests(POOL_PARTS), UpstreamHttpError);
    expect(err.status).toBe(403);
    expect(s.seen).toHaveLength(1);
    expect(delays).toEqual([]);
  });

  it('honours Retry-After on 429, within the same retries', async () => {
    const s = await serve((_req, res, n) => {
      if (n === 1) json(res, 429, { code: 'TooManyRequests', message: 'slow down' }, { 'retry-after': '2' });
      else if (n === 2) json(res, 429, {}, { 'retry-after': new Date(Date.now() + 20_000).toUTCString() });
      else json(res, 200, { alive: true, uptime: 3 });
    });
    const { sleep, delays } = recordingSleep();
    const client = new PurgeCacheClient({ rootUrl: s.url, sleep, baseDelayMs: 1 });
    expect(await client.ping()).toEqual({ alive: true, uptime: 3 });
    expect(delays[0]).toBe(2000);
    // The date is 20 s ahead when sent (to the second); however long a loaded
    // machine takes to read it, the wait follows it, not the first 2 s.
    expect(delays[1]).toBeGreaterThan(10_000);
    expect(delays[1]).toBeLessThanOrEqual(20_000);
  });

  it('does not wait longer than 30 s for a 429; it fails and says when to come back', async () => {
    const s = await serve((_req, res) => {
      json(res, 429, { code: 'TooManyRequests', message: 'later' }, { 'retry-after': '3600' });
    });
    const { sleep, delays } = recordingSleep();
    const err = await caught(new PurgeCacheClient({ rootUrl: s.url, sleep }).ping(), UpstreamHttpError);
    expect(err.status).toBe(429);
    expect(err.message).toContain('asked to wait 3600 s');
    expect(delays).toEqual([]);
  });

  it('times out a server that never answers, and retries it', async () => {
    const s = await serve(() => undefined);
    const { sleep } = recordingSleep();
    const client = new PurgeCacheClient({ rootUrl: s.url, sleep, timeoutMs: 200, maxRetries: 1 });
    const err = await caught(client.purgeRequests(POOL_PARTS));
    expect(err).toBeInstanceOf(UpstreamNetworkError);
    expect(err.message).toContain(`did not answer GET ${s.url}/api/purge-cache/v1/purge-cache/test-prov/test-worker within 200 ms`);
    expect(err.message).toContain('gave up after 2 attempts');
    expect(s.seen).toHaveLength(2);
  });

  it('retries a dropped connection', async () => {
    const s = await serve((req, res, n) => {
      if (n === 1) return req.socket.destroy();
      json(res, 200, { requests: [] });
    });
    const { sleep, delays } = recordingSleep();
    const result = await new PurgeCacheClient({ rootUrl: s.url, sleep }).purgeRequests(POOL_PARTS);
    expect(result.attempts).toBe(2);
    expect(delays).toHaveLength(1);
  });

  it('names the origin and path of a service that cannot be reached', async () => {
    const s = await listen(() => undefined);
    const url = s.url;
    await s.close();
    const { sleep } = recordingSleep();
    const err = await caught(new PurgeCacheClient({ rootUrl: url, sleep, maxRetries: 2 }).purgeRequests(POOL_PARTS, new Date(0)));
    expect(err).toBeInstanceOf(UpstreamNetworkError);
    expect(err.message).toContain(`could not reach the purge-cache service for GET ${url}/api/purge-cache/v1/purge-cache/test-prov/test-worker`);
    expect(err.message).toContain('ECONNREFUSED');
    expect(err.message).not.toContain('since=');
    expect(err.message).toContain('gave up after 3 attempts');
  });

  it('retries POSTs too (purgeCache is idempotent enough: it moves `before` to now)', async () => {
    const s = await serve((req, res, n) => {
      req.resume();
      req.on('end', () => {
        if (n === 1) {
          json(res, 502, {});
          return;
        }
        res.writeHead(204);
        res.end();
      });
    });
    const { sleep } = recordingSleep();
    await new PurgeCacheClient({ rootUrl: s.url, sleep }).purgeCache(POOL_PARTS, 'x');
    expect(s.seen.map((r) => r.method)).toEqual(['POST', 'POST']);
  });
});
