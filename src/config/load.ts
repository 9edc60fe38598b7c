/**
 * Resolve the settings from flags, environment, config file and defaults —
 * in that order of precedence — using the table in settings.ts. Anything
 * unknown or malformed stops the start with a ConfigError (exit code 2) that
 * names the setting, where it came from, and what it accepts.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { ConfigError, errnoCode, errorMessage } from '../errors.js';
import { registerSecret } from '../secrets.js';
import { SETTINGS } from './settings.js';
import { DEFAULTS, type CommandName, type Settings, type SettingSpec } from './schema.js';
import { SCHEDULE_ACCEPTS, singleCache } from './parse.js';

/**
 * The flags every command accepts: --config, and one for each setting, named
 * as commander names them (camelCase of the long flag; see flagAttribute).
 * A command's own flags extend these.
 */
export interface SettingFlags {
  config?: string;
  logLevel?: string;
  [setting: string]: unknown;
}

export interface LoadInput {
  flags: SettingFlags;
  env: NodeJS.ProcessEnv;
  cwd: string;
  /** The command being run, for the settings whose default depends on it (once's --jitter). */
  command?: CommandName;
}

/** Commander's attribute name for a spec's flag: `--cache-root <dir>` → `cacheRoot`. */
export function flagAttribute(spec: SettingSpec): string | undefined {
  const long = spec.flag?.split(/[ ,]/).find((part) => part.startsWith('--'));
  return long?.slice(2).replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
}

function fail(spec: SettingSpec, source: string, accepts: string): never {
  throw new ConfigError(`invalid ${spec.key} (${source}): expected ${accepts}`, spec.key);
}

function parseOrFail(spec: SettingSpec, raw: unknown, source: string): unknown {
  const parsed = spec.parse(raw);
  if (!parsed.ok) fail(spec, source, parsed.accepts);
  return parsed.value;
}

export async function readConfigFile(file: string): Promise<Record<string, unknown>> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    const why = errnoCode(err) === 'ENOENT' ? 'it does not exist' : errorMessage(err);
    throw new ConfigError(`cannot read config file ${file} (--config / PURGE_CACHE_AGENT_CONFIG): ${why}`, 'config');
  }
  let doc: unknown;
  // Loaded only when there is a config file: most runs of `once` and `exec` take flags and environment.
  const { default: YAML } = await import('yaml');
  try {
    // YAML 1.2 is a superset of JSON, so one parser reads both formats.
    doc = YAML.parse(text);
  } catch (err) {
    throw new ConfigError(`config file ${file} is not valid YAML or JSON: ${yamlProblem(err)}`, 'config');
  }
  if (doc === null || doc === undefined) return {};
  if (typeof doc !== 'object' || Array.isArray(doc)) {
    throw new ConfigError(`config file ${file} must hold a map of settings (key: value)`, 'config');
  }
  return doc as Record<string, unknown>;
}

/**
 * What a YAML parse error says and where, without the excerpt of the file the
 * yaml library appends: that excerpt can be the line holding a credential,
 * which is not registered for scrubbing yet.
 */
function yamlProblem(err: unknown): string {
  const message = errorMessage(err);
  const excerpt = message.indexOf(':\n');
  const lineEnd = message.indexOf('\n');
  const end = excerpt >= 0 ? excerpt : lineEnd >= 0 ? lineEnd : message.length;
  return message.slice(0, end).trim();
}

/** The first of `names` set to a non-empty value in the environment, with that value. */
function fromEnvironment(names: readonly string[] | undefined, env: NodeJS.ProcessEnv): { name: string; raw: string } | undefined {
  for (const name of names ?? []) {
    const raw = env[name];
    if (raw !== undefined && raw !== '') return { name, raw };
  }
  return undefined;
}

const BY_KEY = new Map<string, SettingSpec>(SETTINGS.map((spec) => [spec.key, spec]));

export async function loadSettings(input: LoadInput): Promise<Settings> {
  const { flags, env, cwd } = input;
  const configFile = flags.config ?? env.PURGE_CACHE_AGENT_CONFIG;
  const file = configFile ? await readConfigFile(path.resolve(cwd, configFile)) : {};
  for (const key of Object.keys(file)) {
    if (!BY_KEY.has(key)) {
      const known = SETTINGS.map((s) => s.key).join(', ');
      throw new ConfigError(`unknown setting "${key}" in config file ${configFile}; known settings: ${known}`, key);
    }
  }

  const resolved: Record<string, unknown> = { ...DEFAULTS };
  // Where each setting came from, for messages about a value that only a later check refuses.
  const sources = new Map<string, string>();
  for (const spec of SETTINGS) {
    const attr = flagAttribute(spec);
    const flagValue = attr === undefined ? undefined : flags[attr];
    const fromEnv = fromEnvironment(spec.env, env);
    let source: string | undefined;
    if (flagValue !== undefined) {
      source = `flag ${spec.flag?.split(' ')[0] ?? spec.key}`;
      resolved[spec.key] = parseFlag(spec, flagValue, source);
    } else if (fromEnv !== undefined) {
      let raw = fromEnv.raw;
      // systemd's STATE_DIRECTORY lists every StateDirectory=, ':'-separated; ours is the first.
      const colon = raw.indexOf(':');
      if (fromEnv.name === 'STATE_DIRECTORY' && colon >= 0) raw = raw.slice(0, colon);
      source = `environment variable ${fromEnv.name}`;
      resolved[spec.key] = parseOrFail(spec, raw, source);
    } else if (spec.key in file) {
      source = `config file ${configFile}`;
      resolved[spec.key] = parseOrFail(spec, file[spec.key], source);
    } else if (input.command && spec.commandDefaults?.[input.command] !== undefined) {
      source = `default for ${input.command}`;
      resolved[spec.key] = parseOrFail(spec, spec.commandDefaults[input.command], source);
    }
    if (source !== undefined) sources.set(spec.key, source);
  }
  if (typeof resolved.schedule === 'string') await checkSchedule(resolved.schedule, sources.get('schedule'));
  const credentials = credentialsFromEnv(env);
  if (credentials) resolved.credentials = credentials;

  const settings = resolved as unknown as Settings;
  settings.cacheRoots = settings.cacheRoots.map((root) => path.resolve(cwd, root));
  settings.caches = settings.caches.map((c) => ({ name: c.name, path: path.resolve(cwd, c.path) }));
  settings.stateDir = path.resolve(cwd, settings.stateDir);
  if (settings.credentials) {
    registerSecret(settings.credentials.accessToken);
    registerSecret(settings.credentials.certificate);
  }
  return settings;
}

/**
 * node-cron (about 60 KB of code) is loaded only to check a schedule someone
 * set: the default is valid, and `once` and `exec` never schedule anything.
 */
async function checkSchedule(schedule: string, source: string | undefined): Promise<void> {
  if (source === undefined) return;
  const { default: cron } = await import('node-cron');
  if (!cron.validate(schedule)) throw new ConfigError(`invalid schedule (${source}): expected ${SCHEDULE_ACCEPTS}`, 'schedule');
}

function parseFlag(spec: SettingSpec, value: unknown, source: string): unknown {
  if (spec.key === 'caches') {
    // Repeated --cache NAME=PATH flags; each is parsed on its own.
    return (value as string[]).map((item) => parseOrFail({ ...spec, parse: singleCache }, item, source));
  }
  if (spec.repeatable) return (value as string[]).flatMap((item) => parseOrFail(spec, item, source) as string[]);
  return parseOrFail(spec, value, source);
}

/** Credentials from TASKCLUSTER_CLIENT_ID / TASKCLUSTER_ACCESS_TOKEN / TASKCLUSTER_CERTIFICATE. */
function credentialsFromEnv(env: NodeJS.ProcessEnv): Settings['credentials'] | undefined {
  const clientId = env.TASKCLUSTER_CLIENT_ID || undefined;
  const accessToken = env.TASKCLUSTER_ACCESS_TOKEN || undefined;
  const certificate = env.TASKCLUSTER_CERTIFICATE || undefined;
  if (!clientId && !accessToken && !certificate) return undefined;
  if (!clientId || !accessToken) {
    registerSecret(accessToken);
    const missing = !clientId ? 'TASKCLUSTER_CLIENT_ID' : 'TASKCLUSTER_ACCESS_TOKEN';
    throw new ConfigError(
      `${missing} is not set, but other Taskcluster credentials are; set both TASKCLUSTER_CLIENT_ID and TASKCLUSTER_ACCESS_TOKEN, or neither for anonymous access`,
      'credentials',
    );
  }
  return certificate ? { clientId, accessToken, certificate } : { clientId, accessToken };
}
