// Formatting for reading. Money arrives from the API as exact decimal USD
// strings ("1234.500000000000"); it is only regrouped and its trailing zeros
// trimmed, never turned into a float, so what is shown is what was billed.

const GROUPS = /\B(?=(\d{3})+(?!\d))/g;

/**
 * "1234.500000000000" -> "$1,234.50"; "0.000012340000" -> "$0.00001234".
 * `places`: at least this many decimals (zeros added), so that a column's
 * amounts line up; digits are never dropped.
 */
export function usd(value, places = 2) {
  if (value === null || value === undefined || value === '') return '—';
  let s = String(value).trim();
  const negative = s.startsWith('-');
  if (negative) s = s.slice(1);
  let [whole, frac = ''] = s.split('.');
  frac = frac.replace(/0+$/, '');
  if (frac.length < places) frac = frac.padEnd(places, '0');
  whole = (whole.replace(/^0+(?=\d)/, '') || '0').replace(GROUPS, ',');
  const text = `$${whole}.${frac}`;
  return negative && /[1-9]/.test(s) ? `−${text}` : text;
}

/** The decimals `usd` needs to show every one of `values` whole (at least 2). */
export function places(values) {
  let most = 2;
  for (const v of values) {
    if (v === null || v === undefined) continue;
    const frac = (String(v).split('.')[1] || '').replace(/0+$/, '');
    most = Math.max(most, frac.length);
  }
  return most;
}

/** An integer count with thousands separators. */
export function count(value) {
  if (value === null || value === undefined) return '—';
  return String(value).replace(GROUPS, ',');
}

/** "2026-11-21T14:03:00.000Z" -> "2026-11-21 14:03 UTC". */
export function time(iso) {
  if (!iso) return '—';
  return `${iso.slice(0, 10)} ${iso.slice(11, 16)} UTC`;
}

/** "2026-11-21T00:00:00.000Z" -> "2026-11-21". */
export function day(iso) {
  return iso ? iso.slice(0, 10) : '—';
}

/** Whole days from `fromMs` to `toMs`, rounded down, in words. */
export function inDays(fromMs, toMs) {
  const days = Math.floor((toMs - fromMs) / 86_400_000);
  if (days <= 0) return 'today';
  if (days === 1) return 'in 1 day';
  return `in ${count(days)} days`;
}

/** A UTC calendar date ("YYYY-MM-DD") `offset` days from `date`. */
export function shiftDate(date, offset) {
  const t = Date.parse(`${date}T00:00:00Z`) + offset * 86_400_000;
  return new Date(t).toISOString().slice(0, 10);
}

/** Today's UTC date, "YYYY-MM-DD". */
export function today(now = Date.now()) {
  return new Date(now).toISOString().slice(0, 10);
}
