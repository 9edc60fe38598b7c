/**
 * Run a callback on a cron schedule. The expressions src/core/cron.ts covers
 * are timed with one timer to the next run; the others (L, W, #, nicknames)
 * go to node-cron, loaded only for them, since node-cron keeps several MB of
 * ICU data resident to work out its runs.
 */
import { parseCron } from '../core/cron.js';

export interface Scheduled {
  stop(): Promise<void>;
}

/** setTimeout's longest delay (~24.8 days); a later run is waited for in steps. */
const MAX_TIMEOUT_MS = 2 ** 31 - 1;

export async function scheduleCron(expression: string, run: () => void): Promise<Scheduled> {
  const schedule = parseCron(expression);
  if (!schedule) {
    const { default: cron } = await import('node-cron');
    const task = cron.schedule(expression, run, { name: 'purge-cache-agent', noOverlap: false });
    return {
      stop: async () => {
        await task.stop();
        await task.destroy();
      },
    };
  }
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;
  const arm = (after: number): void => {
    const due = schedule.next(after);
    const wait = (): void => {
      if (stopped) return;
      const left = due - Date.now();
      // Timers can wake early when the wall clock is set back; look again rather than run early.
      if (left > 0) {
        timer = setTimeout(wait, Math.min(left, MAX_TIMEOUT_MS));
        return;
      }
      run();
      // After a suspend or a clock jump forward, the runs missed meanwhile collapse into this one.
      arm(Math.max(due, Date.now()));
    };
    wait();
  };
  arm(Date.now());
  return {
    stop: () => {
      stopped = true;
      clearTimeout(timer);
      return Promise.resolve();
    },
  };
}

/** The next `count` runs of a schedule after `afterMs`. */
export async function nextRuns(expression: string, count: number, afterMs: number): Promise<number[]> {
  const schedule = parseCron(expression);
  if (!schedule) {
    const { default: cron } = await import('node-cron');
    const task = cron.createTask(expression, () => {}, { name: 'purge-cache-agent-readiness-probe' });
    try {
      return task.getNextRuns(count).map((d) => d.getTime());
    } finally {
      await task.destroy();
    }
  }
  const runs: number[] = [];
  for (let at = afterMs; runs.length < count;) runs.push((at = schedule.next(at)));
  return runs;
}
