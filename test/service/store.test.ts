/** serve's data file: persistence, atomic replacement, mode 0600, and refusing a corrupt file. Also the clients file. */
import { link, mkdir, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/errors.js';
import { loadClientsFile, startService, type RunningService } from '../../src/service/index.js';
import { ServiceDataError } from '../../src/errors.js';
import { makeTempDir, type TempDir } from '../helpers/tmp.js';
import { call, manualClock, purge } from './helpers.js';

let dir: TempDir;
let svc: RunningService | undefined;
beforeEach(async () => {
  dir = await makeTempDir('pca-serve-');
});
afterEach(async () => {
  await svc?.close();
  svc = undefined;
  await dir.cleanup();
});

describe('serve: data file', () => {
  it('keeps requests across restarts, in a 0600 file with no temporary files left behind', async () => {
    const dataFile = path.join(dir.path, 'requests.json');
    const clock = manualClock(Date.UTC(2024, 0, 1));
    svc = await startService({ dataFile, clock });
    expect((await stat(dataFile)).mode & 0o777).toBe(0o600);
    await purge(svc.url, 'p/w', 'a');
    await purge(svc.url, 'p/w', 'b');
    await svc.close();

    expect((await stat(dataFile)).mode & 0o777).toBe(0o600);
    expect(await readdir(dir.path)).toEqual(['requests.json']);
    const saved = JSON.parse(await readFile(dataFile, 'utf8'));
    expect(saved.version).toBe(1);
    expect(saved.requests.map((r: { cacheName: string }) => r.cacheName)).toEqual(['a', 'b']);

    svc = await startService({ dataFile, clock });
    expect((await call(svc.url, '/purge-cache/p/w')).json.requests.map((r: { cacheName: string }) => r.cacheName)).toEqual(['a', 'b']);
  });

  it('replaces the file by rename: a reader holding the old file never sees a half-written one', async () => {
    const dataFile = path.join(dir.path, 'requests.json');
    svc = await startService({ dataFile });
    await purge(svc.url, 'p/w', 'first');
    const before = await readFile(dataFile, 'utf8');
    // A second name for the current inode: an in-place write would change it, a rename cannot.
    await link(dataFile, path.join(dir.path, 'old-inode.json'));
    await purge(svc.url, 'p/w', 'second');
    expect(await readFile(path.join(dir.path, 'old-inode.json'), 'utf8')).toBe(before);
    expect((await stat(dataFile)).ino).not.toBe((await stat(path.join(dir.path, 'old-inode.json'))).ino);
    expect(JSON.parse(await readFile(dataFile, 'utf8')).requests).toHaveLength(2);
  });

  it('loses nothing when many POSTs arrive at once', async () => {
    const dataFile = path.join(dir.path, 'requests.json');
    svc = await startService({ dataFile });
    const url = svc.url;
    const results = await Promise.all(Array.from({ length: 40 }, (_, i) => purge(url, 'p/w', `c${i}`)));
    expect(results.every((r) => r.status === 204)).toBe(true);
    await svc.close();
    svc = undefined;
    expect(JSON.parse(await readFile(dataFile, 'utf8')).requests).toHaveLength(40);
    expect(await readdir(dir.path)).toEqual(['requests.json']);
  });

  it('drops expired requests when loading', async () => {
    const dataFile = path.join(dir.path, 'requests.json');
    const clock = manualClock(Date.UTC(2024, 0, 1));
    svc = await startService({ dataFile, clock, requestTtlMs: 1000 });
    await purge(svc.url, 'p/w', 'short-lived');
    await svc.close();
    clock.advance(1000);
    svc = await startService({ dataFile, clock, requestTtlMs: 1000 });
    expect((await call(svc.url, '/purge-cache/list')).json.requests).toEqual([]);
    expect(JSON.parse(await readFile(dataFile, 'utf8')).requests).toEqual([]);
  });

  it('caps limit at 1000', async () => {
    const dataFile = path.join(dir.path, 'requests.json');
    const expires = new Date(Date.now() + 60_000).toISOString();
    const requests = Array.from({ length: 1005 }, (_, i) => ({
      provisionerId: 'p',
      workerType: 'w',
      cacheName: `c${String(i).padStart(4, '0')}`,
      before: new Date().toISOString(),
      expires,
    }));
    await writeFile(dataFile, JSON.stringify({ version: 1, requests }));
    svc = await startService({ dataFile });
    const first = await call(svc.url, '/purge-cache/list?limit=5000');
    expect(first.json.requests).toHaveLength(1000);
    const second = await call(svc.url, `/purge-cache/list?continuationToken=${encodeURIComponent(first.json.continuationToken)}`);
    expect(second.json.requests.map((r: { cacheName: string }) => r.cacheName)).toEqual(['c1000', 'c1001', 'c1002', 'c1003', 'c1004']);
    expect(second.json.continuationToken).toBeUndefined();
  });

  it('refuses to start on a corrupt data file, naming it', async () => {
    const dataFile = path.join(dir.path, 'requests.json');
    for (const text of ['{"version":1,"requests":[', '{"version":2,"requests":[]}', '[]']) {
      await writeFile(dataFile, text);
      const err = await startService({ dataFile }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ServiceDataError);
      expect((err as ServiceDataError).code).toBe('PCA_SERVICE_DATA');
      expect((err as Error).message).toContain(dataFile);
    }
  });

  it('refuses to start when the data file cannot be written', async () => {
    const err = await startService({ dataFile: path.join(dir.path, 'missing-dir', 'requests.json') }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ServiceDataError);
  });

  it('answers 500 InternalServerError, revealing nothing, when a write fails later', async () => {
    const sub = path.join(dir.path, 'sub');
    await mkdir(sub);
    svc = await startService({ dataFile: path.join(sub, 'requests.json') });
    await rm(sub, { recursive: true });
    const res = await purge(svc.url, 'p/w', 'x');
    expect(res.status).toBe(500);
    expect(res.json.code).toBe('InternalServerError');
    expect(res.json.message).not.toContain(sub);
  });
});

describe('clients file', () => {
  it('loads {clientId: {accessToken, scopes}}', async () => {
    const file = path.join(dir.path, 'clients.json');
    await writeFile(file, JSON.stringify({ worker: { accessToken: 'tok-1234567890', scopes: ['purge-cache:*'] } }));
    expect(await loadClientsFile(file)).toEqual({ worker: { accessToken: 'tok-1234567890', scopes: ['purge-cache:*'] } });
  });

  it('refuses a missing, malformed or misshapen file with a ConfigError that quotes no token', async () => {
    const file = path.join(dir.path, 'clients.json');
    const secret = 'very-secret-token-value';
    const cases = [
      undefined,
      `{"worker": {"accessToken": "${secret}", "scopes": [}`,
      JSON.stringify({ worker: { accessToken: secret } }),
      JSON.stringify({ worker: { accessToken: secret, scopes: [], extra: 1 } }),
      JSON.stringify({ worker: { accessToken: secret, scopes: ['naïve'] } }),
      JSON.stringify([]),
    ];
    for (const text of cases) {
      await rm(file, { force: true });
      if (text !== undefined) await writeFile(file, text);
      const err = await loadClientsFile(file).catch((e: unknown) => e);
      expect(err, text).toBeInstanceOf(ConfigError);
      expect((err as ConfigError).message).toContain(file);
      expect((err as ConfigError).message).not.toContain(secret);
    }
  });
});
