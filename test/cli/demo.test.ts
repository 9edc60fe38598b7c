/**
 * The demo's hints, through the built CLI in a directory of its own: they
 * never make npx fetch a package of the same name from the registry, and the
 * command they print works as printed.
 */
import { afterEach, beforeEach, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { makeTempDir, type TempDir } from '../helpers/tmp.js';
import { cleanEnv, finished, startCli, waitForOutput } from '../helpers/cli.js';

let tmp: TempDir;
beforeEach(async () => {
  tmp = await makeTempDir('pca-demo-');
});
afterEach(async () => {
  await tmp.cleanup();
});

it('prints hints that run this CLI, never a bare `npx purge-cache-agent`', async () => {
  const demo = startCli(['demo'], { cwd: tmp.path });
  try {
    await waitForOutput(demo, (o) => o.stdout.includes('Ctrl-C stops it'), 60_000);
    const out = demo.output.stdout;
    expect(out).not.toMatch(/npx (?!--no-install )purge-cache-agent/);
    const hints = out.split('\n').filter((line) => /^ {2}(node|npx) /.test(line));
    expect(hints).toHaveLength(2);
    // Outside the checkout, the hints name this very CLI by its path.
    for (const hint of hints) expect(hint).toMatch(/^ {2}node \S+cli\.js /);
    const caches = spawnSync('sh', ['-c', hints[1]!.trim()], { cwd: tmp.path, env: cleanEnv(), encoding: 'utf8', timeout: 60_000 });
    expect(caches.status, caches.stderr).toBe(0);
    expect(caches.stdout).toContain('"cargo registry"');
  } finally {
    demo.kill('SIGTERM');
    await finished(demo, 60_000);
  }
});
