/**
 * The core is pure: it imports nothing but other core modules and the error
 * classes, and never
 * reads the clock or the environment. The engine hands it every fact.
 */
import { describe, expect, it } from 'vitest';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { REPO_ROOT } from '../helpers/tmp.js';

const CORE = path.join(REPO_ROOT, 'src', 'core');

describe('src/core', () => {
  it('imports only core modules and reads no clock, randomness or environment', async () => {
    const files = (await readdir(CORE)).filter((f) => f.endsWith('.ts'));
    expect(files.length).toBeGreaterThan(3);
    for (const file of files) {
      const text = await readFile(path.join(CORE, file), 'utf8');
      for (const [, spec] of text.matchAll(/^\s*(?:import|export)[^'"]*from\s+['"]([^'"]+)['"]/gm)) {
        // Other core modules, and the error classes (plain data, no imports of their own).
        expect(spec, `${file} imports ${spec}`).toMatch(/^(\.\/[\w.-]+|\.\.\/errors)\.js$/);
      }
      expect(text, `${file} imports dynamically`).not.toMatch(/\bimport\(/);
      expect(text, `${file} reads the clock`).not.toMatch(/Date\.now\(|new Date\(\)|performance\.now|process\.hrtime/);
      expect(text, `${file} reads the environment or randomness`).not.toMatch(/process\.|Math\.random|crypto/);
    }
  });
});
