import { execFileSync } from 'node:child_process';

/**
 * Tests that run the CLI run the built one (dist/), exactly as users do. Build
 * once before the suite so a test never runs stale code.
 */
export default function setup(): void {
  execFileSync('npx', ['tsc', '-p', 'tsconfig.build.json'], { stdio: 'inherit' });
}
