/**
 * Sizes (binary units) and durations (whole units) for people: shared by core's messages
 * (which may not import src/output/) and by output's rendering, so both say the same thing.
 */

const BYTE_UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB', 'EiB'] as const;

/** Three significant digits, trailing zeros dropped: 1.5, 1.02, 12.3, 123. */
function threeDigits(value: number): string {
  const decimals = value < 10 ? 2 : value < 100 ? 1 : 0;
  const text = value.toFixed(decimals);
  return decimals === 0 ? text : text.replace(/\.?0+$/, '');
}

/** Binary units: `0 B`, `512 B`, `1.5 KiB`, `12.3 MiB`, `1.02 GiB`. */
export function formatBytes(n: number): string {
  if (!Number.isFinite(n)) return `${n} B`;
  if (n < 0) return `-${formatBytes(-n)}`;
  if (n < 1024) return `${Math.round(n)} B`;
  let unit = 0;
  let value = n;
  while (value >= 1024 && unit < BYTE_UNITS.length - 1) {
    value /= 1024;
    unit += 1;
  }
  // 1023.9 KiB would print as "1024 KiB": move up a unit instead.
  if (Number(threeDigits(value)) >= 1024 && unit < BYTE_UNITS.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${threeDigits(value)} ${BYTE_UNITS[unit]}`;
}

/** `45 s`, `12 min`, `26 h`, `9 d` (whole units, rounded down). */
export function describeMs(ms: number): string {
  const s = Math.floor(Math.abs(ms) / 1000);
  const sign = ms < 0 ? '-' : '';
  if (s < 60) return `${sign}${s} s`;
  if (s < 3600) return `${sign}${Math.floor(s / 60)} min`;
  if (s < 172_800) return `${sign}${Math.floor(s / 3600)} h`;
  return `${sign}${Math.floor(s / 86_400)} d`;
}
