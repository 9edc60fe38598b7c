/**
 * Empties the trash in the background, one run at a time. A purge only
 * renames; this is where the space comes back. Runs are kicked after every
 * purge and at start (to finish what a crash left behind); a kick during a
 * run schedules one more run, so nothing renamed meanwhile is left waiting.
 *
 * With --delete-priority idle (the default) the deleting happens in a child
 * process at nice 19 and in the idle I/O class (src/edges/caches/trash-worker.ts):
 * builds on the same machine get the CPU and the disk first, and the daemon's
 * own event loop and memory stay out of it. `normal` deletes in process.
 */
import type { Settings } from '../config/index.js';
import type { Logger } from '../log.js';
import { errorMessage } from '../errors.js';
import type { CacheSources } from '../edges/caches/inventory.js';
import { trashDirsFor, emptyTrash, trashEntries } from '../edges/caches/trash.js';
import { emptyTrashInChild } from '../edges/caches/trash-worker.js';
import type { DeleteReport } from '../edges/caches/delete.js';

export type TrashListener = (report: DeleteReport) => void;

export class TrashRunner {
  private running: Promise<void> | null = null;
  /** Kicks so far: a run that ends with more than it started with runs again. */
  private kicks = 0;
  private controller = new AbortController();
  private readonly listeners: TrashListener[] = [];
  /** Totals since start, for status and metrics. */
  readonly totals = { files: 0, bytes: 0, failures: 0 };

  constructor(
    private readonly sources: CacheSources,
    private readonly settings: Settings,
    private readonly logger: Logger,
  ) {}

  onReport(listener: TrashListener): void {
    this.listeners.push(listener);
  }

  kick(): void {
    if (this.controller.signal.aborted) return;
    this.kicks++;
    if (this.running) return;
    this.running = this.loop().finally(() => {
      this.running = null;
    });
  }

  /** What the latest run could not delete (retried on the next run). */
  private lastFailures: { path: string; error: string }[] = [];
  private lastSkippedMounts = 0;

  /**
   * Kick, and resolve once the trash is empty — or a run failed to empty it:
   * then with what it could not delete (`once` reports those).
   */
  async drain(): Promise<{ path: string; error: string }[]> {
    this.kick();
    while (this.running) await this.running;
    if (this.lastFailures.length > 0) return this.lastFailures;
    // A mount point left in the trash is reported as such, on every run, and is no failure to delete.
    if (this.lastSkippedMounts > 0) return [];
    // No failure reported, yet something is left (a run cut short): the trash was not emptied.
    try {
      const left = await trashEntries(trashDirsFor(this.sources), 1);
      const first = left[0];
      if (first !== undefined) return [{ path: first, error: 'still in the trash after emptying it; retried on the next run' }];
    } catch (err) {
      return [{ path: trashDirsFor(this.sources).join(', '), error: `cannot list the trash: ${errorMessage(err)}` }];
    }
    return [];
  }

  async stop(): Promise<void> {
    this.controller.abort();
    await this.running;
  }

  private async loop(): Promise<void> {
    let seen: number;
    do {
      seen = this.kicks;
      this.lastFailures = [];
      this.lastSkippedMounts = 0;
      try {
        const options = { rateLimit: this.settings.deleteRate, signal: this.controller.signal, logger: this.logger };
        const dirs = trashDirsFor(this.sources);
        // Most kicks find the trash empty: one entry read instead of a child process.
        if ((await trashEntries(dirs, 1)).length === 0) continue;
        const report = this.settings.deletePriority === 'idle' ? await emptyTrashInChild(dirs, options) : await emptyTrash(dirs, options);
        this.record(report);
      } catch (err) {
        // The deleting child crashed or could not start: the trash is not empty, and `once` must say so.
        this.lastFailures = [{ path: trashDirsFor(this.sources).join(', '), error: errorMessage(err) }];
        this.logger.error({ err: errorMessage(err) }, 'emptying the trash failed; it will be retried after the next purge or at the next start');
      }
    } while (this.kicks !== seen && !this.controller.signal.aborted);
  }

  private record(report: DeleteReport): void {
    this.lastFailures = report.failures;
    this.lastSkippedMounts = report.skippedMounts.length;
    this.totals.files += report.files;
    this.totals.bytes += report.bytes;
    this.totals.failures += report.failures.length;
    if (report.files + report.dirs > 0) this.logger.info({ files: report.files, dirs: report.dirs, bytes: report.bytes }, 'trash emptied');
    for (const failure of report.failures) this.logger.error(failure, 'could not delete from the trash; retried on the next run');
    for (const mount of report.skippedMounts)
      this.logger.warn({ path: mount }, 'left a mount point in the trash alone: deletion never crosses into another filesystem');
    for (const listener of this.listeners) listener(report);
  }
}
