/**
 * The local API's contract: the request bodies and answers of each route,
 * declared once. The routes build these shapes and the client returns them,
 * so a field renamed on one side fails to compile on the other. The README's
 * "Local API" section describes the same routes for people.
 */
import type { Settings } from '../config/index.js';
import type { RecordView } from '../core/contract.js';
import type { CycleReport } from '../core/report.js';
import type { Holder } from '../core/judge.js';
import type { InventoryProblem } from '../edges/caches/inventory.js';
import type { LastCycle, LastEviction, OperationKind } from '../engine/agent.js';
import type { TaskView } from './tasks.js';

/** Every refusal (status 400 and above): a stable code and a sentence saying what went wrong. */
export interface ErrorAnswer {
  code: string;
  message: string;
}

/** GET /healthz */
export interface HealthAnswer {
  status: 'ok';
}

/** GET /readyz, when ready (otherwise 503 with an ErrorAnswer whose code is NotReady). */
export interface ReadyAnswer {
  status: 'ready';
  lastSuccessAt: string | null;
  thresholdSeconds: number;
}

/** A purge decided but not carried out yet, as /v1/status and /v1/caches show it. */
export interface PendingView {
  reason: 'in-use' | 'failed';
  before: string;
  since: string;
  lastError?: string;
}

/** PUT /v1/caches/{name}/leases/{owner}; also one of /v1/status's leases. */
export interface LeaseAnswer {
  cacheName: string;
  owner: string;
  expiresAt: string;
  ttlSeconds: number;
}

/** The body of PUT /v1/caches/{name}/leases/{owner}: a TTL not given is DEFAULT_LEASE_TTL_SECONDS (src/core/leases.ts). */
export interface LeaseRequest {
  ttlSeconds?: number | undefined;
}

/** The resolved settings without the secret ones (a setting not set is left out), durations in milliseconds, and who the agent is to the service. */
export type ConfigSummary = Omit<Settings, 'credentials' | 'apiToken'> & {
  credentials: { clientId: string; temporary: boolean } | 'anonymous';
  durationsIn: 'ms';
};

/** GET /v1/status */
export interface StatusAnswer {
  version: string;
  pid: number;
  startedAt: string;
  uptimeSeconds: number;
  api: { socket: string; tcp?: string; tokenRequired: boolean };
  config: ConfigSummary;
  ready: { ready: boolean; reason: string; thresholdSeconds: number };
  running: { kind: OperationKind; name?: string } | null;
  lastCycle: LastCycle | null;
  lastEviction: LastEviction | null;
  lastSuccessAt: string | null;
  cursor: string | null;
  nextSince: string | null;
  pending: (PendingView & { name: string; path: string })[];
  leases: LeaseAnswer[];
  requests: RecordView[];
  locations: { location: string; readable: boolean; error?: string }[];
  clockOffsetMs: number | null;
  trash: {
    backlogBytes: number;
    backlogFiles: number;
    backlogPartial: boolean;
    measuredAt: string;
    deletedSinceStart: { files: number; bytes: number; failures: number };
  };
  tasks: number;
}

/** One cache of GET /v1/caches; the sizes only with ?size=1. */
export interface CacheRow {
  name: string;
  path: string;
  created: string | null;
  inUse: boolean;
  holders: Holder[];
  pendingPurge: PendingView | null;
  /** Null when measuring ran out of time (sizePartial is then true). */
  sizeBytes?: number | null;
  sizePartial?: true;
}

/** GET /v1/caches */
export interface CachesAnswer {
  caches: CacheRow[];
  problems?: InventoryProblem[];
}

/** DELETE /v1/caches/{name}: a task to follow, or with ?dry_run=1 the paths that would go. */
export type PurgeAnswer = { name: string; task_id: string } | { name: string; task_id: null; paths: string[] };

/** POST /v1/sync */
export interface SyncAnswer {
  task_id: string;
  task_state: 'PENDING';
}

/** GET /v1/tasks/{id}: a sync's or a purge's task, whose result, once it finished, is the operation's report (null if it threw). */
export type TaskAnswer = TaskView<CycleReport>;

/**
 * Each route by method and pattern, with the body it takes (undefined: none)
 * and the answer it gives (null: 204, no body). The client asks by these keys.
 */
export interface Routes {
  'GET /healthz': { request: undefined; answer: HealthAnswer };
  'GET /v1/status': { request: undefined; answer: StatusAnswer };
  'GET /v1/caches': { request: undefined; answer: CachesAnswer };
  'DELETE /v1/caches/{name}': { request: undefined; answer: PurgeAnswer };
  'POST /v1/sync': { request: undefined; answer: SyncAnswer };
  'GET /v1/tasks/{id}': { request: undefined; answer: TaskAnswer };
  'PUT /v1/caches/{name}/leases/{owner}': { request: LeaseRequest; answer: LeaseAnswer };
  'DELETE /v1/caches/{name}/leases/{owner}': { request: undefined; answer: null };
}

export type RouteName = keyof Routes;
