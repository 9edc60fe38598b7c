/**
 * Every setting of the agent, declared once. The CLI builds its flags from
 * this table, the loader reads environment variables and the config file by
 * it, and the README's settings table is checked against it by a test — so a
 * setting cannot exist in one place and be missing from another.
 *
 * Precedence, highest first: flag, environment, config file, default.
 */
import { LOG_LEVELS } from '../log.js';
import * as p from './parse.js';
import {
  COMMANDS,
  DELETE_PRIORITIES,
  IN_USE_CHECKS,
  ON_GAP,
  AGENT,
  API_CLIENTS,
  CACHES,
  CYCLE,
  DAEMON,
  STATE,
  type CommandName,
  type SettingSpec,
} from './schema.js';
import { SERVICE_SETTINGS } from './service-settings.js';

/** The settings a command uses, in the table's order. */
export function settingsFor(command: CommandName): SettingSpec[] {
  return SETTINGS.filter((spec) => spec.commands.includes(command));
}

/** The default a user sees for a setting under a command. */
export function defaultTextFor(spec: SettingSpec, command?: CommandName): string | undefined {
  return (command && spec.commandDefaults?.[command]) ?? spec.defaultText;
}

export const SETTINGS: SettingSpec[] = [
  ...SERVICE_SETTINGS,
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
    parse: p.singleCacheMap,
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
    parse: p.schedule,
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
    parse: p.listenAddress,
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
