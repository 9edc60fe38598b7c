/** The daemon's own cron arithmetic agrees with node-cron, which validates the schedule, on every expression it takes on. */
import { describe, expect, it } from 'vitest';
import cron from 'node-cron';
import { parseCron } from '../../src/core/cron.js';

const HANDLED = [
  '* * * * *',
  '*/5 * * * *',
  '0 0 1 1 *',
  '*/1 * * * * *',
  '0 0 1 * 1',
  '0 0 13 * 5',
  '0 0 * * MON',
  '0 0 * * mon-fri',
  '0 0 * JAN *',
  '0 0 ? * *',
  '0 0 1-31/2 * *',
  '0 0 * * 7',
  '1,2-5/2 * * * *',
  '0 0 * * 1-7',
  '30 2 * * *',
  '0 9-17/2 * * 1-5',
  '15 10 29 2 *',
  '0 0 31 * *',
  '*/7 */3 * * * *',
  '0 0 * feb-apr sun',
];

function ours(expression: string, after: number, count: number): number[] {
  const schedule = parseCron(expression);
  if (!schedule) throw new Error(`${expression} not handled`);
  const runs: number[] = [];
  for (let at = after; runs.length < count;) runs.push((at = schedule.next(at)));
  return runs;
}

function theirs(expression: string, count: number): { after: number; runs: number[] } {
  const task = cron.createTask(expression, () => {});
  try {
    const after = Date.now();
    return { after, runs: task.getNextRuns(count).map((d) => d.getTime()) };
  } finally {
    void task.destroy();
  }
}

describe('parseCron', () => {
  it.each(HANDLED)('%s: the same next runs as node-cron', (expression) => {
    // node-cron counts from its own "now": a second may tick between the two reads, so allow a retry.
    let result = theirs(expression, 8);
    if (result.runs[0] !== ours(expression, result.after, 1)[0]) result = theirs(expression, 8);
    expect(ours(expression, result.after, 8)).toEqual(result.runs);
  });

  it('leaves L, W, #, nicknames and what node-cron refuses to node-cron', () => {
    for (const expression of ['0 0 L * *', '0 0 * * 1#2', '@daily', '0 0 * * 5L', '0 0 LW * *', '61 * * * *', '*/0 * * * *', '5/15 * * * *', '* * * *']) {
      expect(parseCron(expression), expression).toBeNull();
    }
  });

  it('runs strictly after the time given, on a whole second', () => {
    const at = new Date(2030, 0, 1, 12, 0, 0, 0).getTime();
    expect(parseCron('0 12 * * *')!.next(at)).toBe(new Date(2030, 0, 2, 12, 0, 0, 0).getTime());
    expect(parseCron('* * * * * *')!.next(at + 400)).toBe(at + 1000);
  });
});
