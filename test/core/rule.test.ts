/** The purge rule: the margin, unknown creation times, and the bound set by when a request was received. */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { isCondemned, createdAt, requestCondemns } from '../../src/core/rule.js';
import { MARGIN, T, cache } from '../helpers/core.js';

describe('the purge rule', () => {
  it('purges a cache created before `before`', () => {
    expect(isCondemned(T - 1, T, MARGIN)).toBe(true);
  });
  it('purges a cache created within the skew margin after `before` (the worker clock may lag)', () => {
    expect(isCondemned(T + MARGIN - 1, T, MARGIN)).toBe(true);
  });
  it('keeps a cache created at or after `before` + margin', () => {
    expect(isCondemned(T + MARGIN, T, MARGIN)).toBe(false);
    expect(isCondemned(T + MARGIN + 1, T, MARGIN)).toBe(false);
  });
  it('treats an unknown creation time as older than the request', () => {
    expect(isCondemned(null, T, MARGIN)).toBe(true);
  });
  it('uses birth time first, then first-seen, else null', () => {
    expect(createdAt(cache('a', 5, 'k'), { k: 9 })).toBe(5);
    expect(createdAt(cache('a', null, 'k'), { k: 9 })).toBe(9);
    expect(createdAt(cache('a', null, 'k'), {})).toBeNull();
  });
});

describe('the rule bounded by receipt', () => {
  const request = { beforeMs: T, receivedAt: T + 1000 };
  it('spares a directory created after the request arrived, even inside the margin', () => {
    expect(requestCondemns(T + 1001, request, MARGIN, T + 2000)).toBe(false);
    expect(requestCondemns(T + 1000, request, MARGIN, T + 2000)).toBe(true);
  });
  it('gives no exemption to a birth time in the future (the clock was set back since)', () => {
    expect(requestCondemns(T + 1001, request, MARGIN, T + 500)).toBe(true);
  });
  it('still keeps what the margin keeps, and condemns an unknown creation time', () => {
    expect(requestCondemns(T + MARGIN, request, MARGIN, T + MARGIN)).toBe(false);
    expect(requestCondemns(null, request, MARGIN, T)).toBe(true);
  });
});

describe('properties of the rule', () => {
  const time = fc.integer({ min: T - 10 * MARGIN, max: T + 10 * MARGIN });
  const created = fc.option(time, { nil: null });
  it('an older directory is condemned whenever a newer one is', () => {
    fc.assert(
      fc.property(time, time, time, (a, b, before) => {
        const [older, newer] = a <= b ? [a, b] : [b, a];
        if (isCondemned(newer, before, MARGIN)) expect(isCondemned(older, before, MARGIN)).toBe(true);
      }),
    );
  });
  it('the bound by receipt only ever spares a directory, never condemns one the margin rule keeps', () => {
    fc.assert(
      fc.property(created, time, time, time, (createdMs, beforeMs, receivedAt, nowMs) => {
        if (requestCondemns(createdMs, { beforeMs, receivedAt }, MARGIN, nowMs)) expect(isCondemned(createdMs, beforeMs, MARGIN)).toBe(true);
      }),
    );
  });
  it('a directory whose creation time is unknown is always condemned', () => {
    fc.assert(fc.property(time, time, time, (beforeMs, receivedAt, nowMs) => requestCondemns(null, { beforeMs, receivedAt }, MARGIN, nowMs)));
  });
});
