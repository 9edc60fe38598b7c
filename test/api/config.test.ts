/** Where the local API listens and where its clients look, and which addresses count as loopback. */
import { describe, expect, it } from 'vitest';
import path from 'node:path';
import { isLoopback, clientSocketCandidates, serverSocketPath, SYSTEMD_SOCKET } from '../../src/api/config.js';
import { DEFAULTS, type Settings } from '../../src/config/index.js';

describe('isLoopback', () => {
  it('knows loopback addresses from the rest', () => {
    for (const host of ['127.0.0.1', '127.1.2.3', '::1', '0:0:0:0:0:0:0:1', 'localhost', '::ffff:127.0.0.1']) expect(isLoopback(host), host).toBe(true);
    for (const host of ['0.0.0.0', '::', '10.0.0.1', '192.168.1.1', 'example.com', '::ffff:10.0.0.1', 'localhost.example.com'])
      expect(isLoopback(host), host).toBe(false);
  });
});

describe('socket paths', () => {
  const settings = (extra: Partial<Settings> = {}): Settings => ({ ...DEFAULTS, ...extra });
  it('defaults to $RUNTIME_DIRECTORY/api.sock, else <state dir>/api.sock', () => {
    expect(serverSocketPath(settings({ stateDir: '/x/state' }), {})).toBe('/x/state/api.sock');
    expect(serverSocketPath(settings({ stateDir: '/x/state' }), { RUNTIME_DIRECTORY: '/run/a:/run/b' })).toBe('/run/a/api.sock');
    expect(serverSocketPath(settings({ apiSocket: '/y/s.sock' }), { RUNTIME_DIRECTORY: '/run/a' })).toBe('/y/s.sock');
  });
  it('clients also try the systemd location, but only with the default state directory', () => {
    expect(clientSocketCandidates(settings(), {})).toEqual([path.join(DEFAULTS.stateDir, 'api.sock'), SYSTEMD_SOCKET]);
    expect(clientSocketCandidates(settings({ stateDir: '/x/state' }), {})).toEqual(['/x/state/api.sock']);
    expect(clientSocketCandidates(settings({ stateDir: '/x/state' }), { RUNTIME_DIRECTORY: '/run/a' })).toEqual(['/run/a/api.sock', '/x/state/api.sock']);
  });
});
