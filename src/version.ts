import { readFileSync } from 'node:fs';

/**
 * The package version, read from the package.json above this module so that
 * `--version` always matches it (dist/version.js and the benchmark build,
 * dist-bench/src/version.js, sit at different depths).
 */
function readVersion(): string {
  for (const up of ['../package.json', '../../package.json']) {
    try {
      const pkg = JSON.parse(readFileSync(new URL(up, import.meta.url), 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'purge-cache-agent' && pkg.version) return pkg.version;
    } catch {
      // not at this depth
    }
  }
  return '0.0.0-unknown';
}

export const VERSION: string = readVersion();
