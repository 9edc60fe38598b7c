/**
 * exec's side of the conversation with the agent: through its local API when
 * it runs, else on the state file under its lock (src/engine/agent-link.ts).
 */
import type { Settings } from '../../config/index.js';
import type { Logger } from '../../log.js';
import { acquireLeaseIn, releaseLeaseIn } from '../leases.js';
import { runPurgeNow, runRecheck, type CycleReport } from '../cycle.js';
import { withAgentOrState } from '../agent-link.js';
import { findAgent, type ApiClient } from '../../api/client.js';
import { Agent } from '../agent.js';
import { TaskFailedError, ApiRequestError } from '../../errors.js';
import type { Coordinator, Lease, Target } from './claim.js';

export interface ExecCoordinator extends Coordinator {
  /**
   * Purge `name` now, as the local API's purge does (no service asked; an
   * in-use cache is deferred and its purge recorded as pending). Resolves with
   * who holds it when it had to be deferred.
   */
  purgeNow(name: string): Promise<{ deferredBy: string | null }>;
  sync(): Promise<void>;
  acquireLease(name: string, owner: string, ttlMs: number): Promise<void>;
  releaseLease(name: string, owner: string): Promise<void>;
}

function deferralOf(report: CycleReport | null | undefined, name: string): string | null {
  return report?.deferred.find((d) => d.name === name)?.reason ?? null;
}

export function execCoordinator(settings: Settings, logger: Logger): ExecCoordinator {
  const either = <T>(viaApi: Parameters<typeof withAgentOrState<T>>[2], offline: Parameters<typeof withAgentOrState<T>>[3]) =>
    withAgentOrState<T>(settings, logger, viaApi, offline).then((r) => r.value);

  return {
    leaseUnlessPending: (target: Target, key: string, lease: Lease) =>
      either(
        async (client) => {
          const { caches } = await client.caches();
          if (caches.some((c) => c.path === target.path && c.pendingPurge !== null)) return false;
          await client.acquireLease(target.name, lease.owner, lease.ttlMs / 1000);
          return true;
        },
        async (local) => {
          if (local.state.pending.some((p) => p.path === target.path && p.key === key)) return false;
          await acquireLeaseIn(local, target.name, lease.owner, lease.ttlMs, { deferRenewals: false });
          return true;
        },
      ),

    purge: (name: string) =>
      either(
        async (client) => {
          const answer = await client.purge(name);
          if (answer.task_id === null) return { deferredBy: null };
          const view = await client.follow(answer.task_id);
          if (view.code !== 0) throw new TaskFailedError(`purging cache ${JSON.stringify(name)} failed: ${view.error}`);
          return { deferredBy: deferralOf(view.result, name) };
        },
        // Without an agent, carry out the pending purge here; its trash is emptied by the next agent run.
        async (local) => ({ deferredBy: deferralOf(await runRecheck(local), name) }),
      ),

    purgeNow: (name: string) =>
      either(
        async (client) => {
          let answer: Awaited<ReturnType<ApiClient['purge']>>;
          try {
            answer = await client.purge(name);
          } catch (err) {
            if (err instanceof ApiRequestError && err.status === 404) return { deferredBy: null }; // no such cache: nothing to purge
            throw err;
          }
          if (answer.task_id === null) return { deferredBy: null };
          const view = await client.follow(answer.task_id);
          if (view.code !== 0) throw new TaskFailedError(`purging cache ${JSON.stringify(name)} failed: ${view.error}`);
          return { deferredBy: deferralOf(view.result, name) };
        },
        // Without an agent, purge here; its trash is emptied by the next agent run.
        async (local) => {
          const report = await runPurgeNow(local, [name]);
          const failed = report.failed.find((f) => f.name === name);
          if (failed) throw new TaskFailedError(`purging cache ${JSON.stringify(name)} failed: ${failed.error}`);
          return { deferredBy: deferralOf(report, name) };
        },
      ),

    async sync() {
      const { client } = await findAgent(settings);
      if (!client) {
        // No agent: run one cycle here, as `once` would.
        const agent = await Agent.start(settings, { logger, lockWaitMs: 3_000 });
        try {
          const report = await agent.sync({ join: true });
          if (report.error !== undefined) throw new TaskFailedError(`sync failed: ${report.error}`);
        } finally {
          await agent.close();
        }
        return;
      }
      try {
        // A sync joins a cycle in flight, whose query may predate requests filed
        // just now: if the cycle we joined asked before we did, ask once more.
        const asked = Date.now();
        for (let round = 0; round < 2; round++) {
          const view = await client.follow((await client.sync()).task_id);
          if (view.code !== 0) throw new TaskFailedError(`sync failed: ${view.error}`);
          const queriedAt = Date.parse(view.result?.queriedAt ?? '');
          if (queriedAt >= asked) return;
        }
      } finally {
        await client.close();
      }
    },

    acquireLease: (name, owner, ttlMs) =>
      either(
        async (client) => {
          await client.acquireLease(name, owner, ttlMs / 1000);
        },
        async (local) => {
          await acquireLeaseIn(local, name, owner, ttlMs, { deferRenewals: false });
        },
      ),

    releaseLease: (name, owner) =>
      either(
        async (client) => {
          await client.releaseLease(name, owner);
        },
        async (local) => {
          await releaseLeaseIn(local, name, owner);
        },
      ),
  };
}
