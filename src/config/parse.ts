/**
 * Value parsers shared by every source of settings. Flags and environment
 * variables arrive as strings; a config file may hold typed YAML values. Each
 * parser accepts both and returns the value or an error text saying what the
 * setting accepts — the caller names the setting and where it came from.
 */
import { parseDuration, DURATION_HELP } from '../core/duration.js';

export type ParseResult<T> = { ok: true; value: T } | { ok: false; accepts: string };

const ok = <T>(value: T): ParseResult<T> => ({ ok: true, value });
const bad = <T>(accepts: string): ParseResult<T> => ({ ok: false, accepts });

export function parseString(raw: unknown): ParseResult<string> {
  return typeof raw === 'string' && raw.length > 0 ? ok(raw) : bad('a non-empty string');
}

export function parseUrl(raw: unknown): ParseResult<string> {
  if (typeof raw !== 'string') return bad('an http:// or https:// URL');
  try {
    const url = new URL(raw);
    if (url.protocol !== 'http:' && url.protocol !== 'https:') return bad('an http:// or https:// URL');
    if (url.username || url.password) return bad('a URL without user:password (use credentials instead)');
    return ok(raw.replace(/\/+$/, ''));
  } catch {
    return bad('an http:// or https:// URL');
  }
}

export function parseDurationSetting(raw: unknown): ParseResult<number> {
  if (raw === 0) return ok(0);
  if (typeof raw !== 'string') return bad(DURATION_HELP);
  const ms = parseDuration(raw);
  return ms === undefined ? bad(DURATION_HELP) : ok(ms);
}

export function parseBoolean(raw: unknown): ParseResult<boolean> {
  if (typeof raw === 'boolean') return ok(raw);
  if (typeof raw === 'string') {
    const lower = raw.trim().toLowerCase();
    if (['1', 'true', 'yes', 'on'].includes(lower)) return ok(true);
    if (['0', 'false', 'no', 'off', ''].includes(lower)) return ok(false);
  }
  return bad('true or false (also 1/0, yes/no, on/off)');
}

export function parseEnum<T extends string>(values: readonly T[]) {
  return (raw: unknown): ParseResult<T> =>
    typeof raw === 'string' && (values as readonly string[]).includes(raw) ? ok(raw as T) : bad(`one of ${values.join(', ')}`);
}

export function parseNonNegativeInt(raw: unknown): ParseResult<number> {
  const n = typeof raw === 'number' ? raw : typeof raw === 'string' && /^\d+$/.test(raw.trim()) ? Number(raw) : NaN;
  return Number.isSafeInteger(n) && n >= 0 ? ok(n) : bad('a whole number, 0 or more');
}

/** A list: a YAML array, or a string split on `separator`. Empty items are dropped. */
export function parseList(separator: string, item: (raw: unknown) => ParseResult<string> = parseString) {
  return (raw: unknown): ParseResult<string[]> => {
    const items = Array.isArray(raw) ? raw : typeof raw === 'string' ? raw.split(separator) : null;
    if (!items) return bad(`a list (or a '${separator}'-separated string)`);
    const out: string[] = [];
    for (const entry of items) {
      if (entry === '') continue;
      const parsed = item(entry);
      if (!parsed.ok) return bad(`a list of ${parsed.accepts}`);
      out.push(parsed.value);
    }
    return ok(out);
  };
}

const BYTE_UNITS: Record<string, number> = {
  b: 1,
  k: 1024,
  kb: 1000,
  kib: 1024,
  m: 1024 ** 2,
  mb: 1e6,
  mib: 1024 ** 2,
  g: 1024 ** 3,
  gb: 1e9,
  gib: 1024 ** 3,
  t: 1024 ** 4,
  tb: 1e12,
  tib: 1024 ** 4,
};
export const SIZE_UNITS_HELP = 'a size with a unit: B; K, M, G, T (or KiB, MiB, GiB, TiB: 1024-based); KB, MB, GB, TB (1000-based) — such as 500M, 10G or 2TB';

/**
 * Bytes: `10G`, `10GiB`, `500MB`, `4096B` (K/M/G/T are binary; KB/MB/GB/TB
 * decimal). A bare number other than 0 is refused: `--max-size 200` meant as
 * gigabytes would otherwise be read as 200 bytes and evict every cache.
 */
export function parseBytes(raw: unknown): ParseResult<number> {
  if (raw === 0 || raw === '0') return ok(0);
  if (typeof raw === 'number') return bad(`${SIZE_UNITS_HELP}; a bare number such as ${raw} has no unit`);
  if (typeof raw !== 'string') return bad(SIZE_UNITS_HELP);
  const [, amount, unitName] = /^(\d+(?:\.\d+)?)\s*([a-z]*)$/i.exec(raw.trim()) ?? [];
  if (unitName === '') return bad(`${SIZE_UNITS_HELP}; a bare number such as ${raw.trim()} has no unit`);
  const unit = unitName === undefined ? undefined : BYTE_UNITS[unitName.toLowerCase()];
  if (amount === undefined || unit === undefined) return bad(SIZE_UNITS_HELP);
  return ok(Math.floor(Number(amount) * unit));
}

/** Bytes or a percentage of the filesystem: `10G` or `15%`. */
export type SizeOrPercent = { bytes: number } | { percent: number };
export function parseSizeOrPercent(raw: unknown): ParseResult<SizeOrPercent> {
  if (typeof raw === 'string' && /^\d+(\.\d+)?%$/.test(raw.trim())) {
    const percent = Number(raw.trim().slice(0, -1));
    return percent <= 100 ? ok({ percent }) : bad('a percentage from 0% to 100%, or a size such as 10G');
  }
  const bytes = parseBytes(raw);
  return bytes.ok ? ok({ bytes: bytes.value }) : bad(`a percentage such as 15%, or ${bytes.accepts}`);
}

export const SCHEDULE_ACCEPTS = 'a cron expression of 5 fields, or 6 with seconds first (for example "*/5 * * * *")';

/** The shape of a schedule; loadSettings has node-cron check the fields themselves. */
export function schedule(raw: unknown): ParseResult<string> {
  if (typeof raw !== 'string') return { ok: false, accepts: SCHEDULE_ACCEPTS };
  const fields = raw.trim().split(/\s+/).length;
  if (fields !== 5 && fields !== 6) return { ok: false, accepts: SCHEDULE_ACCEPTS };
  return { ok: true, value: raw.trim() };
}

/** `host:port` or `[v6]:port`. */
export function listenAddress(raw: unknown): ParseResult<{ host: string; port: number }> {
  const accepts = 'HOST:PORT (for example 127.0.0.1:9464 or [::1]:9464)';
  if (typeof raw !== 'string') return { ok: false, accepts };
  const [, v6Host, plainHost, portText] = /^(?:\[([^\]]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(raw.trim()) ?? [];
  const host = v6Host ?? plainHost;
  const port = Number(portText);
  if (host === undefined || portText === undefined || port > 65535) return { ok: false, accepts };
  return { ok: true, value: { host, port } };
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
export function singleCacheMap(raw: unknown): ParseResult<{ name: string; path: string }[]> {
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

export function credentials(raw: unknown): ParseResult<{ clientId: string; accessToken: string; certificate?: string }> {
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
