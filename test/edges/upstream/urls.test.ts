import { afterEach, describe, expect, it } from 'vitest';
import { ConfigError } from '../../../src/errors.js';
import { PurgeCacheClient } from '../../../src/edges/upstream/index.js';
import { apiBase, listPath, purgeRequestsPath } from '../../../src/edges/upstream/urls.js';
import { json, listen, type TestServer } from '../../helpers/servers.js';
import { POOL_PARTS } from '../../helpers/fixture.js';

let servers: TestServer[] = [];
afterEach(async () => {
  await Promise.all(servers.map((s) => s.close()));
  servers = [];
});

async function echoServer(): Promise<TestServer> {
  const s = await listen((req, res) => {
    if (req.url?.includes('/ping')) {
      json(res, 200, { alive: true, uptime: 1 });
      return;
    }
    if (req.method === 'POST') {
      res.writeHead(204);
      return res.end();
    }
    json(res, 200, { requests: [] });
  });
  servers.push(s);
  return s;
}

describe('URLs', () => {
  it('builds the API base from the root URL, dropping trailing slashes and keeping a path prefix', () => {
    expect(apiBase('https://tc.example.com', 'rootUrl')).toBe('https://tc.example.com/api/purge-cache/v1');
    expect(apiBase('https://tc.example.com//', 'rootUrl')).toBe('https://tc.example.com/api/purge-cache/v1');
    expect(apiBase('http://127.0.0.1:8080/prefix/', 'rootUrl')).toBe('http://127.0.0.1:8080/prefix/api/purge-cache/v1');
  });

  it('rejects root URLs that are not http(s), or carry credentials or a query', () => {
    for (const bad of ['tc.example.com', 'ftp://tc.example.com', 'https://user:pw@tc.example.com', 'https://tc.example.com/?x=1']) {
      const err = (() => {
        try {
          apiBase(bad, 'rootUrl');
        } catch (e) {
          return e;
        }
      })();
      expect(err).toBeInstanceOf(ConfigError);
      expect((err as ConfigError).message).toContain('--root-url');
      expect((err as ConfigError).message).not.toContain('pw@');
    }
  });

  it('puts the pool id in the path with a literal slash and `since` as ISO 8601 with milliseconds', () => {
    expect(purgeRequestsPath(POOL_PARTS)).toBe('/purge-cache/test-prov/test-worker');
    expect(purgeRequestsPath(POOL_PARTS, new Date(Date.UTC(2024, 4, 1, 12, 0, 0, 7)))).toBe(
      '/purge-cache/test-prov/test-worker?since=2024-05-01T12%3A00%3A00.007Z',
    );
    expect(listPath()).toBe('/purge-cache/list');
    expect(listPath('tok/en+', 10)).toBe('/purge-cache/list?continuationToken=tok%2Fen%2B&limit=10');
  });

  it('refuses pool ids that would change the path', () => {
    for (const pool of [
      { provisionerId: '..', workerType: 'wt' },
      { provisionerId: 'p', workerType: 'a/b' },
      { provisionerId: 'p', workerType: 'x'.repeat(39) },
      { provisionerId: '', workerType: 'wt' },
    ]) {
      expect(() => purgeRequestsPath(pool)).toThrow(ConfigError);
    }
  });

  it('sends exactly these requests on the wire', async () => {
    const s = await echoServer();
    const client = new PurgeCacheClient({ rootUrl: `${s.url}/` });
    await client.purgeRequests(POOL_PARTS);
    await client.purgeRequests(POOL_PARTS, new Date('2024-05-01T12:00:00Z'));
    await client.purgeCache(POOL_PARTS, 'a/b c');
    await client.allPurgeRequests({ limit: 5 });
    await client.ping();
    expect(s.seen.map((r) => `${r.method} ${r.url}`)).toEqual([
      'GET /api/purge-cache/v1/purge-cache/test-prov/test-worker',
      'GET /api/purge-cache/v1/purge-cache/test-prov/test-worker?since=2024-05-01T12%3A00%3A00.000Z',
      'POST /api/purge-cache/v1/purge-cache/test-prov/test-worker',
      'GET /api/purge-cache/v1/purge-cache/list?limit=5',
      'GET /api/purge-cache/v1/ping',
    ]);
    // Anonymous: no credentials, no Authorization header.
    expect(s.seen.every((r) => r.headers.authorization === undefined)).toBe(true);
    expect(s.seen[2]!.headers['content-type']).toBe('application/json');
  });

  it('sends the purgeCache body as {"cacheName": ...}', async () => {
    let body = '';
    const s = await listen((req, res) => {
      req.setEncoding('utf8');
      req.on('data', (c: string) => (body += c));
      req.on('end', () => {
        res.writeHead(204);
        res.end();
      });
    });
    servers.push(s);
    await new PurgeCacheClient({ rootUrl: s.url }).purgeCache(POOL_PARTS, 'naïve "name"/..');
    expect(JSON.parse(body)).toEqual({ cacheName: 'naïve "name"/..' });
  });

  it('needs a root URL or a proxy URL', () => {
    expect(() => new PurgeCacheClient({})).toThrow(ConfigError);
    expect(() => new PurgeCacheClient({ rootUrl: 'http://127.0.0.1:1', timeoutMs: 0 })).toThrow(/timeoutMs/);
  });
});
