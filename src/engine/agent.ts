/**
 * The agent: one object that owns the state, the upstream client, the usage
 * probe and the trash, and runs its operations one at a time through an
 * operation queue (src/engine/operation-queue.ts). `once`, `run` and the local
 * API all drive it; none of them touches the pieces directly.
 */
import type { Settings } from '../config/index.js';
import { requireCaches, requirePool, requireService } from '../config/index.js';
import { systemClock, type Clock } from '../edges/clock.js';
import type { Logger } from '../log.js';
import type { WorkerPool } from '../core/model.js';
import type { Lease } from '../core/leases.js';
import { StateStore } from '../edges/state.js';
import { resolveSources, type CacheSources } from '../edges/caches/inventory.js';
import type { Holder } from '../edges/caches/inuse.js';
import { PurgeCacheClient } from '../edges/upstream/client.js';
import { runCycle, runRecheck, runPurgeNow, newObservations, adoptIdentity, type CycleContext, type CycleReport, type Observations } from './cycle.js';
import { holdersOfCaches } from './look.js';
import { localContext } from './context.js';
import { acquireLeaseIn, releaseLeaseIn } from './leases.js';
import { OperationQueue, type Operation as QueuedOperation, type OperationListener as QueueListener } from './operation-queue.js';
import { TrashRunner } from './trash-runner.js';
import { minFreeCrossedNow, runEvictionPass, type EvictedEntry } from './eviction.js';

export interface AgentOptions {
  logger: Logger;
  clock?: Clock;
  /** For short-lived commands: wait this long for the state lock. */
  lockWaitMs?: number;
}

export interface LastCycle {
  at: string;
  finishedAt: string;
  outcome: 'success' | 'failure';
  requests: number;
  purged: number;
  failed: number;
  deferred: number;
  evicted: number;
  error?: string;
  durationMs: number;
}

/** The latest eviction pass that evicted anything (after a cycle, or on low free space). */
export interface LastEviction {
  at: string;
  dryRun: boolean;
  evicted: EvictedEntry[];
}

/** What an operation is: a cycle against the service, a recheck of deferred purges, a local purge (the local API), or an eviction pass. */
export type OperationKind = 'cycle' | 'recheck' | 'purge' | 'evict';

/** One unit of work on the caches and the state; they run one at a time, in the order they got their turn. */
export type Operation = QueuedOperation<OperationKind, CycleReport>;

/** Told of every operation; `finished` gets every successful one's report (cycles, rechecks, purges, evictions): for metrics. */
export type OperationListener = QueueListener<OperationKind, CycleReport>;

export class Agent {
  readonly observed: Observations = newObservations();
  lastCycle: LastCycle | null = null;
  lastSuccessAt: number | null = null;
  lastEviction: LastEviction | null = null;
  private readonly queue: OperationQueue<OperationKind, CycleReport>;

  private constructor(
    readonly settings: Settings,
    readonly pool: WorkerPool,
    readonly sources: CacheSources,
    readonly client: PurgeCacheClient,
    readonly store: StateStore | null,
    private readonly ctx: CycleContext,
    readonly trash: TrashRunner,
    readonly logger: Logger,
    readonly clock: Clock,
    private readonly stopping: AbortController,
  ) {
    this.queue = new OperationQueue(clock);
    // First of the listeners, so every other one told of an eviction finds it recorded.
    this.queue.listen({
      finished: (_op, report) => {
        if (report.evicted.length > 0) this.lastEviction = { at: new Date(clock.now()).toISOString(), dryRun: Boolean(report.dryRun), evicted: report.evicted };
      },
    });
  }

  static async start(settings: Settings, options: AgentOptions): Promise<Agent> {
    const pool = requirePool(settings);
    requireService(settings);
    requireCaches(settings);
    const { logger } = options;
    const clock = options.clock ?? systemClock;
    const sources = await resolveSources(settings.cacheRoots, settings.caches);
    // Aborted by close(): a query stuck on a slow service is abandoned rather than
    // awaited through all its retries (minutes) — safe, since the cursor holds.
    const stopping = new AbortController();
    const client = new PurgeCacheClient({
      rootUrl: settings.rootUrl,
      proxyUrl: settings.proxyUrl,
      credentials: settings.credentials,
      logger,
      signal: stopping.signal,
    });
    // A dry run changes nothing, not even the lock file: it reads the state and never writes it.
    const store = settings.dryRun ? null : await StateStore.open(settings.stateDir, { logger, waitMs: options.lockWaitMs ?? 0 });
    const state = store ? store.state : await StateStore.peek(settings.stateDir, logger);
    const trash = new TrashRunner(sources, settings, logger);
    const observed = newObservations();
    const ctx: CycleContext = { ...localContext({ settings, logger, clock, sources, store, state, observed }), pool, client };
    const agent = new Agent(settings, pool, sources, client, store, ctx, trash, logger, clock, stopping);
    ctx.observed = agent.observed;
    adoptIdentity(ctx);
    return agent;
  }

  get state() {
    return this.ctx.state;
  }

  /** Create or extend `owner`'s lease on a cache (src/engine/leases.ts); a renewal early in its TTL is saved with the next write. */
  acquireLease(cacheName: string, owner: string, ttlMs: number): Promise<Lease> {
    return acquireLeaseIn(this.ctx, cacheName, owner, ttlMs, { deferRenewals: true });
  }

  /** Drop `owner`'s lease on a cache, noting the cache's last use (for eviction); false when it held none (or it had expired). */
  releaseLease(cacheName: string, owner: string): Promise<boolean> {
    return releaseLeaseIn(this.ctx, cacheName, owner);
  }

  /** Who holds each of these caches now (processes, locks, live leases), by path; caches nobody holds are absent. */
  holdersOf(caches: readonly { name: string; path: string }[]): Promise<Map<string, Holder[]>> {
    return holdersOfCaches(this.ctx, caches, this.clock.now());
  }

  /** Every cycle's report, once it is recorded in lastCycle. */
  onCycle(listener: (report: CycleReport, durationMs: number) => void): void {
    this.queue.listen({
      finished: (op, report, durationMs) => {
        if (op.kind === 'cycle') listener(report, durationMs);
      },
    });
  }

  onOperation(listener: OperationListener): void {
    this.queue.listen(listener);
  }

  get cycleInFlight(): Promise<CycleReport> | null {
    const running = this.queue.running;
    return running?.kind === 'cycle' ? running.promise : null;
  }

  /** The operation running now, if any. */
  get running(): Operation | null {
    return this.queue.running;
  }

  /**
   * Run a cycle. Cycles never overlap. `join: true` returns the cycle in
   * flight if there is one (a sync request that arrives mid-cycle is served by
   * it); `join: false` queues a single further cycle after it (SIGHUP): a
   * request filed during the cycle in flight may have missed its query.
   */
  sync(opts: { join: boolean; progress?: (line: string) => void } = { join: true }): Promise<CycleReport> {
    const op = this.syncOperation(opts);
    const progress = opts.progress;
    if (progress) {
      const stop = this.queue.listen({
        progress: (o, line) => {
          if (o === op) progress(line);
        },
      });
      op.promise.then(stop, stop);
    }
    return op.promise;
  }

  /** sync(), returning the operation that serves it: the cycle in flight (join), the waiting one, or a new one. */
  syncOperation(opts: { join: boolean } = { join: true }): Operation {
    const running = this.queue.running;
    if (opts.join && running?.kind === 'cycle') return running;
    // A cycle still waiting for its turn has not queried yet: it serves both kinds of request.
    return this.submit('cycle', { mergeKey: 'cycle' }, () => this.runCycleNow());
  }

  /**
   * Purge one local cache now, under the same rules as a purge request (in-use
   * caches are deferred). A purge of the same cache that is still waiting for
   * its turn serves this one too, so concurrent requests perform one purge.
   */
  purgeNow(name: string): Operation {
    return this.submit('purge', { name, mergeKey: `purge:${name}` }, async () => {
      const report = await runPurgeNow(this.ctx, [name]);
      if (report.purged.length > 0 && !this.settings.dryRun) this.trash.kick();
      return report;
    });
  }

  /**
   * Retry deferred purges, and apply what an unreadable location owes, now —
   * unless something else is running or waiting (a cycle does the same work).
   */
  async recheck(): Promise<CycleReport | null> {
    const owed = this.observed.locations.some((l) => l.instance === null);
    if (!this.queue.idle || (this.ctx.state.pending.length === 0 && !owed)) return null;
    const report = await this.submit('recheck', {}, () => runRecheck(this.ctx)).promise;
    if (report.purged.length > 0) this.trash.kick();
    return report;
  }

  /**
   * Evict now if free space fell below --min-free since the last cycle (a
   * statfs per filesystem: cheap enough for every --recheck tick). Skipped
   * while anything else runs or waits: a cycle ends with an eviction pass.
   */
  async evictIfLow(): Promise<CycleReport | null> {
    if (!this.queue.idle || !(await minFreeCrossedNow(this.settings, this.sources))) return null;
    const report = await this.submit('evict', {}, () => runEvictionPass(this.ctx)).promise;
    if (report.evicted.length > 0 && !this.settings.dryRun) this.trash.kick();
    return report;
  }

  /** Queue `work`, with the operation's progress lines going to its listeners while it runs. */
  private submit(kind: OperationKind, opts: { name?: string; mergeKey?: string }, work: () => Promise<CycleReport>): Operation {
    return this.queue.submit(kind, {
      ...opts,
      work: async (progress) => {
        this.ctx.progress = progress;
        try {
          return await work();
        } finally {
          this.ctx.progress = undefined;
        }
      },
    });
  }

  private async runCycleNow(): Promise<CycleReport> {
    const started = this.clock.now();
    const mono = this.clock.monotonic();
    const report = await runCycle(this.ctx);
    this.recordCycle(report, started, this.clock.monotonic() - mono);
    // Every cycle gives the trash a turn: deletions that failed before are retried.
    if (!this.settings.dryRun) this.trash.kick();
    return report;
  }

  private recordCycle(report: CycleReport, started: number, durationMs: number): void {
    const outcome = report.error === undefined && report.failed.length === 0 ? 'success' : 'failure';
    this.lastCycle = {
      at: new Date(started).toISOString(),
      finishedAt: new Date(this.clock.now()).toISOString(),
      outcome,
      requests: report.requests,
      purged: report.purged.length,
      failed: report.failed.length,
      deferred: report.deferred.length,
      evicted: report.evicted.length,
      durationMs: Math.round(durationMs),
      ...(report.error !== undefined ? { error: report.error } : {}),
    };
    // Readiness tracks whether the service answers: a failed purge is not an unreachable service.
    if (report.error === undefined) this.lastSuccessAt = started;
  }

  /** Wait for the operation in flight (and those waiting for their turn), then release the state lock. */
  async close(): Promise<void> {
    this.stopping.abort();
    await this.queue.drain();
    await this.trash.stop();
    await this.store?.close();
  }
}
