/**
 * Durations as operators write them: `0`, or a number with one of ms, s, m, h, d
 * (`500ms`, `15s`, `5m`, `24h`, `1.5h`). Returned in milliseconds.
 */
const UNIT_MS = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;

function isUnit(text: string): text is keyof typeof UNIT_MS {
  return Object.hasOwn(UNIT_MS, text);
}
const DURATION = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)$/;

export function parseDuration(text: string): number | undefined {
  const trimmed = text.trim();
  if (trimmed === '0') return 0;
  const [, amount, unit] = DURATION.exec(trimmed) ?? [];
  if (amount === undefined || unit === undefined || !isUnit(unit)) return undefined;
  const ms = Number(amount) * UNIT_MS[unit];
  return Number.isFinite(ms) ? Math.round(ms) : undefined;
}

export const DURATION_HELP = '0 or a number with ms, s, m, h or d (for example 500ms, 15s, 5m, 24h)';

/** A compact human form for logs and messages: 300000 → "5m". */
export function formatDuration(ms: number): string {
  if (ms === 0) return '0';
  for (const unit of ['d', 'h', 'm', 's'] as const) {
    const size = UNIT_MS[unit];
    if (ms % size === 0) return `${ms / size}${unit}`;
  }
  return `${ms}ms`;
}
