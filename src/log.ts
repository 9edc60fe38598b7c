import pino, { type Logger, type LevelWithSilent } from 'pino';
import { createRequire } from 'node:module';
import { scrub } from './secrets.js';

export type { Logger };

/** Field paths that may hold credentials; pino replaces them wherever they appear. */
const REDACT_PATHS = [
  'accessToken',
  'certificate',
  'token',
  'apiToken',
  'authorization',
  'credentials',
  '*.accessToken',
  '*.certificate',
  '*.token',
  '*.apiToken',
  '*.authorization',
  '*.credentials',
  'headers.authorization',
  'req.headers.authorization',
];

/** The levels an operator may choose (--log-level), pino's names. */
export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const satisfies readonly LevelWithSilent[];
export type LogLevel = (typeof LOG_LEVELS)[number];

export interface LogOptions {
  level?: LevelWithSilent;
  /** Pretty, human-readable lines; defaults to whether stderr is a terminal. */
  pretty?: boolean;
}

/**
 * Logs are pino JSON lines on stderr: stdout carries command output only. A
 * terminal gets pino-pretty's readable form. Writes are synchronous so that a
 * line logged just before exit (or before a crash) is never lost.
 */
export function createLogger(options: LogOptions = {}): Logger {
  const usePretty = options.pretty ?? process.stderr.isTTY;
  const destination = usePretty
    ? loadPretty()({ destination: 2, sync: true, colorize: true, translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname' })
    : pino.destination({ dest: 2, sync: true });
  return pino(loggerOptions(options.level ?? 'info'), destination);
}

/**
 * The shape of every line: the level as a name (`"level":"info"`) and the
 * time in ISO 8601, so journald, Loki and Elasticsearch read the lines as they
 * are, without a mapping from pino's numbers or epoch milliseconds.
 */
export function loggerOptions(level: LevelWithSilent): pino.LoggerOptions {
  return {
    level,
    base: { pid: process.pid },
    formatters: { level: (label) => ({ level: label }) },
    timestamp: pino.stdTimeFunctions.isoTime,
    redact: { paths: REDACT_PATHS, censor: '[REDACTED]' },
    hooks: { streamWrite: scrub },
  };
}

/** pino-pretty is for people at a terminal; a daemon writing to the journal never loads it. */
function loadPretty(): typeof import('pino-pretty') {
  return createRequire(import.meta.url)('pino-pretty') as typeof import('pino-pretty');
}

/** A logger that drops everything, for library use and tests that don't read logs. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
