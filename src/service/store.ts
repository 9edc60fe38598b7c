/**
 * The purge requests `serve` holds: one per (pool, cacheName), expiring a TTL
 * after its latest POST. Kept in memory and, with a data file, persisted after
 * every change with an atomic write (temp file, fsync, rename, fsync of the
 * directory), so a crash leaves either the old file or the new one.
 */
import { open, readFile, rename, unlink } from 'node:fs/promises';
import path from 'node:path';
import * as z from 'zod';
import type { Clock } from '../edges/clock.js';
import { errnoCode, errorMessage, ServiceDataError } from '../errors.js';
import type { PurgeRequest, WorkerPool } from '../core/model.js';

interface Entry {
  provisionerId: string;
  workerType: string;
  cacheName: string;
  before: number;
  expires: number;
}

/** The sort key, also what a continuation token encodes: pages stay stable while requests come and go. */
export type EntryKey = [provisionerId: string, workerType: string, cacheName: string];

const isoMs = z.string().transform((s, ctx) => {
  const ms = Date.parse(s);
  if (!Number.isFinite(ms)) ctx.addIssue({ code: 'custom', message: 'not a date' });
  return ms;
});
const fileSchema = z.object({
  version: z.literal(1),
  requests: z.array(z.object({ provisionerId: z.string(), workerType: z.string(), cacheName: z.string(), before: isoMs, expires: isoMs })),
});

export class RequestStore {
  private readonly entries = new Map<string, Entry>();
  private writes: Promise<void> = Promise.resolve();
  private tmpCounter = 0;

  private constructor(
    private readonly dataFile: string | undefined,
    private readonly clock: Clock,
    private readonly ttlMs: number,
  ) {}

  /** Loads the data file if there is one (creating it if missing, so a bad path fails at start, not at the first POST). */
  static async open(dataFile: string | undefined, clock: Clock, ttlMs: number): Promise<RequestStore> {
    const store = new RequestStore(dataFile, clock, ttlMs);
    if (dataFile === undefined) return store;
    let text: string | undefined;
    try {
      text = await readFile(dataFile, 'utf8');
    } catch (err) {
      if (errnoCode(err) !== 'ENOENT') throw new ServiceDataError(`cannot read the data file ${dataFile}: ${errorMessage(err)}`, dataFile, { cause: err });
    }
    if (text !== undefined) {
      let parsed: z.infer<typeof fileSchema>;
      try {
        parsed = fileSchema.parse(JSON.parse(text));
      } catch {
        throw new ServiceDataError(
          `the data file ${dataFile} is not a purge-cache-agent serve data file (corrupt or from something else); move it aside or give another --data`,
          dataFile,
        );
      }
      for (const entry of parsed.requests) store.entries.set(keyString([entry.provisionerId, entry.workerType, entry.cacheName]), entry);
    }
    store.prune();
    await store.persist();
    return store;
  }

  /**
   * Files (or refreshes) a request: `before` becomes now, and it lives a TTL from now.
   * If the write fails the caller answers 500 and the client retries; the change
   * stays in memory, and the next successful write saves it too.
   */
  async purge(pool: WorkerPool, cacheName: string): Promise<void> {
    const now = this.clock.now();
    const entry = { ...pool, cacheName, before: now, expires: now + this.ttlMs };
    this.entries.set(keyString([pool.provisionerId, pool.workerType, cacheName]), entry);
    this.prune();
    await this.persist();
  }

  /** The pool's live requests with `before >= since` (inclusive). */
  forPool(pool: WorkerPool, since: number | undefined): PurgeRequest[] {
    const now = this.clock.now();
    return this.sorted(now)
      .filter((e) => e.provisionerId === pool.provisionerId && e.workerType === pool.workerType)
      .filter((e) => since === undefined || e.before >= since)
      .map(toRequest);
  }

  /** Up to `limit` live requests after `after`, and the key to continue from when more remain. */
  page(after: EntryKey | undefined, limit: number): { requests: PurgeRequest[]; next: EntryKey | undefined } {
    const all = this.sorted(this.clock.now());
    const start = after === undefined ? 0 : all.findIndex((e) => compareKeys(keyOf(e), after) > 0);
    const rest = start === -1 ? [] : all.slice(start);
    const items = rest.slice(0, limit);
    const last = items.at(-1);
    return { requests: items.map(toRequest), next: rest.length > limit && last ? keyOf(last) : undefined };
  }

  /** Resolves when every write begun so far has finished. */
  async flush(): Promise<void> {
    await this.writes.catch(() => undefined);
  }

  private sorted(now: number): Entry[] {
    return [...this.entries.values()].filter((e) => e.expires > now).sort((a, b) => compareKeys(keyOf(a), keyOf(b)));
  }

  private prune(): void {
    const now = this.clock.now();
    for (const [key, entry] of this.entries) if (entry.expires <= now) this.entries.delete(key);
  }

  /** Writes are queued so that two POSTs never race on the file; each caller waits for its own. */
  private persist(): Promise<void> {
    const file = this.dataFile;
    if (file === undefined) return Promise.resolve();
    const text = `${JSON.stringify({ version: 1, requests: [...this.entries.values()].map(toStored) }, null, 2)}\n`;
    const write = this.writes.catch(() => undefined).then(() => writeAtomically(file, text, ++this.tmpCounter));
    this.writes = write;
    return write;
  }
}

async function writeAtomically(file: string, text: string, n: number): Promise<void> {
  const tmp = `${file}.tmp-${process.pid}-${n}`;
  try {
    const handle = await open(tmp, 'wx', 0o600);
    try {
      await handle.writeFile(text);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(tmp, file);
    const dir = await open(path.dirname(file), 'r');
    try {
      await dir.sync();
    } finally {
      await dir.close();
    }
  } catch (err) {
    await unlink(tmp).catch(() => undefined);
    throw new ServiceDataError(`cannot write the data file ${file}: ${errorMessage(err)}`, file, { cause: err });
  }
}

function keyString(key: EntryKey): string {
  return JSON.stringify(key);
}

function keyOf(e: Entry): EntryKey {
  return [e.provisionerId, e.workerType, e.cacheName];
}

function compareKeys(a: EntryKey, b: EntryKey): number {
  return compareStrings(a[0], b[0]) || compareStrings(a[1], b[1]) || compareStrings(a[2], b[2]);
}

/** Plain string order (UTF-16 code units), the same on every machine: never locale order. */
function compareStrings(x: string, y: string): number {
  return x < y ? -1 : x > y ? 1 : 0;
}

function toRequest(e: Entry): PurgeRequest {
  return { provisionerId: e.provisionerId, workerType: e.workerType, cacheName: e.cacheName, before: new Date(e.before).toISOString() };
}

function toStored(e: Entry) {
  return { ...toRequest(e), expires: new Date(e.expires).toISOString() };
}
