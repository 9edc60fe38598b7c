/**
 * When a cron schedule runs next, with plain Date arithmetic in local time.
 *
 * node-cron works out every next run through Intl.DateTimeFormat, and the
 * ICU locale and time-zone data that pulls in (~5 MB) stays resident for the
 * life of a daemon that otherwise idles between cycles. This covers the
 * expressions people write — numbers, names, ranges, steps, lists, `*` and
 * `?` — with node-cron's meaning (day of month and day of week must both
 * match; 7 is Sunday too). It returns null for the rest (L, W, #, @daily and
 * other nicknames), which the daemon leaves to node-cron.
 */

/** One field: its range, and the names it accepts (index + min is the value). */
interface Field {
  min: number;
  max: number;
  names?: readonly string[];
}

const MONTHS = ['jan', 'feb', 'mar', 'apr', 'may', 'jun', 'jul', 'aug', 'sep', 'oct', 'nov', 'dec'];
const WEEKDAYS = ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'];

// Second, minute, hour, day of month, month, day of week (0-7, both 0 and 7 being Sunday).
const FIELDS: readonly Field[] = [
  { min: 0, max: 59 },
  { min: 0, max: 59 },
  { min: 0, max: 23 },
  { min: 1, max: 31 },
  { min: 1, max: 12, names: MONTHS },
  { min: 0, max: 7, names: WEEKDAYS },
];

export interface CronSchedule {
  /** The first run strictly after `afterMs` (ms since the epoch), at a whole second. */
  next(afterMs: number): number;
}

/** A value of a field: a number in range, or one of its names (case-insensitive). */
function value(text: string, field: Field): number | null {
  if (/^\d+$/.test(text)) {
    const n = Number(text);
    return n >= field.min && n <= field.max ? n : null;
  }
  const index = field.names?.indexOf(text.toLowerCase()) ?? -1;
  return index < 0 ? null : index + field.min;
}

/** The values a field's text allows, or null when it uses syntax this module leaves to node-cron. */
function parseField(text: string, field: Field): Set<number> | null {
  const allowed = new Set<number>();
  for (const item of text.split(',')) {
    const [range, stepText, extra] = item.split('/');
    if (range === undefined || extra !== undefined) return null;
    const step = stepText === undefined ? 1 : /^\d+$/.test(stepText) ? Number(stepText) : 0;
    if (step < 1) return null;
    let from: number | null;
    let to: number | null;
    if (range === '*' || range === '?') {
      from = field.min;
      to = field.max;
    } else {
      const [first, last, ...more] = range.split('-');
      // A step applies to `*` or a range only, as node-cron has it (it refuses `5/15`).
      if (first === undefined || more.length > 0 || (last === undefined && stepText !== undefined)) return null;
      from = value(first, field);
      to = last === undefined ? from : value(last, field);
    }
    if (from === null || to === null || from > to) return null;
    for (let v = from; v <= to; v += step) allowed.add(v);
  }
  return allowed;
}

/** Parse a 5-field (minute first) or 6-field (second first) expression; null when it is not one this module handles. */
export function parseCron(expression: string): CronSchedule | null {
  const parts = expression.trim().split(/\s+/);
  if (parts.length === 5) parts.unshift('0');
  if (parts.length !== 6) return null;
  const [seconds, minutes, hours, days, months, weekdays] = FIELDS.map((field, i) => parseField(parts[i] ?? '', field));
  if (!seconds || !minutes || !hours || !days || !months || !weekdays) return null;
  if (weekdays.has(7)) weekdays.add(0);
  return { next: (afterMs) => nextRun(afterMs, { seconds, minutes, hours, days, months, weekdays }) };
}

interface Sets {
  seconds: Set<number>;
  minutes: Set<number>;
  hours: Set<number>;
  days: Set<number>;
  months: Set<number>;
  weekdays: Set<number>;
}

/** Schedules that never match (the 31st of February) give up after this many years. */
const YEARS_SEARCHED = 8;

function nextRun(afterMs: number, s: Sets): number {
  const d = new Date(Math.floor(afterMs / 1000) * 1000 + 1000);
  const limit = d.getFullYear() + YEARS_SEARCHED;
  // Each step moves to the start of the next unit that could match; setters in local time keep DST right.
  while (d.getFullYear() <= limit) {
    if (!s.months.has(d.getMonth() + 1)) {
      d.setMonth(d.getMonth() + 1, 1);
      d.setHours(0, 0, 0, 0);
    } else if (!s.days.has(d.getDate()) || !s.weekdays.has(d.getDay())) {
      d.setDate(d.getDate() + 1);
      d.setHours(0, 0, 0, 0);
    } else if (!s.hours.has(d.getHours())) {
      d.setHours(d.getHours() + 1, 0, 0, 0);
    } else if (!s.minutes.has(d.getMinutes())) {
      d.setMinutes(d.getMinutes() + 1, 0, 0);
    } else if (!s.seconds.has(d.getSeconds())) {
      d.setSeconds(d.getSeconds() + 1, 0);
    } else {
      return d.getTime();
    }
  }
  throw new RangeError(`the schedule has no run in the next ${YEARS_SEARCHED} years`);
}
