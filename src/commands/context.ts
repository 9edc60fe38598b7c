/** What every command starts from: its resolved settings and a logger. */
import { loadSettings, type CommandName, type SettingFlags, type Settings } from '../config/index.js';

export type { SettingFlags };
import { createLogger, type Logger } from '../log.js';

export interface CommandContext {
  settings: Settings;
  logger: Logger;
  /** Where command output goes (stdout). */
  out: (text: string) => void;
}

export async function commandContext(flags: SettingFlags, command?: CommandName): Promise<CommandContext> {
  // A logger exists before the settings do, so a configuration error is logged too.
  const early = createLogger({ level: pickLevel(flags.logLevel ?? process.env.LOG_LEVEL) });
  const settings = await loadSettings({ flags, env: process.env, cwd: process.cwd(), ...(command ? { command } : {}) }).catch((err: unknown) => {
    throw typeof err === 'object' && err !== null ? Object.assign(err, { logger: early }) : err;
  });
  const logger = settings.logLevel === early.level ? early : createLogger({ level: settings.logLevel });
  return { settings, logger, out: (text) => process.stdout.write(text.endsWith('\n') ? text : `${text}\n`) };
}

function pickLevel(raw: unknown): 'info' | 'fatal' | 'error' | 'warn' | 'debug' | 'trace' | 'silent' {
  const levels = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
  return (levels as readonly unknown[]).includes(raw) ? (raw as (typeof levels)[number]) : 'info';
}

export function printJson(ctx: CommandContext, value: unknown): void {
  ctx.out(JSON.stringify(value, null, 2));
}
