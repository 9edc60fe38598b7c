/** The local API's bearer-token check: exact match only, constant-time, never throws. */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { TokenCheck } from '../../src/api/auth.js';

describe('TokenCheck', () => {
  const token = 'a-token-of-exactly-32-characters';
  const check = new TokenCheck(token);
  it('accepts exactly "Bearer <token>"', () => {
    expect(check.accepts(`Bearer ${token}`)).toBe(true);
    expect(check.accepts(`bearer ${token}`)).toBe(true);
  });
  it('refuses anything else without throwing, whatever its length', () => {
    for (const header of [undefined, '', 'Bearer', `Bearer ${token}x`, `Bearer ${token.slice(1)}`, `Token ${token}`, token, `Bearer ${token} extra`]) {
      expect(check.accepts(header)).toBe(false);
    }
    fc.assert(fc.property(fc.string({ maxLength: 200 }), (s) => check.accepts(`Bearer ${s}`) === (s.trim() === token)));
  });
});
