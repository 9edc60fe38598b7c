/**
 * Waiting for a condition, never for a time: poll until `check` gives a value
 * (anything but undefined or false; a boolean check gives true). The bound is
 * generous (a loaded machine may take long) and only turns a hang into a
 * failure that names what never happened; reaching it is an error, never a
 * reason to carry on as if the condition held.
 */
import { errorMessage } from '../../src/errors.js';

export interface WaitOptions {
  timeoutMs?: number;
  intervalMs?: number;
  /** Said after the timeout's message: what the test saw meanwhile. */
  explain?: () => string;
  /** A check that throws has not happened yet (a server still starting): try again, and name the last error on timeout. */
  retryErrors?: boolean;
}

export async function eventually<T>(
  check: () => Promise<T | undefined | false> | T | undefined | false,
  what: string,
  { timeoutMs = 120_000, intervalMs = 50, explain, retryErrors = false }: WaitOptions = {},
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value !== undefined && value !== false) return value;
    } catch (err) {
      if (!retryErrors) throw err;
      lastError = err;
    }
    if (Date.now() > deadline) {
      const why = lastError === undefined ? '' : `: ${errorMessage(lastError)}`;
      throw new Error(`timed out waiting for ${what}${why}${explain ? `\n${explain()}` : ''}`);
    }
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}
