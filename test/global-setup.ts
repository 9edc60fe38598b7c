import { execFileSync } from 'node:child_process';

/**
 * Tests that run the CLI run the built one (dist/), exactly as users do. Build
 * once before the suite so a test never runs stale code. PCA_SKIP_BUILD=1 skips
 * it when iterating on unit tests that don't touch dist/.
 */
export default function setup(): void {
  if (process.env.PCA_SKIP_BUILD === '1') return;
  execFileSync('npm', ['run', '--silent', 'build'], { stdio: 'inherit' });
}
