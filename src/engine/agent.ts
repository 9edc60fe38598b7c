/**
 * The agent: one object that owns the state, the upstream client, the usage
 * probe and the trash, and runs cycles one at a time. `once`, `run` and the
 * local API all drive it; none of them touches the pieces directly.
 */
import type { Settings } from '../config/index.js';
import { requireCaches, requirePool, requireService } from '../config/index.js';
import { systemClock, type Clock } from '../edges/clock.js';
import type { Logger } from '../log.js';
import type { WorkerPool } from '../core/model.js';
import { StateStore } from '../edges/state.js';
import {
  runCycle,
  runRecheck,
  runPurgeNow,
  evict,
  localReport,
  holdersOfCaches,
  saveState,
  newObservations,
  adoptIdentity,
  type CycleContext,
  type CycleReport,
  type Observations,
} from './cycle.js';
import { resolveSources, type CacheSources } from '../edges/caches/inventory.js';
import type { Holder } from '../edges/caches/inuse.js';
import { localContext } from './context.js';
import { acquireLease, releaseLease, liveLeases, leaseNeedsWrite, findLease, type Lease } from '../core/leases.js';
import { PurgeCacheClient } from '../edges/upstream/client.js';
import { TrashRunner } from './trash-runner.js';
import { minFreeCrossedNow, type EvictedEntry } from './eviction.js';

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

type CycleListener = (report: CycleReport, durationMs: number) => void;

/** What an operation is: a cycle against the service, a recheck of deferred purges, or a local purge (the local API). */
export type OperationKind = 'cycle' | 'recheck' | 'purge' | 'evict';

/**
 * One unit of work on the caches and the state. Operations run one at a time,
 * in the order they got their turn; `started` turns true when one begins.
 */
export interface Operation {
  readonly id: number;
  readonly kind: OperationKind;
  /** For a purge: the cache it is about. */
  readonly name?: string;
  started: boolean;
  readonly promise: Promise<CycleReport>;
}

export interface OperationListener {
  started?(op: Operation): void;
  progress?(op: Operation, line: string): void;
  /** Every finished operation's report (cycles, rechecks and purges): for metrics. */
  finished?(op: Operation, report: CycleReport, durationMs: number): void;
}

export class Agent {
  /** The operation running now, if any. */
  private current: Operation | null = null;
  /** A cycle waiting for its turn: later syncs join it. */
  private queuedCycle: Operation | null = null;
  /** Purges waiting for their turn, by cache name: concurrent purges of one cache join the waiting one. */
  private readonly waitingPurges = new Map<string, Operation>();
  /** Every operation not yet finished (close() waits for them). */
  private readonly unfinished = new Set<Operation>();
  private nextOpId = 1;
  readonly observed: Observations = newObservations();
  lastCycle: LastCycle | null = null;
  lastSuccessAt: number | null = null;
  lastEviction: LastEviction | null = null;
  private stopping = new AbortController();
  private readonly listeners: CycleListener[] = [];
  private readonly opListeners: OperationListener[] = [];

  private constructor(
    readonly settings: Settings,
    readonly pool: WorkerPool,
    readonly sources: CacheSources,
    readonly client: PurgeCacheClient,
    readonly store: StateStore | null,
    private ctx: CycleContext,
    readonly trash: TrashRunner,
    readonly logger: Logger,
    readonly clock: Clock,
  ) {}

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
    const ctx: CycleContext = { ...localContext({ settings, logger, clock, sources, store, state, observed: newObservations() }), pool, client };
    const agent = new Agent(settings, pool, sources, client, store, ctx, trash, logger, clock);
    agent.stopping = stopping;
    ctx.observed = agent.observed;
    adoptIdentity(ctx);
    return agent;
  }

  get state() {
    return this.ctx.state;
  }

  /** Change the state outside a cycle (leases); saved at once, never racing a cycle's own save. */
  async updateState(change: (state: CycleContext['state']) => CycleContext['state']): Promise<void> {
    await saveState(this.ctx, change);
  }

  /** Create or extend `owner`'s lease on a cache (see src/core/leases.ts); expired leases are forgotten on the way. */
  async acquireLease(cacheName: string, owner: string, ttlMs: number): Promise<Lease> {
    let lease: Lease | undefined;
    // In turn with the state writes, as saveState does; a renewal early in its TTL is not written (leaseNeedsWrite).
    const run = (this.ctx.writes ?? Promise.resolve()).then(async () => {
      const state = this.ctx.state;
      const now = this.clock.now();
      const next = acquireLease(liveLeases(state.leases, now), cacheName, owner, ttlMs, now);
      lease = next.lease;
      const changed = { ...state, leases: next.leases };
      if (this.ctx.store && leaseNeedsWrite(findLease(state.leases, cacheName, owner, now), next.lease, ttlMs, now)) await this.ctx.store.save(changed);
      this.ctx.state = changed;
    });
    this.ctx.writes = run.catch(() => {});
    await run;
    return lease!;
  }

  /** Drop `owner`'s lease on a cache, noting the cache's last use (for eviction); false when it held none (or it had expired). */
  async releaseLease(cacheName: string, owner: string): Promise<boolean> {
    let released = false;
    await this.updateState((state) => {
      const now = this.clock.now();
      const next = releaseLease(liveLeases(state.leases, now), cacheName, owner);
      released = next.released;
      return { ...state, leases: next.leases, ...(released ? { lastUsed: { ...state.lastUsed, [cacheName]: now } } : {}) };
    });
    return released;
  }

  /** Who holds each of these caches now (processes, locks, live leases), by path; caches nobody holds are absent. */
  holdersOf(caches: readonly { name: string; path: string }[]): Promise<Map<string, Holder[]>> {
    return holdersOfCaches(this.ctx, caches, this.clock.now());
  }

  onCycle(listener: CycleListener): void {
    this.listeners.push(listener);
  }

  onOperation(listener: OperationListener): void {
    this.opListeners.push(listener);
  }

  get cycleInFlight(): Promise<CycleReport> | null {
    return this.current?.kind === 'cycle' ? this.current.promise : null;
  }

  /** The operation running now, if any. */
  get running(): Operation | null {
    return this.current;
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
      const listener: OperationListener = { progress: (o, line) => o === op && progress(line) };
      this.opListeners.push(listener);
      const remove = (): void => void this.opListeners.splice(this.opListeners.indexOf(listener), 1);
      op.promise.then(remove, remove);
    }
    return op.promise;
  }

  /** sync(), returning the operation that serves it: the cycle in flight (join), the waiting one, or a new one. */
  syncOperation(opts: { join: boolean } = { join: true }): Operation {
    if (opts.join && this.current?.kind === 'cycle') return this.current;
    // A cycle still waiting for its turn has not queried yet: it serves both kinds of request.
    if (this.queuedCycle) return this.queuedCycle;
    const op = this.enqueue('cycle', undefined, () => this.runCycleNow());
    if (!op.started) this.queuedCycle = op;
    return op;
  }

  /**
   * Purge one local cache now, under the same rules as a purge request (in-use
   * caches are deferred). A purge of the same cache that is still waiting for
   * its turn serves this one too, so concurrent requests perform one purge.
   */
  purgeNow(name: string): Operation {
    const waiting = this.waitingPurges.get(name);
    if (waiting) return waiting;
    const op = this.enqueue('purge', name, async () => {
      const report = await runPurgeNow(this.ctx, [name]);
      if (report.purged.length > 0 && !this.settings.dryRun) this.trash.kick();
      return report;
    });
    if (!op.started) this.waitingPurges.set(name, op);
    return op;
  }

  /**
   * Retry deferred purges, and apply what an unreadable location owes, now —
   * unless something else is running (a cycle does the same work).
   */
  async recheck(): Promise<CycleReport | null> {
    const owed = this.observed.locations.some((l) => l.instance === null);
    if (this.current || this.queuedCycle || (this.ctx.state.pending.length === 0 && !owed)) return null;
    const report = await this.enqueue('recheck', undefined, () => runRecheck(this.ctx)).promise;
    if (report.purged.length > 0) this.trash.kick();
    return report;
  }

  /**
   * Evict now if free space fell below --min-free since the last cycle (a
   * statfs per filesystem: cheap enough for every --recheck tick). Skipped
   * while anything else runs or waits: a cycle ends with an eviction pass.
   */
  async evictIfLow(): Promise<CycleReport | null> {
    if (this.current || this.queuedCycle || !(await minFreeCrossedNow(this.settings, this.sources))) return null;
    const report = await this.enqueue('evict', undefined, async () => {
      const now = this.clock.now();
      const r = localReport(now);
      await evict(this.ctx, r);
      return r;
    }).promise;
    if (report.evicted.length > 0 && !this.settings.dryRun) this.trash.kick();
    return report;
  }

  /**
   * Give `work` its turn: at once when nothing runs, else after everything
   * that got its turn before. The check and the claim happen in one
   * synchronous step, so two operations never overlap.
   */
  private enqueue(kind: OperationKind, name: string | undefined, work: () => Promise<CycleReport>): Operation {
    let settle!: { resolve: (report: CycleReport) => void; reject: (err: unknown) => void };
    const promise = new Promise<CycleReport>((resolve, reject) => (settle = { resolve, reject }));
    // The promise exists before the operation can start, so listeners told of its start may use it.
    const op: Operation = { id: this.nextOpId++, kind, ...(name !== undefined ? { name } : {}), started: false, promise };
    const begin = (): void => {
      this.current = op;
      op.started = true;
      if (this.queuedCycle === op) this.queuedCycle = null;
      if (name !== undefined && this.waitingPurges.get(name) === op) this.waitingPurges.delete(name);
      const mono = this.clock.monotonic();
      for (const l of this.opListeners) l.started?.(op);
      this.ctx.progress = (line) => {
        for (const l of this.opListeners) l.progress?.(op, line);
      };
      work()
        .then((report) => {
          const durationMs = this.clock.monotonic() - mono;
          if (report.evicted.length > 0)
            this.lastEviction = { at: new Date(this.clock.now()).toISOString(), dryRun: Boolean(report.dryRun), evicted: report.evicted };
          for (const l of this.opListeners) l.finished?.(op, report, durationMs);
          return report;
        })
        .finally(() => {
          this.ctx.progress = undefined;
          if (this.current === op) this.current = null;
          this.unfinished.delete(op);
        })
        .then(settle.resolve, settle.reject);
    };
    this.unfinished.add(op);
    if (!this.current) {
      begin();
    } else {
      // Wait for the turn; several waiters may wake together, and the first to look claims it.
      void (async () => {
        while (this.current) await this.current.promise.catch(() => {});
        begin();
      })();
    }
    return op;
  }

  private async runCycleNow(): Promise<CycleReport> {
    const started = this.clock.now();
    const mono = this.clock.monotonic();
    const report = await runCycle(this.ctx);
    const durationMs = this.clock.monotonic() - mono;
    this.recordCycle(report, started, durationMs);
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
    for (const listener of this.listeners) listener(report, durationMs);
  }

  /** Wait for the operation in flight (and those waiting for their turn), then release the state lock. */
  async close(): Promise<void> {
    this.stopping.abort();
    while (this.unfinished.size > 0) {
      await Promise.allSettled([...this.unfinished].map((op) => op.promise));
    }
    await this.trash.stop();
    await this.store?.close();
  }
}
