/** The cursor: what it was taken for, where the next query starts, and the clock estimates it leans on. */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { sinceFor, advanceCursor, gapExceeded, clockOffsetMs, queryMark, identityChanges, locationId } from '../../src/core/cursor.js';
import { reconcileIdentity, type ContractState } from '../../src/core/contract.js';
import { MARGIN, T, record, identity, emptyContract } from '../helpers/core.js';

describe('the cursor identity', () => {
  it('names what changed, and nothing when nothing did', () => {
    expect(identityChanges(identity, identity)).toEqual([]);
    expect(identityChanges(identity, { ...identity, workerPool: 'p/x' })).toEqual(['the worker pool changed from p/w to p/x']);
    expect(identityChanges(identity, { ...identity, service: 'proxy:http://proxy' })[0]).toMatch(/service changed/);
    expect(identityChanges(identity, { ...identity, locations: ['/a', '/c'] })).toEqual(['cache locations added: /c', 'cache locations removed: /b']);
    expect(identityChanges(null, identity)[0]).toMatch(/no record/);
  });

  it('drops the cursor when anything differs, and keeps the records', () => {
    const state = { ...emptyContract(), records: [record('x', T - 1000)] };
    const { state: next, changes } = reconcileIdentity(state, { ...identity, workerPool: 'p/x' });
    expect(changes).toHaveLength(1);
    expect(next.cursor).toBeNull();
    expect(next.identity?.workerPool).toBe('p/x');
    expect(next.records).toEqual(state.records);
    expect(reconcileIdentity(state, identity).state).toBe(state);
  });

  it('binds a fresh state silently', () => {
    const fresh: ContractState = { ...emptyContract(), identity: null, cursor: null };
    const { state, changes } = reconcileIdentity(fresh, identity);
    expect(changes).toEqual([]);
    expect(state.identity).toEqual(identity);
  });

  it('identifies a single cache by name and path, a root by its path', () => {
    expect(locationId({ root: '/r', name: 'n', path: '/r/n' })).toBe('/r');
    expect(locationId({ root: null, name: 'n', path: '/x/n' })).toBe('n=/x/n');
  });
});

describe('cursor, gap and clock', () => {
  it('since is the last query start minus the margin, null at first', () => {
    expect(sinceFor(null, MARGIN)).toBeNull();
    expect(sinceFor(T, MARGIN)).toBe(T - MARGIN);
  });
  it('the cursor never moves backwards', () => {
    fc.assert(
      fc.property(fc.option(fc.integer({ min: 0, max: 2 ** 45 }), { nil: null }), fc.integer({ min: 0, max: 2 ** 45 }), (cursor, start) => {
        const next = advanceCursor(cursor, start);
        expect(next).toBeGreaterThanOrEqual(start);
        if (cursor !== null) expect(next).toBeGreaterThanOrEqual(cursor);
      }),
    );
  });
  it('a gap is exceeded only after a previous success older than the limit', () => {
    expect(gapExceeded(null, T, 1000)).toBe(false);
    expect(gapExceeded(T - 1000, T, 1000)).toBe(false);
    expect(gapExceeded(T - 1001, T, 1000)).toBe(true);
    expect(gapExceeded(T - 10_000, T, 0)).toBe(false);
  });
  it('estimates the clock offset from a one-second Date header to within a second', () => {
    // Server 90 s ahead; its Date header truncates to the second.
    const requestStart = T + 250;
    const responseEnd = T + 450;
    const serverTrue = (requestStart + responseEnd) / 2 + 90_000;
    const header = Math.floor(serverTrue / 1000) * 1000;
    expect(Math.abs(clockOffsetMs(header, requestStart, responseEnd) - 90_000)).toBeLessThanOrEqual(1000);
  });
});

describe('properties of the cursor', () => {
  const time = fc.integer({ min: 0, max: 2 ** 45 });
  it('since never reaches past the cursor, and a cursor ahead of the clock asks for everything', () => {
    fc.assert(
      fc.property(time, time, (cursor, now) => {
        const since = sinceFor(cursor, MARGIN, now);
        if (now < cursor) expect(since).toBeNull();
        else expect(since).toBe(cursor - MARGIN);
      }),
    );
  });
  it("a query's mark is never later than its own start, whatever the Date header says", () => {
    fc.assert(
      fc.property(time, fc.option(fc.integer({ min: -(2 ** 40), max: 2 ** 40 }), { nil: null }), (start, offset) => {
        expect(queryMark(start, offset, MARGIN)).toBeLessThanOrEqual(start);
      }),
    );
  });
});
