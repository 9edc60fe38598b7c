/** Request records: one per (cacheName, before), the first receipt kept, pruned once the service has forgotten them. */
import { describe, expect, it } from 'vitest';
import { ingestAnswer, instanceTag, pruneRecords, SERVICE_RETENTION_MS, tagLocation } from '../../src/core/records.js';
import { receiveAnswer } from '../../src/core/contract.js';
import { MARGIN, T, record, emptyContract } from '../helpers/core.js';

describe('request records', () => {
  it('keep the first receipt of a request seen again', () => {
    const first = ingestAnswer([], [{ cacheName: 'x', beforeMs: T }], T + 5);
    const again = ingestAnswer(
      first.records,
      [
        { cacheName: 'x', beforeMs: T },
        { cacheName: 'x', beforeMs: T + 1 },
      ],
      T + 99,
    );
    expect(again.added.map((r) => r.beforeMs)).toEqual([T + 1]);
    expect(again.records.map((r) => r.receivedAt)).toEqual([T + 5, T + 99]);
  });

  it('are never dated before the latest time the agent has seen (a clock set back)', () => {
    const state = { ...emptyContract(), latestClock: T + 3_600_000 };
    expect(receiveAnswer(state, [{ cacheName: 'x', beforeMs: T }], T).state.records[0]!.receivedAt).toBe(T + 3_600_000);
  });

  it('are pruned once the service can no longer return them, and say which a location still owed', () => {
    const old = record('old', T - SERVICE_RETENTION_MS - MARGIN - 1);
    const owedButKept = record('kept', T - SERVICE_RETENTION_MS);
    const { records, expiredOwed } = pruneRecords([old, owedButKept], T, MARGIN);
    expect(records).toEqual([owedButKept]);
    expect(expiredOwed).toEqual([old]);
  });

  it('tag the location instance, whose id may hold any character', () => {
    const tag = instanceTag({ id: 'n=/odd@path', instance: '1:2' });
    expect(tagLocation(tag)).toBe('n=/odd@path');
  });
});
