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

/**
 * The state directory cannot be used by this user: it cannot be created,
 * written or locked. Exit code 2, as for any setting that needs fixing.
 */
export class StateDirUnusableError extends AgentError {
  readonly code = 'PCA_STATE_DIR';
  override readonly exitCode = 2;
  constructor(
    readonly stateDir: string,
    readonly reason: string,
    fix: string,
  ) {
    super(`cannot use the state directory ${stateDir} (--state-dir): ${reason}; ${fix}`);
  }
}

/** A port the command was told to listen on is taken by another process. */
export class PortInUseError extends AgentError {
  readonly code = 'PCA_PORT_IN_USE';
  constructor(
    readonly setting: string,
    readonly host: string,
    readonly port: number,
  ) {
    super(
      `cannot listen on ${host}:${port} (${setting}): another process is listening there; stop it (\`ss -ltnp 'sport = :${port}'\` names it) or choose another ${setting}`,
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

/** A path failed one of the safety rules in src/edges/caches/safety.ts; nothing was touched. */
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

const ERRNO_REASONS: Record<string, string> = {
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  EROFS: 'the filesystem is read-only',
  ENOSPC: 'no space left on the device',
  ENOENT: 'no such file or directory',
  ENOTDIR: 'a part of the path is not a directory',
  EISDIR: 'it is a directory',
  EEXIST: 'it already exists',
  ELOOP: 'too many symbolic links',
  EMFILE: 'too many open files in this process',
  EADDRINUSE: 'the address is in use',
};

/** What went wrong in an errno code, in words ("permission denied"), or the code itself. */
export function errnoReason(code: string | undefined): string {
  return (code && ERRNO_REASONS[code]) ?? code ?? 'unknown error';
}

/**
 * A Node system error on a path (EACCES on mkdir, EROFS on open, ...), said as
 * what failed where, or undefined for anything else: such an error is the
 * host's, not a bug, so it is never reported as "unexpected".
 */
export function systemErrorMessage(err: unknown): string | undefined {
  const code = errnoCode(err);
  const { syscall, path: where } = (err ?? {}) as { syscall?: unknown; path?: unknown };
  if (!code || !/^E[A-Z]+$/.test(code) || typeof syscall !== 'string' || typeof where !== 'string') return undefined;
  return `cannot ${syscall} ${where}: ${errnoReason(code)} (${code}); check that path's owner, mode and filesystem, and the setting that names it`;
}

/** The errno-style code of a Node system error (`ENOENT`, `EACCES`, ...), if any. */
export function errnoCode(err: unknown): string | undefined {
  if (typeof err === 'object' && err !== null && 'code' in err) {
    const code = err.code;
    if (typeof code === 'string') return code;
  }
  return undefined;
}

export class ClaimTimeoutError extends AgentError {
  readonly code = 'PCA_CLAIM_TIMEOUT';
}

/** Deletion cannot start at all (no /proc). */
export class DeleteUnavailableError extends AgentError {
  readonly code = 'PCA_DELETE_UNAVAILABLE';
}

/** The trash directory cannot be used (not the agent's own 0700 directory, a symlink, another filesystem). */
export class TrashUnavailableError extends AgentError {
  readonly code = 'PCA_TRASH_UNAVAILABLE';
}

/** The child failed to run or to report. */
export class TrashWorkerError extends AgentError {
  readonly code = 'PCA_TRASH_WORKER';
}

/** The cache was gone (removed by someone else) when we came to purge it. */
export class CacheVanishedError extends AgentError {
  readonly code = 'PCA_CACHE_VANISHED';
}

/** The local API could not start for a reason of the machine (a refused permission, a full disk), not of a setting. */
export class ApiStartError extends AgentError {
  readonly code = 'PCA_API_START';
  constructor(
    readonly socketPath: string,
    reason: string,
    options?: { cause?: unknown },
  ) {
    super(
      `cannot start the local API at ${socketPath}: ${reason}. Check that the agent's user may create the socket there (its directory's owner and mode), or set --api-socket elsewhere`,
      options,
    );
  }
}

/** Another process answers on the API socket: most likely another agent with the same runtime directory. */
export class ApiSocketInUseError extends AgentError {
  readonly code = 'PCA_API_SOCKET_IN_USE';
}

/** The agent answered with an error (`code` and `message` from its body). */
export class ApiRequestError extends AgentError {
  readonly code = 'PCA_API_REQUEST';
  constructor(
    message: string,
    readonly status: number,
    readonly apiCode: string,
  ) {
    super(message);
  }
}

/** Why a place did not answer: no socket, nothing listening, or something else (permissions, ...). */
export interface Attempt {
  where: string;
  reason: string;
  /** True when nothing can be running there (no socket file, or a stale one). */
  absent: boolean;
}

/** No agent answered anywhere the client looked; `attempts` says where and why. */
export class NoAgentError extends AgentUnreachableError {
  constructor(readonly attempts: Attempt[]) {
    super(
      `no purge-cache-agent answered; looked at ${attempts.map((a) => `${a.where} (${a.reason})`).join(', ')}. ` +
        'Start one with `purge-cache-agent run`, or point --api-socket (or --api with --api-token-file) at it',
    );
  }
}

/** The `serve` data file could not be read, parsed or written. */
export class ServiceDataError extends AgentError {
  readonly code = 'PCA_SERVICE_DATA';
  constructor(
    message: string,
    readonly path: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/**
 * An HTTP error answer of the local API or of `serve`: a status and a JSON
 * `{code, message}` body. Request handlers throw it and the server writes it;
 * it never leaves the process, so `code` is the answer's own (the local API's
 * or Taskcluster's), not one of the PCA_ codes above.
 */
export class HttpAnswerError extends AgentError {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

/** `serve` could not accept a request's Hawk credentials or certificate; answered as 401 AuthenticationFailed. */
export class ServiceAuthError extends AgentError {
  readonly code = 'PCA_SERVICE_AUTH';
}
