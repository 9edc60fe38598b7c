/**
 * The agent: one object that owns the state, the upstream client, the usage
 * probe and the trash, and runs cycles one at a time. `once`, `run` and the
 * local API all drive it; none of them touches the pieces directly.
 */
import type { Settings } from './config/index.js';
import { requireCaches, requirePool, requireService } from './config/index.js';
import { systemClock, type Clock } from './clock.js';
import type { Logger } from './log.js';
import type { WorkerPool } from './model.js';
import { StateStore } from './state.js';
import { runCycle, runRecheck, newObservations, type CycleContext, type CycleReport, type Observations } from './cycle.js';
import { resolveSources, type CacheSources } from './caches/inventory.js';
import { createUsageProbe } from './caches/inuse.js';
import { PurgeCacheClient } from './upstream/client.js';
import { TrashRunner } from './trash-runner.js';

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
  error?: string;
  durationMs: number;
}

type CycleListener = (report: CycleReport, durationMs: number) => void;

export class Agent {
  private inFlight: Promise<CycleReport> | null = null;
  private queued: Promise<CycleReport> | null = null;
  readonly observed: Observations = newObservations();
  lastCycle: LastCycle | null = null;
  lastSuccessAt: number | null = null;
  private readonly listeners: CycleListener[] = [];

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
    const client = new PurgeCacheClient({
      rootUrl: settings.rootUrl,
      proxyUrl: settings.proxyUrl,
      credentials: settings.credentials,
      logger,
    });
    const checks = settings.inUseChecks;
    const usage = createUsageProbe({ sources: { locks: checks.includes('locks'), processes: checks.includes('processes') }, logger });
    // A dry run changes nothing, not even the lock file: it reads the state and never writes it.
    const store = settings.dryRun ? null : await StateStore.open(settings.stateDir, { logger, waitMs: options.lockWaitMs ?? 0 });
    const state = store ? store.state : await StateStore.peek(settings.stateDir, logger);
    const trash = new TrashRunner(sources, settings, logger);
    const ctx: CycleContext = { settings, pool, sources, client, usage, clock, logger, store, state, observed: newObservations() };
    const agent = new Agent(settings, pool, sources, client, store, ctx, trash, logger, clock);
    ctx.observed = agent.observed;
    return agent;
  }

  get state() {
    return this.ctx.state;
  }

  /** Change the state outside a cycle (leases); saved at once. */
  async updateState(change: (state: CycleContext['state']) => CycleContext['state']): Promise<void> {
    const next = change(this.ctx.state);
    if (this.store) await this.store.save(next);
    this.ctx.state = next;
  }

  onCycle(listener: CycleListener): void {
    this.listeners.push(listener);
  }

  get cycleInFlight(): Promise<CycleReport> | null {
    return this.inFlight;
  }

  /**
   * Run a cycle. Cycles never overlap. `join: true` returns the cycle in
   * flight if there is one (a sync request that arrives mid-cycle is served by
   * it); `join: false` queues a single further cycle after it (SIGHUP): a
   * request filed during the cycle in flight may have missed its query.
   */
  sync(opts: { join: boolean; progress?: (line: string) => void } = { join: true }): Promise<CycleReport> {
    if (this.inFlight) {
      if (opts.join) return this.inFlight;
      this.queued ??= this.inFlight.then(
        () => this.startCycle(opts.progress),
        () => this.startCycle(opts.progress),
      );
      return this.queued;
    }
    return this.startCycle(opts.progress);
  }

  /** Retry deferred purges now, unless a cycle is running (it does the same work). */
  async recheck(): Promise<CycleReport | null> {
    if (this.inFlight || this.ctx.state.pending.length === 0) return null;
    const run = this.guard(() => runRecheck(this.ctx));
    const report = await run;
    if (report.purged.length > 0) this.trash.kick();
    return report;
  }

  private startCycle(progress?: (line: string) => void): Promise<CycleReport> {
    this.queued = null;
    return this.guard(async () => {
      const started = this.clock.now();
      const mono = this.clock.monotonic();
      this.ctx.progress = progress;
      try {
        const report = await runCycle(this.ctx);
        const durationMs = this.clock.monotonic() - mono;
        this.recordCycle(report, started, durationMs);
        // Every cycle gives the trash a turn: deletions that failed before are retried.
        if (!this.settings.dryRun) this.trash.kick();
        return report;
      } finally {
        this.ctx.progress = undefined;
      }
    });
  }

  private guard(run: () => Promise<CycleReport>): Promise<CycleReport> {
    const promise = run().finally(() => {
      if (this.inFlight === promise) this.inFlight = null;
    });
    this.inFlight = promise;
    return promise;
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
      durationMs: Math.round(durationMs),
      ...(report.error !== undefined ? { error: report.error } : {}),
    };
    // Readiness tracks whether the service answers: a failed purge is not an unreachable service.
    if (report.error === undefined) this.lastSuccessAt = started;
    for (const listener of this.listeners) listener(report, durationMs);
  }

  /** Wait for the cycle in flight (and a queued one), then release the state lock. */
  async close(): Promise<void> {
    while (this.inFlight || this.queued) {
      await (this.queued ?? this.inFlight)?.catch(() => {});
    }
    await this.trash.stop();
    await this.store?.close();
  }
}
