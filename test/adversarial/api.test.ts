/**
 * The local API under attack ("Local API"): oversized bodies, slow
 * clients, malformed JSON, traversal attempts in {name}, and tokens of the
 * wrong length — against the `run` daemon (the built CLI) over its unix socket
 * and over TCP on 127.0.0.1. Nothing may be purged but the exact cache named,
 * nothing outside the root may change, and the daemon must stay up.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect, type Socket } from 'node:net';
import { mkdir, readdir, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { makeFixture, exists, hashTree, readState, type Fixture } from '../helpers/fixture.js';
import { encodeCacheName } from '../../src/core/names.js';
import { TRASH_DIR_NAME } from '../../src/edges/caches/trash.js';
import { call, bearer, startDaemon, tokenFile, firstCycle, finishedTask, TOKEN, startGate, type Daemon, type Gate } from '../helpers/api.js';
import { isRunning, memoryOf, record } from './support.js';
import { eventually } from '../helpers/wait.js';

let fx: Fixture;
let d: Daemon;
let gate: Gate;
const auth = bearer(TOKEN);

beforeAll(async () => {
  fx = await makeFixture();
  for (const name of ['victim', '..', 'a/b', 'bystander', '.']) await fx.makeCache(name);
  await symlink(fx.outside, path.join(fx.root, 'link-out'));
  await mkdir(path.join(fx.root, '.hidden'));
  await writeFile(path.join(fx.root, '.hidden', 'keep'), 'agent-owned\n');
  gate = await startGate(fx.service.url);
  d = await startDaemon(fx, { serviceUrl: gate.url, args: ['--api-token-file', await tokenFile(fx), '--in-use-checks', 'locks'] });
  await firstCycle(d);
});
afterAll(async () => {
  // Unset when beforeAll failed early: stop only what was started.
  const result = await (d as Daemon | undefined)?.stop();
  await (gate as Gate | undefined)?.close();
  await (fx as Fixture | undefined)?.close();
  expect(result?.code, result?.stderr).toBe(0);
});

/** A raw connection to the TCP port, for what an HTTP client would not send. */
function raw(): Promise<Socket & { received: () => string; ended: Promise<void> }> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port: d.tcp.port }) as Socket & { received: () => string; ended: Promise<void> };
    let data = '';
    socket.setEncoding('utf8').on('data', (c: string) => (data += c));
    socket.received = () => data;
    socket.ended = new Promise((r) =>
      socket.on('close', () => {
        r();
      }),
    );
    socket.on('error', () => {});
    socket.once('connect', () => {
      resolve(socket);
    });
    socket.once('error', reject);
  });
}

async function alive(): Promise<void> {
  expect(isRunning(d.child), d.child.output.stderr.slice(-3000)).toBe(true);
  expect((await call(d.socket, 'GET', '/healthz')).status).toBe(200);
  expect((await call(d.tcp, 'GET', '/v1/status', { headers: auth })).status).toBe(200);
}

describe('the local API under attack', () => {
  it('oversized bodies, headers and queries are refused with bounded memory', async (ctx) => {
    const cases: [string, () => Promise<number>][] = [
      [
        'a declared 10 MB body',
        async () =>
          (
            await call(d.tcp, 'PUT', '/v1/caches/victim/leases/o', { headers: { ...auth, 'content-length': String(10 * 1024 * 1024) }, body: '{}' }).catch(
              () => ({ status: -1 }),
            )
          ).status,
      ],
      [
        'a 4 MB chunked body',
        async () => (await call(d.tcp, 'PUT', '/v1/caches/victim/leases/o', { headers: auth, body: Buffer.alloc(4 * 1024 * 1024, ' '), chunked: true })).status,
      ],
      [
        'a 4 MB chunked body over the socket',
        async () => (await call(d.socket, 'POST', '/v1/sync', { body: Buffer.alloc(4 * 1024 * 1024, '['), chunked: true })).status,
      ],
      [
        'a 65 KB JSON body',
        async () => (await call(d.socket, 'PUT', '/v1/caches/victim/leases/o', { body: `{"ttlSeconds":60${' '.repeat(65 * 1024)}}` })).status,
      ],
      [
        'a 20 KB header',
        async () => (await call(d.tcp, 'GET', '/v1/status', { headers: { ...auth, 'x-junk': 'j'.repeat(20 * 1024) } }).catch(() => ({ status: -1 }))).status,
      ],
      ['a 100 KB path', async () => (await call(d.socket, 'DELETE', `/v1/caches/${'a'.repeat(100 * 1024)}`).catch(() => ({ status: -1 }))).status],
      [
        '10,000 query parameters',
        async () =>
          (await call(d.socket, 'GET', `/v1/caches?${Array.from({ length: 10_000 }, (_, i) => `p${i}=1`).join('&')}`).catch(() => ({ status: -1 }))).status,
      ],
      ['a repeated query parameter', async () => (await call(d.socket, 'DELETE', '/v1/caches/victim?dry_run=1&dry_run=0')).status],
    ];
    const statuses: Record<string, number> = {};
    for (const [name, attempt] of cases) {
      const status = await attempt();
      statuses[name] = status;
      // Refused: 413 for bodies, 431 for headers, 400 for the rest; -1 when the server closed the connection on it.
      expect([400, 413, 414, 431, -1], `${name} → ${status}`).toContain(status);
      await alive();
    }
    expect(await exists(path.join(fx.root, 'victim'))).toBe(true);
    expect((await readState(fx.stateDir)).leases).toEqual([]);
    const mem = await memoryOf(d.child.pid!);
    expect(mem.peakMiB).toBeLessThan(400);
    record(ctx, {
      cases: cases.length,
      unit: 'oversized requests',
      detail: `${Object.entries(statuses)
        .map(([k, v]) => `${k}: ${v === -1 ? 'connection closed' : v}`)
        .join('; ')}; peak RSS ${mem.peakMiB} MiB`,
    });
  });

  it('slow clients neither block others nor hold connections for ever', async (ctx) => {
    // 20 connections that send their headers a byte at a time, and 5 that stall in the body.
    const slowHeaders = await Promise.all(Array.from({ length: 20 }, () => raw()));
    const slowBodies = await Promise.all(Array.from({ length: 5 }, () => raw()));
    const request = `GET /v1/status HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${TOKEN}\r\n\r\n`;
    let i = 0;
    const trickle = setInterval(() => {
      for (const s of slowHeaders) if (!s.destroyed) s.write(request[i % 20]!);
      i++;
    }, 500);
    for (const s of slowBodies)
      s.write(
        `PUT /v1/caches/victim/leases/slow HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${TOKEN}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{`,
      );
    try {
      // Others are served meanwhile, on both transports.
      for (let k = 0; k < 5; k++) await alive();
      const sync = await call(d.socket, 'POST', '/v1/sync');
      expect(sync.status).toBe(202);
      expect((await finishedTask(d.socket, sync.json.task_id)).code).toBe(0);
      // The server gives up on the header tricklers (headersTimeout; Node checks every 30 s at most).
      await eventually(
        () => slowHeaders.every((s) => s.destroyed || s.readyState === 'closed' || s.received().includes('408')),
        'the server to drop the slow-header clients',
        { timeoutMs: 75_000 },
      );
    } finally {
      clearInterval(trickle);
      for (const s of [...slowHeaders, ...slowBodies]) s.destroy();
    }
    await alive();
    expect((await readState(fx.stateDir)).leases).toEqual([]);
    record(ctx, {
      cases: slowHeaders.length + slowBodies.length,
      unit: 'slow connections',
      detail: '20 sending headers a byte every 500 ms (dropped by the server), 5 stalled mid-body; /healthz, /v1/status and a sync were served meanwhile',
    });
  }, 1_200_000);

  it('malformed JSON bodies are 400s; nothing is created or started', async (ctx) => {
    const bodies = [
      '{',
      '{"ttlSeconds": }',
      '{"ttlSeconds": 60,}',
      "{'ttlSeconds': 60}",
      'null',
      '[]',
      '"str"',
      '1',
      'true',
      '\ufeff{}',
      '\xff\xfe\x00{',
      '{"ttlSeconds": "60"}',
      '{"ttlSeconds": 1e400}',
      '{"ttlSeconds": -5}',
      '{"ttlSeconds": NaN}',
      '{"ttlSeconds": null}',
      '{"ttlSeconds": [60]}',
      '{"__proto__": {"ttlSeconds": 1}}',
      '{"constructor": {"prototype": {"polluted": true}}}',
      '{"ttlSeconds": 60, "owner": "root"}',
      '['.repeat(60_000),
      '{"a":'.repeat(10_000),
    ];
    const gateBefore = gate.queries;
    const seen = new Set<number>();
    for (const body of bodies) {
      for (const [target, headers] of [
        [d.socket, {}],
        [d.tcp, auth],
      ] as const) {
        const lease = await call(target, 'PUT', '/v1/caches/victim/leases/mallory', { headers, body });
        expect(lease.status, `${JSON.stringify(body.slice(0, 40))}: ${lease.text}`).toBe(400);
        expect(['MalformedPayload', 'InputValidationError']).toContain(lease.json.code);
        seen.add(lease.status);
        const sync = await call(target, 'POST', '/v1/sync', { headers, body });
        expect(sync.status, `sync with ${JSON.stringify(body.slice(0, 40))}`).toBe(400);
        const purge = await call(target, 'DELETE', '/v1/caches/victim', { headers, body });
        expect(purge.status, `purge with ${JSON.stringify(body.slice(0, 40))}`).toBe(400);
      }
    }
    await alive();
    expect(gate.queries).toBe(gateBefore);
    expect((await readState(fx.stateDir)).leases).toEqual([]);
    expect(await exists(path.join(fx.root, 'victim'))).toBe(true);
    record(ctx, {
      cases: bodies.length * 2 * 3,
      unit: 'requests',
      detail: `${bodies.length} malformed bodies × 3 routes (lease, sync, purge) × 2 transports: all 400 with a {code, message}; no lease, no sync, no purge`,
    });
  });

  it('traversal attempts in {name} purge nothing but the exact cache named', async (ctx) => {
    const outsideBefore = await hashTree(fx.outside);
    const hiddenBefore = await hashTree(path.join(fx.root, '.hidden'));
    const refused = [
      '..%2F..%2Foutside',
      '..%2F..',
      '%2E%2E%2F%2E%2E',
      '%2e%2e%2f',
      '..%5C..',
      '%00',
      'victim%00',
      'victim%2F',
      '%2Fvictim',
      '.%2Fvictim',
      'victim%2F..',
      '%252E%252E',
      '%25',
      '.purge-cache-agent-trash',
      '%2Epurge-cache-agent-trash',
      '.hidden',
      '%2Ehidden',
      'link-out',
      'link-out%2F..',
      'outside',
      '%E2%80%AEmitciv',
      'VICTIM',
      'victim%20',
      '%20victim',
      'v%C3%ADctim',
      '..%00',
      '...',
      '~',
      '*',
      'victim*',
      '%2A',
    ];
    const malformed = ['%C0%AE%C0%AE', '%E0%80%AE', '%', '%2', '%zz', '%ED%A0%80'];
    const noRoute = ['/v1/caches//victim', '/v1/caches/victim/..', '/v1/caches/victim/../bystander', '/v1/caches/victim/leases'];
    const results: Record<string, number> = {};
    for (const seg of refused) {
      for (const [target, headers] of [
        [d.socket, {}],
        [d.tcp, auth],
      ] as const) {
        const dry = await call(target, 'DELETE', `/v1/caches/${seg}?dry_run=1`, { headers });
        const real = await call(target, 'DELETE', `/v1/caches/${seg}`, { headers });
        expect(dry.status, `${seg}: ${dry.text}`).toBe(404);
        expect(real.status, `${seg}: ${real.text}`).toBe(404);
        results[seg] = real.status;
      }
    }
    for (const seg of malformed) {
      const reply = await call(d.socket, 'DELETE', `/v1/caches/${seg}`);
      expect(reply.status, `${seg}: ${reply.text}`).toBe(400);
      results[seg] = reply.status;
    }
    for (const p of noRoute) {
      const reply = await call(d.socket, 'DELETE', p);
      expect([404, 405], `${p}: ${reply.text}`).toContain(reply.status);
      results[p] = reply.status;
    }
    // Leases and tasks with traversal names touch no file.
    for (const seg of ['..%2F..', '..%2F..%2Foutside', '%00']) {
      const lease = await call(d.socket, 'PUT', `/v1/caches/${seg}/leases/tester`, { body: '{"ttlSeconds": 5}' });
      expect([200, 400]).toContain(lease.status);
      expect((await call(d.socket, 'GET', `/v1/tasks/${seg}`)).status).toBe(404);
    }
    await alive();
    expect(await hashTree(fx.outside)).toBe(outsideBefore);
    expect(await hashTree(path.join(fx.root, '.hidden'))).toBe(hiddenBefore);
    const entries = await readdir(fx.root);
    for (const name of ['victim', '..', 'a/b', 'bystander', '.']) expect(entries, name).toContain(encodeCacheName(name));
    expect(entries).toContain('link-out');

    // The caches really named `..`, `.` and `a/b` are purged by their exact names — and nothing else is.
    for (const seg of ['%2E%2E', '..', '%2E', 'a%2Fb']) {
      const reply = await call(d.tcp, 'DELETE', `/v1/caches/${seg}`, { headers: auth });
      if (reply.status === 202) expect((await finishedTask(d.tcp, reply.json.task_id, auth)).code).toBe(0);
      else expect(reply.status, `${seg}: ${reply.text}`).toBe(404); // already purged by an earlier spelling
      results[`${seg} (a real cache)`] = reply.status;
    }
    const after = await readdir(fx.root);
    expect(after.sort()).toEqual(['.hidden', TRASH_DIR_NAME, encodeCacheName('bystander'), 'link-out', encodeCacheName('victim')].sort());
    expect(await hashTree(fx.outside)).toBe(outsideBefore);
    record(ctx, {
      cases: refused.length * 2 * 2 + malformed.length + noRoute.length + 3 + 4,
      unit: 'requests',
      detail: `${refused.length} traversal names (dry run and real, both transports) → 404; ${malformed.length} malformed encodings → 400; ${noRoute.length} extra-segment paths → 404/405; then the caches really named "..", "." and "a/b" purged by exact name, nothing else`,
    });
  });

  it('tokens of the wrong length (or form) are refused, and never start anything', async (ctx) => {
    const wrong = [
      undefined,
      '',
      'Bearer',
      'Bearer ',
      'Bearer x',
      `Bearer ${TOKEN.slice(0, -1)}`,
      `Bearer ${TOKEN}x`,
      `Bearer ${TOKEN} ${TOKEN}`,
      `Bearer ${TOKEN.toUpperCase()}`,
      `Bearer ${TOKEN.slice(1)}${TOKEN[0]}`,
      `Basic ${Buffer.from(`u:${TOKEN}`).toString('base64')}`,
      `Token ${TOKEN}`,
      TOKEN,
      `Bearer ${Buffer.from(TOKEN).toString('base64')}`,
      `Bearer ${'x'.repeat(8_000)}`,
      `Bearer ${TOKEN.repeat(200)}`,
      `Bearer\t${TOKEN}x`,
      `Bearer ${TOKEN},`,
      `Bearer "${TOKEN}"`,
    ];
    const gateBefore = gate.queries;
    const statuses = new Set<number>();
    for (const value of wrong) {
      const headers: Record<string, string> = value === undefined ? {} : { authorization: value };
      const status = await call(d.tcp, 'GET', '/v1/status', { headers });
      expect(status.status, JSON.stringify(value?.slice(0, 40))).toBe(401);
      expect(status.text).not.toContain(TOKEN);
      const sync = await call(d.tcp, 'POST', '/v1/sync', { headers });
      expect(sync.status).toBe(401);
      const purge = await call(d.tcp, 'DELETE', '/v1/caches/victim', { headers });
      expect(purge.status).toBe(401);
      statuses.add(status.status);
    }
    // Two Authorization headers, the first wrong: refused (Node keeps the first).
    const s = await raw();
    s.write(`GET /v1/status HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer wrong\r\nAuthorization: Bearer ${TOKEN}\r\nConnection: close\r\n\r\n`);
    await s.ended;
    expect(s.received()).toMatch(/^HTTP\/1\.1 401/);
    // A header over Node's limit: 431, not a crash.
    const huge = await call(d.tcp, 'GET', '/v1/status', { headers: { authorization: `Bearer ${'y'.repeat(20_000)}` } }).catch(() => ({ status: -1 }));
    expect([431, -1]).toContain(huge.status);
    expect(gate.queries).toBe(gateBefore);
    expect(await exists(path.join(fx.root, 'victim'))).toBe(true);
    // The right one still works.
    expect((await call(d.tcp, 'GET', '/v1/status', { headers: auth })).status).toBe(200);
    await alive();
    record(ctx, {
      cases: wrong.length * 3 + 2,
      unit: 'requests',
      detail: `${wrong.length} wrong Authorization values (missing, empty, one char short or long, 8 KB, 6 KB, other schemes, re-encoded) × status/sync/purge → 401; a duplicated header with the wrong one first → 401; a 20 KB header → 431`,
    });
  });
});
