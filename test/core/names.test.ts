import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { encodeCacheName, decodeDirName, dirNamesFor, isAgentEntry, isCanonical, isLegalCacheDirName, MAX_DIR_NAME_BYTES } from '../../src/core/names.js';

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
  fc
    .array(fc.constantFrom('/', '\\', '..', '.', '%', '\0', '\n', '\t', '%2F', 'é', 'e\u0301', '\u202e', '.purge-cache-agent-trash'), { maxLength: 10 })
    .map((parts) => parts.join('')),
);

describe('properties over hostile names', () => {
  it('decodes every directory name as its canonical name or literally, the shortcut for plain names included', () => {
    const dirNames = fc
      .array(fc.constantFrom('a', 'Z', '0', '_', '-', '.', '%', '2E', '41', 'C3', 'A9', 'FF', 'é', ' '), { minLength: 1, maxLength: 8 })
      .map((p) => p.join(''));
    fc.assert(
      fc.property(dirNames, (dir) => {
        const decoded = decodeDirName(dir);
        // Either the canonical encoding of what it decodes to, or kept literally.
        expect(decoded === dir || encodeCacheName(decoded) === dir).toBe(true);
        if (encodeCacheName(dir) === dir) expect(decoded).toBe(dir);
      }),
      { numRuns: 3000 },
    );
  });

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

describe('more properties', () => {
  const anyUnicode = fc.string({ unit: 'binary', maxLength: 30 });

  it('never lets a lone surrogate through: it would be stored as U+FFFD, a different name', () => {
    const surrogate = fc.integer({ min: 0xd800, max: 0xdfff }).map((c) => String.fromCharCode(c));
    fc.assert(
      fc.property(fc.string({ maxLength: 5 }), surrogate, fc.string({ maxLength: 5 }), (a, s, b) => {
        const name = a + s + b;
        if (!name.isWellFormed()) expect(encodeCacheName(name)).toBeNull();
      }),
    );
  });

  it('keeps NFC and NFD spellings apart: they are different names, and each round-trips', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'grapheme', minLength: 1, maxLength: 10 }), (s) => {
        const nfc = s.normalize('NFC');
        const nfd = s.normalize('NFD');
        const [dc, dd] = [encodeCacheName(nfc), encodeCacheName(nfd)];
        if (dc !== null) expect(decodeDirName(dc)).toBe(nfc);
        if (dd !== null) expect(decodeDirName(dd)).toBe(nfd);
        if (nfc !== nfd && dc !== null) expect(dc).not.toBe(dd);
      }),
      { numRuns: 1000 },
    );
  });

  it('never produces a hidden entry, a NUL or a slash, whatever the input', () => {
    fc.assert(
      fc.property(anyUnicode, (name) => {
        const dir = encodeCacheName(name);
        if (dir === null) return;
        expect(isAgentEntry(dir)).toBe(false);
        expect(dir).not.toMatch(/[\0/]/);
      }),
      { numRuns: 2000 },
    );
  });

  it('decodes every directory name to something that finds it again', () => {
    fc.assert(
      fc.property(
        fc.string({ unit: fc.constantFrom('a', 'Z', '0', '.', '-', '_', '%', '2', 'E', 'F', 'f', ' ', 'é'), minLength: 1, maxLength: 12 }),
        (dirName) => {
          if (!isLegalCacheDirName(dirName)) return;
          expect(dirNamesFor(decodeDirName(dirName))).toContain(dirName);
        },
      ),
      { numRuns: 2000 },
    );
  });
});
