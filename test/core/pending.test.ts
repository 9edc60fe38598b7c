/** Pending purges and first-seen times carried from one look to the next. */
import { describe, expect, it } from 'vitest';
import { type Outcome } from '../../src/core/judge.js';
import { nextPending, nextFirstSeen } from '../../src/core/pending.js';
import { T, cache } from '../helpers/core.js';

describe('nextPending and nextFirstSeen', () => {
  it('keeps deferred and failed purges, drops purged and gone ones', () => {
    const c = (name: string) => ({ cache: cache(name, 0), createdMs: 0, beforeMs: T, since: T });
    const outcomes: Outcome[] = [
      { kind: 'purged', candidate: c('p') },
      { kind: 'gone', candidate: c('g') },
      { kind: 'deferred', candidate: c('d'), holders: [{ detail: 'x' }] },
      { kind: 'failed', candidate: c('f'), error: 'EACCES' },
    ];
    const pending = nextPending(outcomes);
    expect(pending.map((p) => [p.name, p.reason, p.lastError])).toEqual([
      ['d', 'in-use', undefined],
      ['f', 'failed', 'EACCES'],
    ]);
  });

  it('records first-seen only for caches without birth time, keeps old entries, forgets vanished ones', () => {
    const next = nextFirstSeen({ k1: 100, vanished: 5 }, [cache('a', null, 'k1'), cache('b', null, 'k2'), cache('c', 7, 'k3')], 999);
    expect(next).toEqual({ k1: 100, k2: 999 });
  });
});
