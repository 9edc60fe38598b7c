/**
 * What a setting is (its spec in the table, the commands that read it) and
 * what the loader resolves them to (Settings, with their defaults).
 */
import type { LogLevel } from '../log.js';
import type { ParseResult, SizeOrPercent } from './parse.js';

export const ON_GAP = ['warn', 'purge-all'] as const;
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
export const AGENT: CommandName[] = ['once', 'run', 'doctor'];
export const API_CLIENTS: CommandName[] = ['status', 'sync', 'purge', 'lease acquire', 'lease release', 'exec'];
export const SERVICE: CommandName[] = [...AGENT, 'request', 'requests', 'ping', 'exec'];
export const POOL: CommandName[] = [...AGENT, 'request', 'requests', 'exec'];
export const CACHES: CommandName[] = [...AGENT, 'caches', 'exec'];
export const STATE: CommandName[] = [...AGENT, 'caches', ...API_CLIENTS];
export const CYCLE: CommandName[] = [...AGENT, 'exec'];
export const DAEMON: CommandName[] = ['run', 'doctor'];

export interface SettingSpec {
  /** The key in the config file, and in the resolved settings. */
  key: keyof Settings;
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
  logLevel: LogLevel;
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
