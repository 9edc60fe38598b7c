/** Run `fn` over `items` with at most `limit` calls in flight; results keep the input order. */
export async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const results = new Array<R>(items.length);
  // One iterator shared by every worker: each takes the next item nobody has taken yet.
  const queue = items.entries();
  const worker = async (): Promise<void> => {
    for (const [index, item] of queue) results[index] = await fn(item, index);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}

/**
 * Synchronous filesystem calls made between two turns of the event loop, by
 * every loop that makes them one after another (listing, resolving, locking,
 * renaming, reading /proc). For metadata the kernel has cached, a call through
 * the thread pool waits longer for its round trip than the call takes; this
 * many in a row block the loop for a few milliseconds at most on a local disk,
 * so the local API and the probes keep answering.
 */
export const SYNC_CALLS_PER_TURN = 256;

/** Let timers and I/O (the API, probes) run before going on with a long synchronous stretch. */
export function yieldToEventLoop(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}
