/**
 * One error class per failure, each with a stable `code` (as undici does), so
 * callers and tests branch on `code`, never on message text. Messages say what
 * went wrong, name the setting or path involved, and what to do about it. They
 * never contain credentials: callers pass names of settings, never values.
 */

export abstract class AgentError extends Error {
  abstract readonly code: string;
  /** The process exit code a CLI command should end with when this escapes. */
  readonly exitCode: number = 1;
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** A setting is missing, unknown or malformed. Exit code 2: fix the invocation. */
export class ConfigError extends AgentError {
  readonly code = 'PCA_CONFIG';
  override readonly exitCode = 2;
  constructor(
    message: string,
    readonly setting?: string,
  ) {
    super(message);
  }
}

/** The command line itself is wrong (unknown command, missing argument). Exit code 2. */
export class UsageError extends AgentError {
  readonly code = 'PCA_USAGE';
  override readonly exitCode = 2;
}

/** Another agent holds the state directory's lock. */
export class StateLockedError extends AgentError {
  readonly code = 'PCA_STATE_LOCKED';
  constructor(
    readonly stateDir: string,
    readonly holderPid: number | null,
  ) {
    super(
      `another purge-cache-agent (pid ${holderPid ?? 'unknown'}) holds the state directory ${stateDir}; ` +
        'stop it first, or give this one its own --state-dir',
    );
  }
}

/** The state file could not be written (disk full, permissions, ...). */
export class StateWriteError extends AgentError {
  readonly code = 'PCA_STATE_WRITE';
}

/**
 * The purge-cache service answered with an error status. `serviceCode` and
 * `serviceMessage` are the service's own `{code, message}` body fields.
 */
export class UpstreamHttpError extends AgentError {
  readonly code = 'PCA_UPSTREAM_HTTP';
  constructor(
    message: string,
    readonly status: number,
    readonly serviceCode: string | undefined,
    readonly serviceMessage: string | undefined,
    readonly retryable: boolean,
  ) {
    super(message);
  }
}

/** The service could not be reached or did not answer in time. */
export class UpstreamNetworkError extends AgentError {
  readonly code = 'PCA_UPSTREAM_NETWORK';
}

/** The service answered 2xx but the body is not what the API promises. */
export class UpstreamResponseError extends AgentError {
  readonly code = 'PCA_UPSTREAM_RESPONSE';
}

/** A path failed one of the safety rules in src/caches/safety.ts; nothing was touched. */
export class UnsafePathError extends AgentError {
  readonly code = 'PCA_UNSAFE_PATH';
  constructor(
    message: string,
    readonly path: string,
  ) {
    super(message);
  }
}

/**
 * Neither flock(1) nor perl is installed: the agent cannot take flock(2)
 * locks, so it cannot keep a user from locking a cache while it renames it.
 */
export class FlockUnavailableError extends AgentError {
  readonly code = 'PCA_FLOCK_UNAVAILABLE';
}

/** A new lease would take the live leases past their limit (per cache, or in all). */
export class LeaseLimitError extends AgentError {
  readonly code = 'PCA_LEASE_LIMIT';
}

/** No running agent answered on its local API. */
export class AgentUnreachableError extends AgentError {
  readonly code = 'PCA_AGENT_UNREACHABLE';
}

/** A task run through the local API finished with a failure. */
export class TaskFailedError extends AgentError {
  readonly code = 'PCA_TASK_FAILED';
}

export function errorMessage(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}

/** The errno-style code of a Node system error (`ENOENT`, `EACCES`, ...), if any. */
export function errnoCode(err: unknown): string | undefined {
  if (typeof err === 'object' && err !== null && 'code' in err) {
    const code = (err as { code: unknown }).code;
    if (typeof code === 'string') return code;
  }
  return undefined;
}
