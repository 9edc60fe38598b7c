/**
 * Fault injection for the crash tests, and nothing else.
 *
 * Steps of a cycle that a crash could interrupt call `faultPoint(name)`. When
 * PURGE_CACHE_AGENT_TEST_KILL_AT is set to `K` (or `name:K`), the K-th such
 * point reached (counting all points, or only those called `name`) kills the
 * process with SIGKILL — the same as a power cut or the OOM killer, with no
 * chance to clean up. The crash tests loop K over every step and check that a
 * restart recovers. Unset, the function returns at once.
 */
const spec = process.env.PURGE_CACHE_AGENT_TEST_KILL_AT;
let counter = 0;

const parsed = ((): { name: string | null; at: number } | null => {
  if (!spec) return null;
  const match = /^(?:([a-z-]+):)?(\d+)$/.exec(spec);
  return match ? { name: match[1] ?? null, at: Number(match[2]) } : null;
})();

export async function faultPoint(name: string): Promise<void> {
  if (!parsed) return;
  if (parsed.name !== null && parsed.name !== name) return;
  counter += 1;
  if (process.env.PURGE_CACHE_AGENT_TEST_FAULT_LOG) {
    process.stderr.write(`{"faultPoint":"${name}","n":${counter}}\n`);
  }
  if (counter === parsed.at) {
    process.kill(process.pid, 'SIGKILL');
    // SIGKILL is delivered at once; never continue past the fault point meanwhile.
    await new Promise(() => {});
  }
}
