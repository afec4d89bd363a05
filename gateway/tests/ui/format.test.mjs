// The page's formatting, which must never round or float a billed amount.

import { test } from 'node:test';
import assert from 'node:assert/strict';

import { count, places, day, inDays, shiftDate, time, today, usd } from '../../ui/format.js';

test('amounts keep every digit the API gave, regrouped and trimmed', () => {
  assert.equal(usd('1234.500000000000'), '$1,234.50');
  assert.equal(usd('0.000012340000'), '$0.00001234');
  assert.equal(usd('0.000000000000'), '$0.00');
  assert.equal(usd('1234567.000000000001'), '$1,234,567.000000000001');
  assert.equal(usd('-0.250000000000'), '−$0.25');
  assert.equal(usd('-0.000000000000'), '$0.00');
  assert.equal(usd('50'), '$50.00');
  assert.equal(usd(null), '—');
});

test('a column of amounts lines up without losing a digit', () => {
  const column = ['0.015697600000', '0.039357240000', '1.500000000000'];
  assert.equal(places(column), 8);
  assert.deepEqual(column.map((v) => usd(v, places(column))), ['$0.01569760', '$0.03935724', '$1.50000000']);
  assert.equal(places(['3.000000000000', null]), 2);
});

test('counts, days and times read plainly', () => {
  assert.equal(count(1234567), '1,234,567');
  assert.equal(count(12), '12');
  assert.equal(day('2026-11-21T00:00:00.000Z'), '2026-11-21');
  assert.equal(time('2026-11-21T14:03:09.000Z'), '2026-11-21 14:03 UTC');
  assert.equal(shiftDate('2026-02-28', 1), '2026-03-01');
  assert.equal(shiftDate('2026-01-01', -1), '2025-12-31');
  assert.equal(today(Date.parse('2026-11-30T23:59:59Z')), '2026-11-30');
  assert.equal(inDays(0, 86_400_000 * 3.5), 'in 3 days');
  assert.equal(inDays(0, 1000), 'today');
});
