/** The local API's request targets: raw path segments, never normalised, and strict percent-decoding. */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { splitTarget } from '../../src/api/http.js';
import { encodeSegment } from '../../src/api/client.js';

describe('splitTarget', () => {
  it('decodes segments without normalising dot segments', () => {
    expect(splitTarget('/v1/caches/%2E%2E').segments).toEqual(['v1', 'caches', '..']);
    expect(splitTarget('/v1/caches/a%2Fb/leases/x%20y').segments).toEqual(['v1', 'caches', 'a/b', 'leases', 'x y']);
    expect(splitTarget('/v1/status/').segments).toEqual(['v1', 'status']);
    expect(splitTarget('http://localhost/v1/status?x=1').segments).toEqual(['v1', 'status']);
    expect(splitTarget('/v1/tasks/a?first=2&wait=1').query.get('first')).toBe('2');
  });
  it('round-trips any name through the client encoding', () => {
    fc.assert(
      fc.property(fc.string({ minLength: 1, maxLength: 100, unit: 'grapheme' }), (name) => {
        expect(splitTarget(`/v1/caches/${encodeSegment(name)}`).segments).toEqual(['v1', 'caches', name]);
      }),
    );
  });
  it('refuses malformed percent-encoding', () => {
    expect(() => splitTarget('/v1/caches/%E0%A4%A')).toThrow(/percent-encoding/);
  });
});
