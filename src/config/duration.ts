/**
 * Fixed-length durations for thresholds (`status --max-age 25h`, `--max-verify-age 8d`):
 * one or more `<digits><unit>` parts, units `w`, `d`, `h`, `min`, `s`, `ms`, e.g. `25h`,
 * `8d`, `1d12h`, `90min`. A day is 24 hours here (thresholds measure elapsed time, not
 * calendar days). A bare `m` is refused: retention rules read it as months (as restic
 * does), so it would mean different things in different places.
 */

const UNIT_MS = { w: 604_800_000, d: 86_400_000, h: 3_600_000, min: 60_000, s: 1_000, ms: 1 } as const;
type Unit = keyof typeof UNIT_MS;

/** What the config schema accepts (the parser gives the better message). */
export const FIXED_DURATION_PATTERN = /^(\d+(w|d|h|min|s|ms))+$/;

export const FIXED_DURATION_HELP = 'a duration like "25h", "8d", "1d12h", "90min" or "30s" (units w, d, h, min, s, ms)';

/** Milliseconds of a duration such as "25h" or "1d12h"; throws an Error with a readable message. */
export function parseFixedDuration(text: string): number {
  const input = text.trim();
  const quoted = JSON.stringify(text);
  if (input === '') throw new Error(`invalid duration ${quoted}: it is empty; expected ${FIXED_DURATION_HELP}`);
  const part = /(\d+)([a-z]*)/gy;
  let total = 0;
  let position = 0;
  while (position < input.length) {
    part.lastIndex = position;
    const match = part.exec(input);
    if (!match || match[0] === '') {
      throw new Error(`invalid duration ${quoted}: cannot read "${input.slice(position)}"; expected ${FIXED_DURATION_HELP}`);
    }
    const [, digits = '', unit = ''] = match;
    if (unit === 'm') {
      throw new Error(`invalid duration ${quoted}: write minutes as "min" ("m" means months in retention rules)`);
    }
    if (unit === '') throw new Error(`invalid duration ${quoted}: "${digits}" needs a unit; expected ${FIXED_DURATION_HELP}`);
    if (!Object.hasOwn(UNIT_MS, unit)) {
      throw new Error(`invalid duration ${quoted}: unknown unit "${unit}"; expected ${FIXED_DURATION_HELP}`);
    }
    total += Number(digits) * UNIT_MS[unit as Unit];
    position = part.lastIndex;
  }
  if (!Number.isSafeInteger(total)) throw new Error(`invalid duration ${quoted}: too large`);
  if (total <= 0) throw new Error(`invalid duration ${quoted}: must be longer than 0`);
  return total;
}
