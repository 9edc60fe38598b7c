/**
 * Hostile cache names against a hostile cache tree ("Hostile input").
 *
 * Invariant, checked after every case: nothing outside the configured roots
 * changes (a sentinel tree, hashed before and after — including the directory
 * bind-mounted into a cache, and a tmpfs mounted inside one), and exactly the
 * caches whose decoded name equals a requested name are removed.
 *
 * Many cases run in-process through the same layers a cycle uses (inventory →
 * plan → purge → trash deletion); a handful run the built CLI end to end
 * against the embedded service.
 */
import { afterEach, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { mkdir, readdir, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { resolveSources, listCaches } from '../../src/edges/caches/inventory.js';
import { emptyTrash, trashDirsFor, TRASH_DIR_NAME } from '../../src/edges/caches/trash.js';
import { selectCandidates, decide } from '../../src/core/judge.js';
import { applyPurges } from '../../src/engine/purge.js';
import type { DeleteReport } from '../../src/edges/caches/delete.js';
import { silentLogger } from '../../src/log.js';
import { runCli } from '../helpers/cli.js';
import { hashTree, exists, POOL } from '../helpers/fixture.js';
import { startService, type RunningService } from '../../src/service/index.js';
import { buildHostileTree, violations, HOSTILE_NAMES, type HostileTree } from './hostile-tree.js';
import { hostileTempDir, record } from './support.js';
import type { TempDir } from '../helpers/tmp.js';
import { unmountAllUnder } from '../helpers/mounts.js';

const IN_PROCESS_RUNS = 60;
const CLI_RUNS = 4;

let dirs: TempDir[] = [];
let services: RunningService[] = [];
afterEach(async () => {
  await Promise.all(services.map((s) => s.close()));
  services = [];
  for (const d of dirs) await d.cleanup();
  dirs = [];
});

/** Arbitrary names: any code points, control characters, path syntax, long strings, and the tree's own entry names. */
const anyName = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom(...HOSTILE_NAMES) },
  { weight: 2, arbitrary: fc.string({ unit: 'binary', maxLength: 12 }) },
  {
    weight: 2,
    arbitrary: fc.string({ unit: fc.constantFrom('/', '\\', '.', '..', '%', '%2F', '%2E', '\0', '\n', 'a', 'é', 'e\u0301', ' ', '-'), maxLength: 8 }),
  },
  { weight: 1, arbitrary: fc.string({ unit: 'binary-ascii', minLength: 60, maxLength: 300 }) },
  { weight: 1, arbitrary: fc.string({ unit: 'grapheme', maxLength: 6 }).map((s) => s.normalize(Math.random() < 0.5 ? 'NFC' : 'NFD')) },
);

const scenario = fc.record({
  /** Extra caches on disk. */
  present: fc.uniqueArray(anyName, { maxLength: 12 }),
  /** Requested names: some present, some hostile, some arbitrary. */
  requested: fc.uniqueArray(anyName, { maxLength: 10 }),
  alsoRequestPresent: fc.integer({ min: 0, max: 6 }),
});

interface CaseResult {
  report: DeleteReport;
  purged: number;
}

/** One purge of `requested` through inventory → plan → purge → trash, in-process. */
async function purgeInProcess(tree: HostileTree, requested: readonly string[]): Promise<CaseResult> {
  const logger = silentLogger();
  const sources = await resolveSources([tree.rootLink], []);
  expect(sources.roots).toEqual([tree.realRoot]);
  const inventory = await listCaches(sources);
  const now = Date.now();
  const selection = selectCandidates({
    requests: requested.map((cacheName) => ({ cacheName, beforeMs: now + 3_600_000 })),
    caches: inventory.caches,
    firstSeen: {},
    pending: [],
    skewMarginMs: 300_000,
    nowMs: now,
  });
  const decision = decide(selection.candidates, new Map());
  // Only exactly-named caches may even be attempted.
  for (const candidate of decision.purge) expect(requested).toContain(candidate.cache.name);
  // As a cycle does: one batch of locked renames.
  const outcomes = await applyPurges(decision.purge, { logger });
  const purged = outcomes.filter((o) => o.kind === 'purged').length;
  const report = await emptyTrash(trashDirsFor(sources), { logger });
  return { report, purged };
}

describe('hostile cache names against a hostile tree', () => {
  it(`in-process: ${IN_PROCESS_RUNS} property runs — only exact names go, nothing outside changes`, async (ctx) => {
    let n = 0;
    let names = 0;
    let purgedTotal = 0;
    const mountProblems = new Set<string>();
    await fc.assert(
      fc.asyncProperty(scenario, async ({ present, requested, alsoRequestPresent }) => {
        const tmp = await hostileTempDir('pca-adv-names-');
        try {
          const tree = await buildHostileTree(tmp.path, present, { mounts: true });
          tree.mountProblems.forEach((p) => mountProblems.add(p));
          const outsideHash = await hashTree(tree.outside);
          const wanted = [...new Set([...requested, ...present.slice(0, alsoRequestPresent)])];
          const result = await purgeInProcess(tree, wanted);
          const problems = await violations(tree, new Set(wanted), outsideHash);
          // The trash holds nothing but what a mount kept there.
          const trash = path.join(tree.realRoot, TRASH_DIR_NAME);
          const left = await readdir(trash);
          if (left.length > result.report.skippedMounts.length)
            problems.push(`trash not emptied: ${left.join(', ')}; failures: ${JSON.stringify(result.report.failures)}`);
          n++;
          names += tree.before.size;
          purgedTotal += result.purged;
          expect(problems, `requested ${JSON.stringify(wanted)}`).toEqual([]);
        } finally {
          await tmp.cleanup();
        }
      }),
      { numRuns: IN_PROCESS_RUNS },
    );
    record(ctx, {
      cases: n,
      unit: 'property runs',
      detail: `${names} root entries judged in all, ${purgedTotal} caches purged; each tree had symlinks to /, outside and a sibling, a hard link out, files, hidden names, a symlinked root${mountProblems.size === 0 ? ', a tmpfs and (read-only) bind mounts inside caches and as caches' : `; mounts unavailable: ${[...mountProblems][0]}`}`,
    });
  }, 1_200_000);

  it(`the built CLI: ${CLI_RUNS} runs of once against the embedded service`, async (ctx) => {
    const samples = fc.sample(scenario, { numRuns: CLI_RUNS, seed: 4242 });
    // The first run requests every hand-picked hostile name at once.
    samples[0] = { present: HOSTILE_NAMES.slice(0, 30), requested: HOSTILE_NAMES, alsoRequestPresent: 0 };
    let requestsFiled = 0;
    for (const { present, requested, alsoRequestPresent } of samples) {
      const tmp = await hostileTempDir('pca-adv-names-cli-');
      dirs.push(tmp);
      const tree = await buildHostileTree(tmp.path, present, { mounts: true });
      // A single cache that is a symlink out (never followed), and a real one.
      await symlink(path.join(tree.outside, 'deep'), path.join(tmp.path, 'single-link'));
      await mkdir(path.join(tmp.path, 'singles', 'real-single'), { recursive: true });
      await writeFile(path.join(tmp.path, 'singles', 'real-single', 'f'), 'x');
      const outsideHash = await hashTree(tree.outside);
      const service = await startService({ host: '127.0.0.1', port: 0 });
      services.push(service);
      const wanted: string[] = [];
      for (const name of new Set([...requested, ...present.slice(0, alsoRequestPresent), 'victim-single', 'real single'])) {
        const res = await fetch(`${service.url}/api/purge-cache/v1/purge-cache/${POOL}`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ cacheName: name }),
        });
        // The service refuses only what the upstream API refuses (an empty name); the rest is filed as sent.
        expect([204, 400], await res.text()).toContain(res.status);
        if (res.status === 204) wanted.push(name);
        requestsFiled++;
      }
      const result = await runCli(
        [
          'once',
          '--json',
          '--root-url',
          service.url,
          '--worker-pool-id',
          POOL,
          '--cache-root',
          tree.rootLink,
          '--cache',
          `victim-single=${path.join(tmp.path, 'single-link')}`,
          '--cache',
          `real single=${path.join(tmp.path, 'singles', 'real-single')}`,
          '--state-dir',
          path.join(tmp.path, 'state'),
          '--in-use-checks',
          'locks',
        ],
        { timeoutMs: 240_000 },
      );
      // Exit 1 only when a purge failed; a mount inside a cache is reported, never a failure of the invariant.
      expect([0, 1], result.stderr).toContain(result.code);
      const report = JSON.parse(result.stdout);
      const served = new Set<string>(wanted);
      expect(await violations(tree, served, outsideHash)).toEqual([]);
      expect(await exists(path.join(tmp.path, 'single-link'))).toBe(true);
      expect(await exists(path.join(tmp.path, 'singles', 'real-single'))).toBe(false);
      for (const p of report.purged as { name: string }[]) expect(served.has(p.name)).toBe(true);
      await unmountAllUnder(tmp.path);
    }
    record(ctx, {
      cases: samples.length,
      unit: 'CLI runs',
      detail: `${requestsFiled} purge requests filed through the embedded service, incl. every hand-picked hostile name; a root that is a symlink, a single cache that is a symlink out`,
    });
  }, 1_200_000);
});
