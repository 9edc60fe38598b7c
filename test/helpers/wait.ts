/**
 * Waiting for a condition, never for a time: poll until `check` holds. The
 * bound is generous (a loaded machine may take long) and only turns a hang
 * into a failure that names what never happened; reaching it is an error,
 * never a reason to carry on as if the condition held.
 */
export async function waitUntil(check: () => boolean | Promise<boolean>, what: string, timeoutMs = 120_000, intervalMs = 25): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}
