/** Fleet standings: one state per cache name, for its latest request. */
import { describe, expect, it } from 'vitest';
import { T, record } from '../helpers/core.js';

describe('request standings (fleet convergence)', () => {
  it('one per name, for its latest request, by the most pressing state', async () => {
    const { requestStandings } = await import('../../src/core/convergence.js');
    const records = [
      record('a', T, { judged: ['1@/a', '2@/b'] }),
      record('a', T + 5, { judged: ['1@/a'] }),
      record('b', T + 1, { judged: ['1@/a', '2@/b'] }),
      record('c', T + 2, { judged: ['1@/a', '2@/b'] }),
      record('d', T + 3, { judged: ['1@/a', '2@/b'] }),
    ];
    const pending = [
      { name: 'b', path: '/a/b', key: 'k', beforeMs: T + 1, reason: 'in-use' as const, since: T },
      { name: 'c', path: '/a/c', key: 'k2', beforeMs: T + 2, reason: 'failed' as const, since: T },
    ];
    expect(requestStandings(records, pending, ['/a', '/b'], 10)).toEqual([
      { cacheName: 'a', beforeMs: T + 5, state: 'unreadable' },
      { cacheName: 'd', beforeMs: T + 3, state: 'applied' },
      { cacheName: 'c', beforeMs: T + 2, state: 'failed' },
      { cacheName: 'b', beforeMs: T + 1, state: 'in-use' },
    ]);
    expect(requestStandings(records, pending, ['/a', '/b'], 2).map((s) => s.cacheName)).toEqual(['a', 'd']);
  });
});
