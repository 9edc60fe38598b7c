/**
 * The trash backlog: how many bytes wait in the agent's trash directories for
 * background deletion. Measured by walking them (src/edges/caches/size.ts) within a
 * budget, at most one walk at a time, and cached for a few seconds so that
 * frequent scrapes and status calls cost one walk.
 */
import type { CacheSources } from '../edges/caches/inventory.js';
import { trashDirsFor } from '../edges/caches/trash.js';
import { measureTrees } from '../edges/caches/size.js';

export interface Backlog {
  bytes: number;
  files: number;
  /** True when the walk ran out of budget: `bytes` is then a lower bound. */
  partial: boolean;
  measuredAt: string;
}

export class TrashBacklog {
  private last: { value: Backlog; at: number } | null = null;
  private running: Promise<Backlog> | null = null;

  constructor(
    private readonly sources: CacheSources,
    private readonly budgetMs = 1_000,
    private readonly maxAgeMs = 5_000,
  ) {}

  /** The backlog, measured now unless a measurement younger than maxAgeMs exists. */
  async current(): Promise<Backlog> {
    if (this.last && performance.now() - this.last.at < this.maxAgeMs) return this.last.value;
    this.running ??= this.measure().finally(() => {
      this.running = null;
    });
    return this.running;
  }

  private async measure(): Promise<Backlog> {
    const sizes = await measureTrees(trashDirsFor(this.sources), this.budgetMs);
    const value: Backlog = {
      bytes: sizes.reduce((sum, s) => sum + s.bytes, 0),
      files: sizes.reduce((sum, s) => sum + s.files, 0),
      partial: sizes.some((s) => !s.complete),
      measuredAt: new Date().toISOString(),
    };
    this.last = { value, at: performance.now() };
    return value;
  }
}
