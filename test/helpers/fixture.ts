import { createHash } from 'node:crypto';
import { mkdir, writeFile, readdir, lstat, readlink, readFile } from 'node:fs/promises';
import path from 'node:path';
import { startService, type RunningService } from '../../src/service/index.js';
import { encodeCacheName } from '../../src/core/names.js';
import { silentLogger } from '../../src/log.js';
import { makeTempDir, type TempDir } from './tmp.js';

export const POOL = 'test-prov/test-worker';
export const POOL_PARTS = { provisionerId: 'test-prov', workerType: 'test-worker' };

/** A clock whose offset from real time a test can move (the service's clock, say). */
export function adjustableClock(offsetMs = 0) {
  return {
    offsetMs,
    now() {
      return Date.now() + this.offsetMs;
    },
    monotonic: () => performance.now(),
  };
}

export interface Fixture {
  tmp: TempDir;
  root: string;
  stateDir: string;
  /** A sentinel tree outside every root: must never change. */
  outside: string;
  service: RunningService;
  serviceClock: ReturnType<typeof adjustableClock>;
  makeCache(name: string, files?: Record<string, string>): Promise<string>;
  request(name: string): Promise<void>;
  /** Flags pointing the CLI at this fixture. */
  args(...extra: string[]): string[];
  close(): Promise<void>;
}

export async function makeFixture(opts: { where?: 'system' | 'repo' } = {}): Promise<Fixture> {
  const tmp = await makeTempDir('pca-e2e-', opts.where ?? 'system');
  const root = path.join(tmp.path, 'caches');
  const stateDir = path.join(tmp.path, 'state');
  const outside = path.join(tmp.path, 'outside');
  await mkdir(root, { recursive: true });
  await mkdir(path.join(outside, 'deep', 'er'), { recursive: true });
  await writeFile(path.join(outside, 'precious.txt'), 'do not delete\n');
  await writeFile(path.join(outside, 'deep', 'er', 'file'), 'still here\n');
  const serviceClock = adjustableClock();
  const service = await startService({ host: '127.0.0.1', port: 0, clock: serviceClock, logger: silentLogger() });
  return {
    tmp,
    root,
    stateDir,
    outside,
    service,
    serviceClock,
    async makeCache(name, files = { 'data.txt': `contents of ${name}` }) {
      const dir = path.join(root, encodeCacheName(name)!);
      await mkdir(dir, { recursive: true });
      for (const [file, text] of Object.entries(files)) {
        await mkdir(path.dirname(path.join(dir, file)), { recursive: true });
        await writeFile(path.join(dir, file), text);
      }
      return dir;
    },
    async request(name) {
      const res = await fetch(`${service.url}/api/purge-cache/v1/purge-cache/${POOL}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ cacheName: name }),
      });
      if (res.status !== 204) throw new Error(`purgeCache answered ${res.status}: ${await res.text()}`);
    },
    args(...extra) {
      return ['--root-url', service.url, '--worker-pool-id', POOL, '--cache-root', root, '--state-dir', stateDir, ...extra];
    },
    async close() {
      await service.close();
      await tmp.cleanup();
    },
  };
}

/** A digest of a whole tree (names, types, modes, contents, link targets), without following links. */
export async function hashTree(dir: string): Promise<string> {
  const hash = createHash('sha256');
  const walk = async (at: string, rel: string): Promise<void> => {
    const st = await lstat(at);
    hash.update(`${rel}\0${st.mode}\0`);
    if (st.isSymbolicLink()) hash.update(`L${await readlink(at)}\0`);
    else if (st.isFile()) hash.update(await readFile(at));
    else if (st.isDirectory()) {
      for (const entry of (await readdir(at)).sort()) await walk(path.join(at, entry), `${rel}/${entry}`);
    }
  };
  await walk(dir, '');
  return hash.digest('hex');
}

export async function exists(p: string): Promise<boolean> {
  return lstat(p).then(
    () => true,
    () => false,
  );
}

export async function readState(stateDir: string): Promise<Record<string, any>> {
  return JSON.parse(await readFile(path.join(stateDir, 'state.json'), 'utf8'));
}
