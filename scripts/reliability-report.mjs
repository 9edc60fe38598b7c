#!/usr/bin/env node
/**
 * `npm run test:reliability`: runs the adversarial suite (test/adversarial/,
 * the agent's first promise) and regenerates docs/reliability.md from its results — one row per
 * scenario, with how many cases it tried and the outcome.
 *
 * Each scenario records what it tried in its test's `meta.reliability`
 * (test/adversarial/support.ts: record, skipBecause); vitest's JSON reporter
 * carries that through. The report is written even when a scenario fails, and
 * the exit code is vitest's, so CI fails on a broken invariant.
 *
 *   node scripts/reliability-report.mjs                 run the suite, write the report
 *   node scripts/reliability-report.mjs --from FILE     write the report from an earlier JSON result
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const out = path.join(repo, 'docs', 'reliability.md');

const AREAS = {
  'names.test.ts': 'Hostile input: cache names',
  'responses.test.ts': 'Hostile input: service answers',
  'api.test.ts': 'Hostile input: local API',
  'crash.test.ts': 'Faults: SIGKILL at every step',
  'faults-state.test.ts': 'Faults: state directory',
  'faults-fs.test.ts': 'Faults: filesystem',
  'faults-race.test.ts': 'Faults: a cache changed during a purge',
  'faults-time.test.ts': 'Faults: outage and clock',
  'secrets.test.ts': 'Secrets',
  'stall.test.ts': 'Hostile users: stalls and limits',
  'hostile-task-trash.test.ts': 'Hostile task: the trash',
  'hostile-task-tree.test.ts': 'Hostile task: trees and names',
  'hostile-task-memory.test.ts': 'Hostile task: memory',
};

/** What the suite made us change in src/, for readers of the report (kept by hand; the table is generated). */
const FIXES = [
  [
    'src/edges/caches/delete.ts',
    'Trash deletion finds mount points in /proc/self/mountinfo (and, since the deletion rewrite, by mount id) as well as by st_dev: a bind mount of a directory on the same filesystem (same st_dev) inside a purged cache was walked into, and the directory it showed — outside every root — was emptied.',
  ],
  [
    'src/edges/upstream/response.ts, src/edges/upstream/client.ts',
    'Invalid entries are kept (with reasons) only for the first 1000 and counted past that, and the requests array is no longer copied by the envelope check: a 32 MiB answer of 16 million tiny entries took the daemon to 1.7 GB.',
  ],
  [
    'src/edges/state.ts',
    'Temporary state files left by a process killed mid-write (`state.json.tmp-<pid>`) are removed once the lock is held; a directory where state.json should be is moved aside like any corrupt state instead of stopping the start.',
  ],
  [
    'src/core/judge.ts',
    'A deferred purge no longer applies to a directory whose birth time is after the request (+ margin): a cache deleted and recreated while its purge waited can reuse the old inode number, and was purged.',
  ],
  [
    'src/core/judge.ts, src/engine/cycle.ts',
    "A cursor ahead of the wall clock (set while the clock ran fast) leads to a full query without `since`, logged; and while the service's Date header shows our clock running ahead by more than the margin, the cursor takes the service's time: requests filed while the clock ran ahead were never returned.",
  ],
  [
    'src/config/load.ts',
    'A YAML error in the config file no longer quotes the offending line, which could hold a credential not yet registered for scrubbing.',
  ],
  [
    'src/edges/caches/proc-scan.ts, src/edges/caches/inuse.ts',
    'The /proc in-use scan is streamed and charged to a budget of 250,000 entries per pass, yields to the event loop, and stops reading a process that holds every cache: forty processes of 20,000 descriptors took one cycle 27 s (339 s and 2.4 GB with more) with /healthz silent. Caches the pass could not judge are deferred as held by "unknown", never purged.',
  ],
  [
    'src/edges/caches/proc-scan.ts',
    'A lock kept alive only by a mapping is placed by the inode /proc/<pid>/maps shows; a lock whose holder no process shows is no longer looked for by walking the cache (27 s per decision on 300,000 files).',
  ],
  [
    'src/edges/caches/size.ts, src/engine/eviction.ts',
    'Sizes are the blocks files occupy: a 15 TB sparse file made every other idle cache be evicted. The walk is streamed with byte names, and any error from the tree (ELOOP from a directory swapped for a looping symlink, ENAMETOOLONG) is a failed entry with the path instead of an "unexpected error".',
  ],
  [
    'src/api/connections.ts, src/api/server.ts',
    'A new TCP connection over the limits pushes out the oldest one with no request in progress, and timeouts are checked every second: 300–400 stalled connections kept /healthz from answering.',
  ],
  [
    'src/core/leases.ts, src/engine/agent.ts',
    'Leases are capped (64 per cache, 4096 in all; 409 LeaseLimitReached), and a renewal in the first third of its TTL does not rewrite the state file.',
  ],
  [
    'src/edges/caches/dir-lock.ts, src/edges/flock.ts',
    'Without flock(1) and perl the agent refuses to rename caches (the purges fail and stay pending) instead of renaming them without the lock.',
  ],
  [
    'src/edges/caches/delete.ts',
    'A fault point, `trash-delete`, after each directory removed from the trash, so the crash tests kill the agent in the middle of emptying it.',
  ],
  [
    'src/edges/caches/trash.ts, src/edges/caches/trash-dir.ts, src/edges/caches/held-dir.ts',
    "A task that can write to the root swapped the trash with a symlink (renameat2 RENAME_EXCHANGE) and got purged caches, other users' 0700 ones included, moved into its own directory (21 of 150 purges). The root and its trash are now held open and every rename goes through the descriptors; a trash that is not the agent's own 0700 directory on the same mount is refused (that root's purges fail naming it and the fix) and never emptied.",
  ],
  [
    'src/edges/caches/delete*.ts, src/edges/caches/delete-thread.cjs',
    "Directories were read whole (a quarter million entries took the deleting child to 150 MiB, a million to gigabytes) and names were strings (`\\xff` became U+FFFD, its unlink failed with ENOENT, and the trash could never be emptied); a chain 20,000 deep beside a mount in the trash ran out of a 4 GB heap after 10 minutes (a path per directory). Now listings stream in batches of 256 as bytes, subtrees are deleted whole in one thread with at most 32 directories open, and mounts are recognised by their parent directory's identity.",
  ],
  [
    'src/engine/trash-runner.ts',
    '`once` exited 0 when the deleting child was killed and the trash was left full; the failure is now a failed `(trash)` entry and exit 1.',
  ],
];

function runSuite(jsonFile) {
  const args = ['vitest', 'run', 'test/adversarial', '--reporter=default', '--reporter=json', `--outputFile.json=${jsonFile}`];
  const started = Date.now();
  const result = spawnSync('npx', args, { cwd: repo, stdio: 'inherit' });
  return { code: result.status ?? 1, seconds: Math.round((Date.now() - started) / 1000) };
}

const escape = (text) => String(text).replaceAll('|', '\\|').replaceAll('\n', ' ');

function render(results, seconds) {
  const rows = [];
  let passed = 0;
  let failed = 0;
  let skipped = 0;
  const order = Object.keys(AREAS);
  const rank = (file) => {
    const i = order.indexOf(path.basename(file.name));
    return i < 0 ? order.length : i;
  };
  for (const file of [...results.testResults].sort((a, b) => rank(a) - rank(b) || a.name.localeCompare(b.name))) {
    const area = AREAS[path.basename(file.name)] ?? path.basename(file.name);
    for (const test of file.assertionResults) {
      const meta = test.meta?.reliability ?? {};
      let outcome;
      if (test.status === 'passed') {
        outcome = 'holds';
        passed++;
      } else if (test.status === 'failed') {
        outcome = `**FAILS**: ${(test.failureMessages[0] ?? '').split('\n')[0].slice(0, 200)}`;
        failed++;
      } else {
        outcome = `skipped${meta.skipped ? `: ${meta.skipped}` : ''}`;
        skipped++;
      }
      const cases = meta.cases === undefined ? '—' : `${meta.cases}${meta.unit ? ` ${meta.unit}` : ''}`;
      rows.push(`| ${escape(area)} | ${escape(test.title)} | ${escape(cases)} | ${escape(outcome)} | ${escape(meta.detail ?? '')} |`);
    }
  }
  const when = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
  const uid = typeof process.getuid === 'function' ? process.getuid() : null;
  return `# Reliability report

Generated by \`npm run test:reliability\` (scripts/reliability-report.mjs) from the adversarial suite in \`test/adversarial/\` — the promise it checks: it must be impossible to make the agent delete the wrong thing, and hard to make it stop working. Do not edit by hand: run the command again.

- Generated: ${when}, Node.js ${process.version}, ${process.platform}/${process.arch}${uid === 0 ? ', as root (mounts, chattr and a second uid available)' : `, as uid ${uid} (scenarios needing root are skipped)`}
- Scenarios: ${passed + failed + skipped} — ${passed} hold, ${failed} fail, ${skipped} skipped${seconds !== null ? `; suite runtime ${seconds} s` : ''}

The invariants every scenario checks, besides its own: nothing outside the configured roots changes (a sentinel tree hashed before and after), only caches whose decoded name equals a requested name are removed, nothing is deleted on the strength of invalid data, the agent stays up, and no request is missed.

| Area | Scenario | Cases tried | Outcome | What was tried |
|---|---|---|---|---|
${rows.join('\n')}

## Known limits

- Memory is bounded by the response cap (32 MiB), not by much less: the worst answer under the cap — 16 million tiny entries — takes the daemon to about 600 MiB at peak, most of it JSON.parse's array. A lower cap (8 MiB still holds ~70,000 requests) or a streaming parser would lower it.
- A mount point left in the trash (a tmpfs or bind mount inside a purged cache) is never deleted; it is reported on every run of the trash until someone unmounts it.
- Scenario sizes are what a loaded 2-core machine handles in well under a minute. Measured by hand on the same machine: a million empty files in one directory (on disk) were deleted with the deleting child at 67 MiB peak, in 2 min at nice 19 and idle I/O (creating them took as long); a chain 100,000 directories deep (tmpfs) in 68 s at 161 MiB peak, where \`rm -rf\` takes 9 s — the cost is the /proc/self/fd lookups and the mount-id check per directory.
- A task that can write to a cache root can still make that root's purges fail, by planting its own trash before the agent makes one or by renaming the agent's away: the agent refuses it rather than use it. A sticky root (chmod +t) stops the second.
- The clock checks rely on the service's Date header: without one (a proxy that drops it), a worker clock that runs ahead is caught only once it is set back, by a full query.

## Fixes this suite forced

| Where | What and why |
|---|---|
${FIXES.map(([where, what]) => `| ${escape(where)} | ${escape(what)} |`).join('\n')}
`;
}

const fromIndex = process.argv.indexOf('--from');
let code = 0;
let seconds = null;
let results;
if (fromIndex > 0) {
  results = JSON.parse(readFileSync(process.argv[fromIndex + 1], 'utf8'));
} else {
  const dir = mkdtempSync(path.join(tmpdir(), 'pca-reliability-'));
  try {
    const jsonFile = path.join(dir, 'results.json');
    ({ code, seconds } = runSuite(jsonFile));
    try {
      results = JSON.parse(readFileSync(jsonFile, 'utf8'));
    } catch (err) {
      console.error(`reliability-report: vitest wrote no results (${err.message}); docs/reliability.md is unchanged`);
      process.exit(code || 1);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
mkdirSync(path.dirname(out), { recursive: true });
writeFileSync(out, render(results, seconds));
console.log(`reliability-report: wrote ${path.relative(repo, out)}`);
process.exit(code);
