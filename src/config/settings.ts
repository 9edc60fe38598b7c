/**
 * Every setting of the agent, declared once. The CLI builds its flags from
 * this table, the loader reads environment variables and the config file by
 * it, and the README's settings table is checked against it by a test — so a
 * setting cannot exist in one place and be missing from another.
 *
 * Precedence, highest first: flag, environment, config file, default.
 */
import * as p from './parse.js';
import type { ParseResult, SizeOrPercent } from './parse.js';

export const ON_GAP = ['warn', 'purge-all'] as const;
export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export const IN_USE_CHECKS = ['locks', 'processes', 'leases'] as const;
export const DELETE_PRIORITIES = ['idle', 'normal'] as const;

/** Every command that reads settings; `lease acquire` and `lease release` are subcommands of `lease`. */
export const COMMANDS = [
  'once',
  'run',
  'doctor',
  'caches',
  'request',
  'requests',
  'ping',
  'status',
  'sync',
  'purge',
  'lease acquire',
  'lease release',
  'exec',
  'serve',
] as const;
export type CommandName = (typeof COMMANDS)[number];

// Which commands use a setting: a command's --help lists only these (it still
// accepts the others, so one set of flags serves every command).
const AGENT: CommandName[] = ['once', 'run', 'doctor'];
const API_CLIENTS: CommandName[] = ['status', 'sync', 'purge', 'lease acquire', 'lease release', 'exec'];
const SERVICE: CommandName[] = [...AGENT, 'request', 'requests', 'ping', 'exec'];
const POOL: CommandName[] = [...AGENT, 'request', 'requests', 'exec'];
const CACHES: CommandName[] = [...AGENT, 'caches', 'exec'];
const STATE: CommandName[] = [...AGENT, 'caches', ...API_CLIENTS];
const CYCLE: CommandName[] = [...AGENT, 'exec'];
const DAEMON: CommandName[] = ['run', 'doctor'];

export interface SettingSpec {
  /** The key in the config file, and in the resolved settings. */
  key: string;
  /** Commander flag syntax, if the setting has a flag. */
  flag?: string;
  /** Environment variables, first one set wins. */
  env?: string[];
  /** True when the flag may be given many times and every value counts. */
  repeatable?: boolean;
  /** Never printed: not in /v1/status, not in errors (values are scrubbed). */
  secret?: boolean;
  describe: string;
  /** The default, as shown to users (the parsed default is applied by the loader). */
  defaultText?: string;
  /** The commands that use this setting. */
  commands: readonly CommandName[];
  /** A command whose default differs from the others', as it would be written in a flag. */
  commandDefaults?: Partial<Record<CommandName, string>>;
  parse(raw: unknown): ParseResult<unknown>;
}

/** The settings a command uses, in the table's order. */
export function settingsFor(command: CommandName): SettingSpec[] {
  return SETTINGS.filter((spec) => spec.commands.includes(command));
}

/** The default a user sees for a setting under a command. */
export function defaultTextFor(spec: SettingSpec, command?: CommandName): string | undefined {
  return (command && spec.commandDefaults?.[command]) ?? spec.defaultText;
}

export const SCHEDULE_ACCEPTS = 'a cron expression of 5 fields, or 6 with seconds first (for example "*/5 * * * *")';

/** The shape of a schedule; loadSettings has node-cron check the fields themselves. */
function schedule(raw: unknown): ParseResult<string> {
  if (typeof raw !== 'string') return { ok: false, accepts: SCHEDULE_ACCEPTS };
  const fields = raw.trim().split(/\s+/).length;
  if (fields !== 5 && fields !== 6) return { ok: false, accepts: SCHEDULE_ACCEPTS };
  return { ok: true, value: raw.trim() };
}

/** `host:port` or `[v6]:port`. */
function listenAddress(raw: unknown): ParseResult<{ host: string; port: number }> {
  const accepts = 'HOST:PORT (for example 127.0.0.1:9464 or [::1]:9464)';
  if (typeof raw !== 'string') return { ok: false, accepts };
  const match = /^(?:\[([^\]]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(raw.trim());
  const port = match ? Number(match[3]) : NaN;
  if (!match || port > 65535) return { ok: false, accepts };
  return { ok: true, value: { host: (match[1] ?? match[2])!, port } };
}

/** `--cache NAME=PATH`: split at the first '='; names containing '=' go in the config file. */
export function singleCache(raw: unknown): ParseResult<{ name: string; path: string }> {
  const accepts = 'NAME=PATH (a name containing "=" must be set in the config file)';
  if (typeof raw !== 'string') return { ok: false, accepts };
  const at = raw.indexOf('=');
  if (at <= 0 || at === raw.length - 1) return { ok: false, accepts };
  return { ok: true, value: { name: raw.slice(0, at), path: raw.slice(at + 1) } };
}

/** Single caches from a config file or PURGE_CACHE_AGENT_CACHES: a map `{name: path}` (JSON in the environment). */
function singleCacheMap(raw: unknown): ParseResult<{ name: string; path: string }[]> {
  const accepts = 'a map of cache name to directory path (JSON {"name":"/path"} in the environment)';
  let value = raw;
  if (typeof raw === 'string') {
    try {
      value = JSON.parse(raw);
    } catch {
      return { ok: false, accepts };
    }
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return { ok: false, accepts };
  const out: { name: string; path: string }[] = [];
  for (const [name, path] of Object.entries(value)) {
    if (typeof path !== 'string' || path === '' || name === '') return { ok: false, accepts };
    out.push({ name, path });
  }
  return { ok: true, value: out };
}

function credentials(raw: unknown): ParseResult<{ clientId: string; accessToken: string; certificate?: string }> {
  const accepts = 'a map with clientId, accessToken and optionally certificate';
  if (typeof raw !== 'object' || raw === null) return { ok: false, accepts };
  const { clientId, accessToken, certificate, ...rest } = raw as Record<string, unknown>;
  if (Object.keys(rest).length > 0) return { ok: false, accepts: `${accepts} (unknown key ${Object.keys(rest)[0]})` };
  if (typeof clientId !== 'string' || typeof accessToken !== 'string' || !clientId || !accessToken) return { ok: false, accepts };
  if (certificate !== undefined && typeof certificate !== 'string' && (typeof certificate !== 'object' || certificate === null)) {
    return { ok: false, accepts };
  }
  const cert = certificate === undefined ? undefined : typeof certificate === 'string' ? certificate : JSON.stringify(certificate);
  return { ok: true, value: cert === undefined ? { clientId, accessToken } : { clientId, accessToken, certificate: cert } };
}

export const SETTINGS: SettingSpec[] = [
  {
    key: 'rootUrl',
    flag: '--root-url <url>',
    env: ['TASKCLUSTER_ROOT_URL'],
    describe: 'Taskcluster root URL of the purge-cache service',
    defaultText: 'required unless a proxy URL is set',
    commands: SERVICE,
    parse: p.parseUrl,
  },
  {
    key: 'proxyUrl',
    flag: '--proxy-url <url>',
    env: ['TASKCLUSTER_PROXY_URL'],
    describe: 'taskcluster-proxy URL; requests go through it unsigned',
    defaultText: 'none',
    commands: SERVICE,
    parse: p.parseUrl,
  },
  {
    key: 'workerPoolId',
    flag: '--worker-pool-id <id>',
    env: ['TASKCLUSTER_WORKER_POOL_ID'],
    describe: 'worker pool, <provisionerId>/<workerType>',
    defaultText: 'required',
    commands: POOL,
    parse: p.parseString,
  },
  {
    key: 'provisionerId',
    flag: '--provisioner-id <id>',
    env: ['TASKCLUSTER_PROVISIONER_ID'],
    describe: 'provisioner id (with --worker-type, instead of --worker-pool-id)',
    commands: POOL,
    parse: p.parseString,
  },
  {
    key: 'workerType',
    flag: '--worker-type <type>',
    env: ['TASKCLUSTER_WORKER_TYPE'],
    describe: 'worker type (with --provisioner-id)',
    commands: POOL,
    parse: p.parseString,
  },
  {
    key: 'workerId',
    flag: '--worker-id <id>',
    env: ['TASKCLUSTER_WORKER_ID'],
    describe: "this worker's id, shown in the purge_cache_agent_info metric (label worker_id) so a fleet's dashboards can tell workers apart",
    defaultText: 'none',
    commands: DAEMON,
    parse: p.parseString,
  },
  {
    key: 'credentials',
    env: [],
    secret: true,
    describe:
      'Taskcluster credentials: config file `credentials: {clientId, accessToken, certificate}`, or TASKCLUSTER_CLIENT_ID, TASKCLUSTER_ACCESS_TOKEN, TASKCLUSTER_CERTIFICATE',
    defaultText: 'anonymous',
    commands: SERVICE,
    parse: credentials,
  },
  {
    key: 'cacheRoots',
    flag: '--cache-root <dir>',
    env: ['PURGE_CACHE_AGENT_CACHE_ROOTS'],
    repeatable: true,
    describe: "directory whose every subdirectory is a cache (repeatable; ':'-separated in the environment)",
    defaultText: 'none',
    commands: CACHES,
    parse: p.parseList(':'),
  },
  {
    key: 'caches',
    flag: '--cache <name=path>',
    env: ['PURGE_CACHE_AGENT_CACHES'],
    repeatable: true,
    describe: 'a single cache directory anywhere, NAME=PATH (repeatable; JSON {"name":"/path"} in the environment)',
    defaultText: 'none',
    commands: CACHES,
    parse: singleCacheMap,
  },
  {
    key: 'stateDir',
    flag: '--state-dir <dir>',
    env: ['PURGE_CACHE_AGENT_STATE_DIR', 'STATE_DIRECTORY'],
    describe: 'where the agent keeps its state and lock',
    defaultText: '/var/lib/purge-cache-agent',
    commands: STATE,
    parse: p.parseString,
  },
  {
    key: 'skewMargin',
    flag: '--skew-margin <duration>',
    env: ['PURGE_CACHE_AGENT_SKEW_MARGIN'],
    describe: "margin for the worker's clock running behind the service's",
    defaultText: '5m',
    commands: CYCLE,
    parse: p.parseDurationSetting,
  },
  {
    key: 'schedule',
    flag: '--schedule <cron>',
    env: ['PURGE_CACHE_AGENT_SCHEDULE'],
    describe: 'when the daemon syncs (cron, 5 fields or 6 with seconds)',
    defaultText: '* * * * * (every minute)',
    commands: DAEMON,
    parse: schedule,
  },
  {
    key: 'jitter',
    flag: '--jitter <duration>',
    env: ['PURGE_CACHE_AGENT_JITTER'],
    describe: 'random delay before each scheduled cycle (and before `once`), up to this: a fleet on one schedule or cron line spreads its queries',
    defaultText: '15s (once: 0)',
    commands: [...DAEMON, 'once'],
    commandDefaults: { once: '0' },
    parse: p.parseDurationSetting,
  },
  {
    key: 'maxGap',
    flag: '--max-gap <duration>',
    env: ['PURGE_CACHE_AGENT_MAX_GAP'],
    describe: 'warn when the last successful query is older than this (requests may have expired unseen)',
    defaultText: '24h',
    commands: CYCLE,
    parse: p.parseDurationSetting,
  },
  {
    key: 'onGap',
    flag: '--on-gap <action>',
    env: ['PURGE_CACHE_AGENT_ON_GAP'],
    describe: 'what to do after such a gap: warn, or purge-all caches once',
    defaultText: 'warn',
    commands: CYCLE,
    parse: p.parseEnum(ON_GAP),
  },
  {
    key: 'dryRun',
    flag: '--dry-run',
    env: ['PURGE_CACHE_AGENT_DRY_RUN'],
    describe: 'report what would be purged; change nothing (no cache, trash or state)',
    defaultText: 'off',
    commands: [...AGENT, 'purge'],
    parse: p.parseBoolean,
  },
  {
    key: 'logLevel',
    flag: '--log-level <level>',
    env: ['LOG_LEVEL'],
    describe: `log level: ${LOG_LEVELS.join(', ')}`,
    defaultText: 'info',
    commands: COMMANDS,
    parse: p.parseEnum(LOG_LEVELS),
  },
  {
    key: 'heartbeat',
    flag: '--heartbeat <duration>',
    env: ['PURGE_CACHE_AGENT_HEARTBEAT'],
    describe: 'the daemon logs a line saying it is alive (cycles run, last success) this often when its cycles had nothing to log (0 = never)',
    defaultText: '10m',
    commands: DAEMON,
    parse: p.parseDurationSetting,
  },
  {
    key: 'recheck',
    flag: '--recheck <duration>',
    env: ['PURGE_CACHE_AGENT_RECHECK'],
    describe: 'how often the daemon retries purges deferred because a cache was in use',
    defaultText: '5s',
    commands: DAEMON,
    parse: p.parseDurationSetting,
  },
  {
    key: 'inUseChecks',
    flag: '--in-use-checks <list>',
    env: ['PURGE_CACHE_AGENT_IN_USE_CHECKS'],
    describe: `which signs of use defer a purge, comma-separated: ${IN_USE_CHECKS.join(', ')}`,
    defaultText: 'locks,processes,leases',
    commands: CYCLE,
    parse: p.parseList(',', p.parseEnum(IN_USE_CHECKS)),
  },
  {
    key: 'inUseScanBudget',
    flag: '--in-use-scan-budget <entries>',
    env: ['PURGE_CACHE_AGENT_IN_USE_SCAN_BUDGET'],
    describe:
      'entries of /proc (processes, descriptors, lines of maps, locks and mountinfo) one in-use check may read; caches it could not judge within it are deferred, not purged',
    defaultText: '250000',
    commands: CYCLE,
    parse: p.parseNonNegativeInt,
  },
  {
    key: 'deleteRate',
    flag: '--delete-rate <files/s>',
    env: ['PURGE_CACHE_AGENT_DELETE_RATE'],
    describe: 'limit trash deletion to this many files per second (0 = unlimited)',
    defaultText: '0',
    commands: AGENT,
    parse: p.parseNonNegativeInt,
  },
  {
    key: 'deletePriority',
    flag: '--delete-priority <priority>',
    env: ['PURGE_CACHE_AGENT_DELETE_PRIORITY'],
    describe: 'CPU and I/O priority of trash deletion: idle (nice 19, idle I/O class) or normal',
    defaultText: 'idle',
    commands: AGENT,
    parse: p.parseEnum(DELETE_PRIORITIES),
  },
  {
    key: 'minFree',
    flag: '--min-free <size|percent>',
    env: ['PURGE_CACHE_AGENT_MIN_FREE'],
    describe:
      'evict idle caches, least recently used first, when free space on a filesystem holding a cache root falls below this (bytes such as 20G, or a percentage such as 10%)',
    defaultText: 'off',
    commands: AGENT,
    parse: p.parseSizeOrPercent,
  },
  {
    key: 'maxSize',
    flag: '--max-size <size>',
    env: ['PURGE_CACHE_AGENT_MAX_SIZE'],
    describe: "evict idle caches, least recently used first, when a cache root's caches total more than this (such as 200G)",
    defaultText: 'off',
    commands: AGENT,
    parse: p.parseBytes,
  },
  {
    key: 'maxUnused',
    flag: '--max-unused <duration>',
    env: ['PURGE_CACHE_AGENT_MAX_UNUSED'],
    describe: 'evict idle caches unused for longer than this (such as 14d)',
    defaultText: 'off',
    commands: AGENT,
    parse: p.parseDurationSetting,
  },
  {
    key: 'apiSocket',
    flag: '--api-socket <path>',
    env: ['PURGE_CACHE_AGENT_API_SOCKET'],
    describe: "the local API's unix socket: `run` listens on it (mode 0660); status, sync, purge and lease talk to it",
    defaultText: '$RUNTIME_DIRECTORY/api.sock when systemd sets RUNTIME_DIRECTORY, else <state dir>/api.sock',
    commands: [...DAEMON, ...API_CLIENTS],
    parse: p.parseString,
  },
  {
    key: 'listen',
    flag: '--listen <host:port>',
    env: ['PURGE_CACHE_AGENT_LISTEN'],
    describe:
      'also serve the local API on TCP, for sidecars and probes; its /v1 routes then need the API token (refused on a non-loopback address without one)',
    defaultText: 'off',
    commands: DAEMON,
    parse: listenAddress,
  },
  {
    key: 'apiTokenFile',
    flag: '--api-token-file <file>',
    env: ['PURGE_CACHE_AGENT_API_TOKEN_FILE'],
    describe: 'file holding the bearer token for the local API over TCP: `run` asks TCP clients for it, and clients (with --api) send it',
    defaultText: 'none',
    commands: [...DAEMON, ...API_CLIENTS],
    parse: p.parseString,
  },
  {
    key: 'apiToken',
    env: ['PURGE_CACHE_AGENT_API_TOKEN'],
    secret: true,
    describe: 'the bearer token itself, instead of --api-token-file (environment or config file only: flags show in ps)',
    defaultText: 'none',
    commands: [...DAEMON, ...API_CLIENTS],
    parse: p.parseString,
  },
  {
    key: 'api',
    flag: '--api <url>',
    env: ['PURGE_CACHE_AGENT_API'],
    describe: "for status, sync, purge and lease: reach the agent's local API over TCP at this URL (http://HOST:PORT) instead of its socket",
    defaultText: 'the unix socket',
    commands: API_CLIENTS,
    parse: p.parseUrl,
  },
];

/** The resolved settings, with defaults applied. */
export interface Settings {
  rootUrl?: string;
  proxyUrl?: string;
  workerPoolId?: string;
  provisionerId?: string;
  workerType?: string;
  workerId?: string;
  credentials?: { clientId: string; accessToken: string; certificate?: string };
  cacheRoots: string[];
  caches: { name: string; path: string }[];
  stateDir: string;
  skewMargin: number;
  schedule: string;
  jitter: number;
  maxGap: number;
  onGap: (typeof ON_GAP)[number];
  dryRun: boolean;
  logLevel: (typeof LOG_LEVELS)[number];
  heartbeat: number;
  recheck: number;
  inUseChecks: (typeof IN_USE_CHECKS)[number][];
  inUseScanBudget: number;
  deleteRate: number;
  deletePriority: (typeof DELETE_PRIORITIES)[number];
  /** Eviction limits (src/core/eviction-plan.ts); absent = off. */
  minFree?: SizeOrPercent;
  maxSize?: number;
  maxUnused?: number;
  /** The local API (src/api/): where it listens, and how TCP clients authenticate. */
  apiSocket?: string;
  listen?: { host: string; port: number };
  apiTokenFile?: string;
  apiToken?: string;
  /** Clients only: the agent's API over TCP. */
  api?: string;
}

export const DEFAULTS: Omit<Settings, 'rootUrl' | 'proxyUrl' | 'workerPoolId' | 'provisionerId' | 'workerType' | 'credentials'> = {
  cacheRoots: [],
  caches: [],
  stateDir: '/var/lib/purge-cache-agent',
  skewMargin: 5 * 60_000,
  schedule: '* * * * *',
  jitter: 15_000,
  maxGap: 24 * 3_600_000,
  onGap: 'warn',
  dryRun: false,
  logLevel: 'info',
  heartbeat: 10 * 60_000,
  recheck: 5_000,
  inUseChecks: ['locks', 'processes', 'leases'],
  inUseScanBudget: 250_000,
  deleteRate: 0,
  deletePriority: 'idle',
};

export type { SizeOrPercent };
