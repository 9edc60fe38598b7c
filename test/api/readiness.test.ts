/** The readiness threshold comes from the longest gap the cycle's schedule allows. */
import { describe, expect, it } from 'vitest';
import { scheduleInterval } from '../../src/api/readiness.js';

describe('scheduleInterval', () => {
  it('is the longest gap between runs', async () => {
    expect(await scheduleInterval('*/1 * * * * *')).toBe(1000);
    expect(await scheduleInterval('* * * * *')).toBe(60_000);
    expect(await scheduleInterval('*/5 * * * *')).toBe(300_000);
    expect(await scheduleInterval('0,10 * * * *')).toBe(50 * 60_000);
  });
});
