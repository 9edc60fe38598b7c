/**
 * The task registry of the agent's operations: every cycle and purge gets a
 * task, whose output is the operation's progress and whose result is its
 * report — so a sync that joins a cycle sees all of its output.
 */
import type { Agent, Operation } from '../engine/agent.js';
import type { CycleReport } from '../core/report.js';
import { errorMessage } from '../errors.js';
import type { Task, TaskStore } from './tasks.js';

export class OperationTasks {
  private readonly byOp = new Map<number, Task<CycleReport>>();

  constructor(
    agent: Agent,
    private readonly tasks: TaskStore<CycleReport>,
  ) {
    agent.onOperation({
      started: (op) => {
        if (op.kind === 'recheck') return;
        const task = this.forOperation(op);
        tasks.markStarted(task);
        tasks.append(task, op.kind === 'cycle' ? 'cycle started' : `purge of ${JSON.stringify(op.name)} started`);
      },
      progress: (op, line) => {
        if (op.kind !== 'recheck') tasks.append(this.forOperation(op), line);
      },
    });
  }

  forOperation(op: Operation): Task<CycleReport> {
    let task = this.byOp.get(op.id);
    if (task) return task;
    const created = this.tasks.create(op.kind === 'cycle' ? 'sync' : 'purge', op.name);
    task = created;
    this.byOp.set(op.id, created);
    if (op.started) this.tasks.markStarted(created);
    op.promise.then(
      (report) => {
        this.byOp.delete(op.id);
        const outcome = outcomeOf(op, report);
        this.tasks.append(created, outcome.summary);
        this.tasks.finish(created, { result: report, code: outcome.code, error: outcome.error });
      },
      (err: unknown) => {
        this.byOp.delete(op.id);
        this.tasks.finish(created, { result: null, code: 1, error: errorMessage(err) });
      },
    );
    return task;
  }
}

function outcomeOf(op: Operation, report: CycleReport): { code: number; error: string; summary: string } {
  const verb = report.dryRun ? 'would purge' : 'purged';
  const counts = `${verb} ${report.purged.length}, deferred ${report.deferred.length}, failed ${report.failed.length}`;
  if (report.error !== undefined)
    return { code: 1, error: `the purge-cache service could not be queried: ${report.error}`, summary: `cycle failed: ${report.error}` };
  if (report.failed.length > 0) {
    const error = `${report.failed.length} purge(s) failed: ${report.failed.map((f) => `${f.path}: ${f.error}`).join('; ')}`;
    return { code: 1, error, summary: `${op.kind === 'cycle' ? 'cycle' : 'purge'} finished with failures: ${counts}` };
  }
  if (op.kind === 'cycle') return { code: 0, error: '', summary: `cycle finished: ${report.requests} request(s), ${counts}` };
  return { code: 0, error: '', summary: `purge finished: ${counts}` };
}
