/** Hostile and broken answers: each fails the call or skips the entry, clearly, with bounded memory. */
import { afterEach, describe, expect, it } from 'vitest';
import { UpstreamHttpError, UpstreamNetworkError, UpstreamResponseError } from '../../../src/errors.js';
import { PurgeCacheClient } from '../../../src/edges/upstream/index.js';
import { captureLogger, entry, json, recordingSleep, serve, closeServers, caught } from '../../helpers/servers.js';
import { POOL_PARTS } from '../../helpers/fixture.js';

afterEach(closeServers);

const noSleep = recordingSleep().sleep;

describe('purgeRequests validation', () => {
  it('keeps valid entries, skips each bad one with a reason and a warning', async () => {
    const body = {
      requests: [
        entry('good-1'),
        entry('wrong-type', { cacheName: 42 }),
        { provisionerId: 'test-prov', workerType: 'test-worker', before: '2024-05-01T12:00:00.000Z' },
        entry('bad-before', { before: 'yesterday' }),
        entry('no-zone', { before: '2024-05-01T12:00:00' }),
        entry('impossible', { before: '2024-13-45T99:00:00Z' }),
        entry('other-pool', { workerType: 'other' }),
        entry('other-prov', { provisionerId: 'elsewhere' }),
        'not an object',
        null,
        entry('good-2', { before: '2024-05-01T14:00:00+02:00', extra: 'dropped' }),
      ],
      extraTopLevel: true,
    };
    const s = await serve((_req, res) => {
      json(res, 200, body, { date: 'Wed, 01 May 2024 12:00:05 GMT' });
    });
    const log = captureLogger();
    const result = await new PurgeCacheClient({ rootUrl: s.url, logger: log.logger }).purgeRequests(POOL_PARTS);
    expect(result.requests).toEqual([entry('good-1'), entry('good-2', { before: '2024-05-01T14:00:00+02:00' })]);
    expect(result.serverDate).toBe(Date.UTC(2024, 4, 1, 12, 0, 5));
    const reasons = Object.fromEntries(result.invalid.map((i) => [i.index, i.reason]));
    expect(Object.keys(reasons).map(Number)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(reasons[1]).toMatch(/^cacheName: .*expected string/);
    expect(reasons[2]).toMatch(/^cacheName: /);
    expect(reasons[3]).toMatch(/^before: not an ISO 8601 date-time/);
    expect(reasons[4]).toMatch(/^before: /);
    expect(reasons[5]).toMatch(/^before: /);
    expect(reasons[6]).toBe('for worker pool test-prov/other, not test-prov/test-worker');
    expect(reasons[7]).toBe('for worker pool elsewhere/test-worker, not test-prov/test-worker');
    expect(reasons[8]).toBe('entry is not an object');
    const warnings = log.lines().filter((l) => l.level === 'warn');
    expect(warnings).toHaveLength(9);
    expect(warnings[0]).toMatchObject({ index: 1, msg: 'skipping an invalid purge request in the answer to GET /purge-cache/test-prov/test-worker' });
  });

  it('fails the call when the envelope is wrong', async () => {
    for (const body of [[], { requests: 'x' }, { request: [] }, null, 'text', 7]) {
      const s = await serve((_req, res) => {
        json(res, 200, body);
      });
      const err = await caught(new PurgeCacheClient({ rootUrl: s.url }).purgeRequests(POOL_PARTS));
      expect(err).toBeInstanceOf(UpstreamResponseError);
      expect(err.message).toContain('is not an object with a "requests" array');
    }
  });

  it('fails on a body that is not JSON, saying what came instead', async () => {
    const s = await serve((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/html' });
      res.end('<html>\n<title>Sign in to the Wi-Fi</title>');
    });
    const err = await caught(new PurgeCacheClient({ rootUrl: s.url, sleep: noSleep }).purgeRequests(POOL_PARTS));
    expect(err).toBeInstanceOf(UpstreamResponseError);
    expect(err.message).toContain('is not JSON (text/html, starts "<html>?<title>Sign in');
    expect(s.seen).toHaveLength(1);
  });

  it('logs the first 100 bad entries one by one, then one summary line', async () => {
    const requests = Array.from({ length: 250 }, (_, i) => entry(`c${i}`, { before: 'never' }));
    const s = await serve((_req, res) => {
      json(res, 200, { requests });
    });
    const log = captureLogger();
    const result = await new PurgeCacheClient({ rootUrl: s.url, logger: log.logger }).purgeRequests(POOL_PARTS);
    expect(result.invalid).toHaveLength(250);
    const warnings = log.lines().filter((l) => l.level === 'warn');
    expect(warnings).toHaveLength(101);
    expect(warnings[100]).toMatchObject({ skipped: 150 });
  });
});

describe('bounded answers', () => {
  it('passes 100,000 requests (about 12 MB)', async () => {
    const requests = Array.from({ length: 100_000 }, (_, i) => entry(`cache-name-number-${i}-with-some-length`));
    const text = JSON.stringify({ requests });
    expect(text.length).toBeGreaterThan(10_000_000);
    const s = await serve((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(text);
    });
    const result = await new PurgeCacheClient({ rootUrl: s.url }).purgeRequests(POOL_PARTS);
    expect(result.requests).toHaveLength(100_000);
  });

  it('fails a 50 MB body without reading it all', async () => {
    let written = 0;
    const total = 50 * 1024 * 1024;
    const s = await serve((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      const chunk = Buffer.alloc(64 * 1024, ' ');
      const pump = () => {
        while (written < total && !res.destroyed) {
          written += chunk.length;
          if (!res.write(chunk)) return void res.once('drain', pump);
        }
        res.end();
      };
      res.on('close', () => (written = Math.min(written, total)));
      pump();
    });
    const err = await caught(new PurgeCacheClient({ rootUrl: s.url, sleep: noSleep }).purgeRequests(POOL_PARTS));
    expect(err).toBeInstanceOf(UpstreamResponseError);
    expect(err.message).toContain(`larger than ${32 * 1024 * 1024} bytes`);
    expect(written).toBeLessThan(total);
    expect(s.seen).toHaveLength(1);
  });

  it('fails at once on a declared Content-Length over the cap', async () => {
    const s = await serve((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': String(2048) });
      res.write(Buffer.alloc(100, ' '));
    });
    const err = await caught(new PurgeCacheClient({ rootUrl: s.url, maxResponseBytes: 1024 }).purgeRequests(POOL_PARTS));
    expect(err).toBeInstanceOf(UpstreamResponseError);
    expect(err.message).toContain('larger than 1024 bytes');
  });

  it('a body sent one byte a second hits the per-attempt deadline', async () => {
    const s = await serve((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      const body = JSON.stringify({ requests: [] });
      let i = 0;
      const timer = setInterval(() => {
        if (res.destroyed || i >= body.length) {
          clearInterval(timer);
          return void res.end();
        }
        res.write(body[i++]);
      }, 1000);
      res.on('close', () => {
        clearInterval(timer);
      });
    });
    const client = new PurgeCacheClient({ rootUrl: s.url, timeoutMs: 1500, maxRetries: 0 });
    const err = await caught(client.purgeRequests(POOL_PARTS));
    expect(err).toBeInstanceOf(UpstreamNetworkError);
    expect(err.message).toContain('within 1500 ms');
  });

  it('does not follow a redirect, and says to check --root-url', async () => {
    const elsewhere = await serve((_req, res) => {
      json(res, 200, { requests: [] });
    });
    const s = await serve((_req, res) => {
      res.writeHead(301, { location: `${elsewhere.url.replace('http://', 'http://user:pw@')}/api/purge-cache/v1/purge-cache/test-prov/test-worker` });
      res.end();
    });
    const { sleep, delays } = recordingSleep();
    const err = await caught(new PurgeCacheClient({ rootUrl: s.url, sleep }).purgeRequests(POOL_PARTS), UpstreamHttpError);
    expect(err).toBeInstanceOf(UpstreamHttpError);
    expect(err.status).toBe(301);
    expect(err.retryable).toBe(false);
    expect(err.message).toContain(`with a redirect (301) to ${elsewhere.url}/api/purge-cache/v1/purge-cache/test-prov/test-worker, which is not followed`);
    expect(err.message).toContain('check --root-url');
    expect(err.message).not.toContain('pw@');
    expect(elsewhere.seen).toHaveLength(0);
    expect(delays).toEqual([]);
  });
});

describe('allPurgeRequests paging', () => {
  it('follows continuation tokens, ending on an absent token or an old-style ""', async () => {
    for (const last of [{}, { continuationToken: '' }, { continuationToken: null }]) {
      const pages: Record<string, object> = {
        '': { requests: [entry('a'), entry('b')], continuationToken: 'tok 1/+' },
        'tok 1/+': { requests: [entry('c', { workerType: 'other' })], continuationToken: 't2' },
        t2: { requests: [entry('d')], ...last },
      };
      const s = await serve((req, res) => {
        const token = new URL(req.url!, 'http://x').searchParams.get('continuationToken') ?? '';
        json(res, 200, pages[token] ?? { requests: 'no such page' });
      });
      const all = await new PurgeCacheClient({ rootUrl: s.url }).allPurgeRequests({ limit: 2 });
      expect(all.map((r) => r.cacheName)).toEqual(['a', 'b', 'c', 'd']);
      expect(s.seen.map((r) => r.url)).toEqual([
        '/api/purge-cache/v1/purge-cache/list?limit=2',
        '/api/purge-cache/v1/purge-cache/list?continuationToken=tok+1%2F%2B&limit=2',
        '/api/purge-cache/v1/purge-cache/list?continuationToken=t2&limit=2',
      ]);
    }
  });

  it('stops a service that pages in a loop', async () => {
    const s = await serve((_req, res) => {
      json(res, 200, { requests: [entry('a')], continuationToken: 'again' });
    });
    const err = await caught(new PurgeCacheClient({ rootUrl: s.url }).allPurgeRequests());
    expect(err).toBeInstanceOf(UpstreamResponseError);
    expect(err.message).toContain('repeated a continuation token');
    expect(s.seen).toHaveLength(2);
  });

  it('rejects a limit outside 1..1000', async () => {
    const client = new PurgeCacheClient({ rootUrl: 'http://127.0.0.1:9' });
    await expect(client.allPurgeRequests({ limit: 0 })).rejects.toThrow(/limit/);
    await expect(client.allPurgeRequests({ limit: 1001 })).rejects.toThrow(/limit/);
  });
});

describe('ping', () => {
  it('validates the answer', async () => {
    const s = await serve((_req, res) => {
      json(res, 200, { alive: 'yes' });
    });
    await expect(new PurgeCacheClient({ rootUrl: s.url }).ping()).rejects.toBeInstanceOf(UpstreamResponseError);
  });
});
