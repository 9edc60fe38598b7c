import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { encodeCacheName, decodeDirName, dirNamesFor, isCanonical, MAX_DIR_NAME_BYTES } from '../../src/caches/names.js';

describe('the encoding table', () => {
  it.each([
    ['a/b', 'a%2Fb'],
    ['..', '%2E%2E'],
    ['.', '%2E'],
    ['.x', '%2Ex'],
    ['..x.y', '%2E%2Ex.y'],
    ['a..b', 'a..b'],
    ['my cache', 'my%20cache'],
    ['100%', '100%25'],
    ['ü', '%C3%BC'],
    ['a\\b', 'a%5Cb'],
    ['nul\0byte', 'nul%00byte'],
    ['Plain_Name-1.0', 'Plain_Name-1.0'],
  ])('%j ↔ %j', (name, dir) => {
    expect(encodeCacheName(name)).toBe(dir);
    expect(decodeDirName(dir)).toBe(name);
  });

  it('takes non-canonical directory names literally', () => {
    expect(decodeDirName('my cache')).toBe('my cache');
    expect(decodeDirName('a%2fb')).toBe('a%2fb'); // lowercase hex is not canonical
    expect(decodeDirName('%41')).toBe('%41'); // "A" encodes as itself
    expect(decodeDirName('%FF')).toBe('%FF'); // not UTF-8
    expect(decodeDirName('%')).toBe('%');
    expect(decodeDirName('ü')).toBe('ü');
  });

  it('refuses names it cannot store exactly', () => {
    expect(encodeCacheName('')).toBeNull();
    expect(encodeCacheName('\ud800')).toBeNull(); // a lone surrogate
    expect(encodeCacheName('x'.repeat(MAX_DIR_NAME_BYTES))).toBe('x'.repeat(MAX_DIR_NAME_BYTES));
    expect(encodeCacheName('x'.repeat(MAX_DIR_NAME_BYTES + 1))).toBeNull();
    expect(encodeCacheName('/'.repeat(86))).toBeNull(); // 86 × 3 = 258 bytes
  });

  it('finds both the encoded and the literal directory for a name', () => {
    expect(dirNamesFor('my cache')).toEqual(['my%20cache', 'my cache']);
    expect(dirNamesFor('plain')).toEqual(['plain']);
    expect(dirNamesFor('a/b')).toEqual(['a%2Fb']); // "/" can't be literal
    expect(dirNamesFor('.hidden')).toEqual(['%2Ehidden']); // hidden entries are the agent's
    expect(dirNamesFor('%41')).toEqual(['%2541', '%41']);
    expect(dirNamesFor('a%2Fb')).toEqual(['a%252Fb']); // the literal would decode to "a/b"
  });
});

const hostile = fc.oneof(
  fc.string({ unit: 'grapheme', maxLength: 40 }),
  fc.string({ unit: 'binary', maxLength: 40 }),
  fc.array(fc.constantFrom('/', '\\', '..', '.', '%', '\0', '\n', '\t', '%2F', 'é', 'e\u0301', '\u202e', '.purge-cache-agent-trash'), { maxLength: 10 }).map((parts) => parts.join('')),
);

describe('properties over hostile names', () => {
  it('round-trips every storable name, and the directory is always a safe single component', () => {
    fc.assert(
      fc.property(hostile, (name) => {
        const dir = encodeCacheName(name);
        if (dir === null) return;
        expect(decodeDirName(dir)).toBe(name);
        expect(isCanonical(dir)).toBe(true);
        expect(dir).toMatch(/^[A-Za-z0-9_.%-]+$/);
        expect(dir.startsWith('.')).toBe(false);
        expect(dir).not.toBe('.');
        expect(dir).not.toBe('..');
        expect(Buffer.byteLength(dir)).toBeLessThanOrEqual(MAX_DIR_NAME_BYTES);
      }),
      { numRuns: 2000 },
    );
  });

  it('never maps two names to one directory, and every directory decodes to exactly one name', () => {
    fc.assert(
      fc.property(hostile, hostile, (a, b) => {
        const da = encodeCacheName(a);
        const db = encodeCacheName(b);
        if (a !== b && da !== null) expect(da).not.toBe(db);
      }),
      { numRuns: 2000 },
    );
  });

  it('every directory name dirNamesFor gives decodes back to that name', () => {
    fc.assert(
      fc.property(hostile, (name) => {
        for (const dir of dirNamesFor(name)) {
          expect(decodeDirName(dir)).toBe(name);
          expect(dir.includes('/')).toBe(false);
          expect(dir.startsWith('.')).toBe(false);
        }
      }),
      { numRuns: 2000 },
    );
  });
});
