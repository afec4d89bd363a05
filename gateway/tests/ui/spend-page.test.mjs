// The spend page in a real browser: Debian's headless Chromium driven by
// Playwright (playwright-core, pinned in package-lock.json; it never
// downloads a browser) against a real gateway whose ledger seed.mjs filled.
// Every figure on the page is checked against what /admin/spend says, the
// range picker and the CSV download are exercised, a team key is shown to
// see its own team only, a bad key gets the API's message, and the page
// must run without a console error or a CSP violation. Screenshots go to
// $SHOTS for a person to look at.
//
// Run by run.sh, which starts the gateway and sets TOLLGATE_URL,
// MASTER_KEY, SEED (seed.mjs's output), SHOTS and CHROMIUM.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { chromium } from 'playwright-core';

import { shiftDate, usd } from '../../ui/format.js';

const base = process.env.TOLLGATE_URL;
const master = process.env.MASTER_KEY;
const seed = JSON.parse(fs.readFileSync(process.env.SEED, 'utf8'));
const shots = process.env.SHOTS;
const executablePath = process.env.CHROMIUM || '/usr/bin/chromium';

let context;
let page;
let profile;
/** Console errors, page errors and CSP violations: each fails the run. */
const problems = [];
/** Console errors a step expects (the browser logs every 4xx it fetches). */
const expected = [];
/** Every URL the browser asked for. */
const requested = [];

// ---- helpers ------------------------------------------------------------------

async function api(pathAndQuery, key = master) {
  const resp = await fetch(base + pathAndQuery, { headers: { Authorization: `Bearer ${key}` } });
  const text = await resp.text();
  assert.equal(resp.status, 200, `${pathAndQuery}: ${text}`);
  return pathAndQuery.includes('format=csv') ? text : JSON.parse(text);
}

/** The range the page shows, as the API's half-open query. */
async function shownRange() {
  const from = await page.inputValue('#from');
  const to = await page.inputValue('#to');
  return { from, to, query: `from=${from}T00:00:00Z&to=${shiftDate(to, 1)}T00:00:00Z` };
}

/** Waits until the page has loaded `view` for the range its picker shows. */
async function ready(view, teamId = '') {
  await page.waitForFunction(([v, t]) => {
    const from = document.getElementById('from').value;
    const to = document.getElementById('to').value;
    return from !== '' && document.getElementById('app').dataset.ready === [v, from, to, t].join('|');
  }, [view, teamId]);
}

/** The figures of a spend table: {group: {field: exact value}}. */
function tableFigures(selector) {
  return page.$$eval(`${selector} tbody tr[data-group], ${selector} tfoot tr[data-group]`, (rows) =>
    Object.fromEntries(rows.map((tr) => [
      tr.dataset.group,
      Object.fromEntries([...tr.querySelectorAll('td[data-field]')].map((td) => [
        td.dataset.field,
        { value: td.dataset.usd ?? td.dataset.n, text: td.textContent },
      ])),
    ])));
}

/** An amount as shown, without the zeros that line a column up. */
const trimmed = (text) => text.replace(/(\.\d*?)0+$/, '$1');

/** Asserts that a table shows exactly the report's rows and total. */
async function assertTableMatches(selector, report, fields) {
  const shown = await tableFigures(selector);
  const want = new Map(report.data.map((r) => [r.group ?? '', r]));
  want.set('*total', report.total);
  assert.deepEqual(Object.keys(shown).sort(), [...want.keys()].sort(), `${selector}: the rows of the report`);
  for (const [group, row] of want) {
    for (const field of fields) {
      const cell = shown[group][field];
      assert.ok(cell, `${selector} ${group} shows ${field}`);
      assert.equal(cell.value, String(row[field]), `${selector} ${group} ${field}`);
      if (field.endsWith('_usd')) assert.equal(trimmed(cell.text), trimmed(usd(row[field])), `${selector} ${group} ${field} as shown`);
    }
  }
}

async function cardValue(id) {
  return page.getAttribute(`#${id}`, 'data-usd');
}

async function signIn(key) {
  await page.fill('#key', key);
  await page.click('#sign-in-button');
}

async function signOut() {
  await page.click('#sign-out');
  await page.waitForSelector('#sign-in:not([hidden])');
}

/** Runs `step` allowing console errors that match `patterns`. */
async function expecting(patterns, step) {
  const marks = patterns.map((re) => ({ re, seen: false }));
  expected.push(...marks);
  try {
    await step();
  } finally {
    for (const m of marks) expected.splice(expected.indexOf(m), 1);
  }
}

async function screenshot(name) {
  fs.mkdirSync(shots, { recursive: true });
  await page.screenshot({ path: path.join(shots, `${name}.png`), fullPage: true });
}

// ---- the browser -------------------------------------------------------------------

before(async () => {
  profile = fs.mkdtempSync(path.join(os.tmpdir(), 'tollgate-ui-chromium-'));
  context = await chromium.launchPersistentContext(profile, {
    executablePath,
    headless: true,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
    viewport: { width: 1280, height: 900 },
    acceptDownloads: true,
    timeout: 30_000,
  });
  // Loopback only: anything else the page asks for is refused and fails the run.
  await context.route('**/*', (route) => {
    const url = route.request().url();
    if (url.startsWith(`${base}/`) || url.startsWith('blob:') || url.startsWith('data:')) return route.continue();
    problems.push(`the page asked for ${url}`);
    return route.abort();
  });
  // CSP violations, as the page itself sees them.
  await context.addInitScript(() => {
    document.addEventListener('securitypolicyviolation', (e) => {
      console.error(`CSP violation: ${e.violatedDirective} blocked ${e.blockedURI}`);
    });
  });
  page = context.pages()[0] || (await context.newPage());
  page.setDefaultTimeout(10_000);
  page.on('console', (msg) => {
    if (msg.type() !== 'error') return;
    const text = msg.text();
    const mark = expected.find((m) => !m.seen && m.re.test(text)) || expected.find((m) => m.re.test(text));
    if (mark) mark.seen = true;
    else problems.push(`console error: ${text}`);
  });
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('request', (r) => requested.push(r.url()));
});

after(async () => {
  if (context) await context.close();
  if (profile) fs.rmSync(profile, { recursive: true, force: true });
});

// ---- the steps, in order -------------------------------------------------------------

test('the page is served with a strict content security policy', async () => {
  const resp = await page.goto(`${base}/ui`);
  assert.equal(resp.status(), 200);
  const h = resp.headers();
  const csp = h['content-security-policy'];
  assert.ok(csp && csp.startsWith("default-src 'self'"), `CSP: ${csp}`);
  assert.doesNotMatch(csp, /unsafe/);
  assert.equal(h['x-content-type-options'], 'nosniff');
  assert.equal(h['referrer-policy'], 'no-referrer');
  assert.ok(h['cache-control'], 'a Cache-Control header');
  await page.waitForSelector('#sign-in:not([hidden])');
  assert.equal(await page.isVisible('#app'), false);
});

test('the master key sees every figure /admin/spend reports', async () => {
  await signIn(master);
  await ready('overview');
  const { from, query } = await shownRange();
  assert.equal(from.slice(8), '01', 'the default range is this month');

  const [byOrg, byTeam, byModel, byRoute, byDay] = await Promise.all(
    ['org', 'team', 'model', 'route', 'day'].map((g) => api(`/admin/spend?group_by=${g}&${query}`)),
  );
  assert.equal(byModel.total.requests, seed.requests, 'every seeded request is in range');
  assert.equal(await cardValue('range-cost'), byModel.total.cost_usd);
  assert.equal(await page.textContent('#range-cost'), usd(byModel.total.cost_usd));
  assert.equal(await cardValue('range-savings'), byModel.total.savings_usd);
  const today = new Date().toISOString().slice(0, 10);
  const month = await api(`/admin/spend?group_by=day&from=${today.slice(0, 8)}01T00:00:00Z&to=${shiftDate(today, 1)}T00:00:00Z`);
  assert.equal(await cardValue('month-cost'), month.total.cost_usd);
  const todayRow = month.data.find((r) => r.group.startsWith(today));
  assert.equal(await cardValue('today-cost'), todayRow.cost_usd);

  const fields = ['requests', 'input_tokens', 'cached_input_tokens', 'output_tokens', 'cost_usd', 'savings_usd'];
  await assertTableMatches('#by-org', byOrg, fields);
  await assertTableMatches('#by-team', byTeam, fields);
  await assertTableMatches('#by-model', byModel, fields);
  await assertTableMatches('#by-route', byRoute, ['requests', 'cost_usd', 'reference_cost_usd', 'savings_usd']);
  assert.ok(byRoute.data.some((r) => r.group === 'auto' && r.savings_picousd > 0), 'the seeded route saved money');
  const sessions = await api(`/admin/spend?group_by=session&limit=20&${query}`);
  await assertTableMatches('#sessions', sessions, ['requests', 'input_tokens', 'cached_input_tokens', 'cache_hit_share', 'output_tokens', 'cost_usd', 'savings_usd']);
  assert.deepEqual(sessions.data.map((r) => r.group).sort(), [seed.teamA.session, seed.teamB.session].sort());
  assert.ok(sessions.data.every((r) => r.requests === 2), 'two requests in each seeded session');
  const rowA = `#sessions tr[data-group="${seed.teamA.session}"]`;
  assert.equal(await page.getAttribute(`${rowA} code`, 'title'), seed.teamA.session);
  const a = sessions.data.find((r) => r.group === seed.teamA.session);
  assert.equal(await page.getAttribute(`${rowA} td.when`, 'data-first'), a.first_seen);
  assert.equal(await page.getAttribute(`${rowA} td.when`, 'data-last'), a.last_seen);
  assert.equal(await page.textContent(`#by-team tr[data-group="${seed.teamA.id}"] th`), seed.teamA.name);
  assert.equal(await page.textContent(`#by-team tr[data-group="${seed.teamB.id}"] th`), seed.teamB.name);

  // The chart: a bar for each day with spend, its exact amount in its title.
  const bars = await page.$$eval('#chart-overview rect.bar', (rs) => rs.map((r) => [r.dataset.date, r.textContent]));
  assert.equal(bars.length, byDay.data.length);
  for (const row of byDay.data) {
    const bar = bars.find(([d]) => d === row.group.slice(0, 10));
    assert.ok(bar && bar[1].includes(usd(row.cost_usd)), `a bar for ${row.group}`);
  }
  await screenshot('overview');
});

test('the range picker changes the figures, and back', async () => {
  const before = await cardValue('range-cost');
  await page.fill('#from', '2021-02-01');
  await page.fill('#to', '2021-02-28');
  await page.click('#apply');
  await ready('overview');
  assert.equal(await cardValue('range-cost'), '0.000000000000');
  assert.equal(await cardValue('range-savings'), '0.000000000000');
  assert.equal(await page.textContent('#by-team tbody'), 'No spend in this range');
  assert.equal(await page.$$eval('#chart-overview rect.bar', (r) => r.length), 0);
  const { query } = await shownRange();
  assert.equal((await api(`/admin/spend?${query}`)).total.requests, 0);

  for (const preset of ['7d', '30d', 'today', 'month']) {
    await page.click(`[data-preset="${preset}"]`);
    await ready('overview');
    const { query: q } = await shownRange();
    assert.equal(await cardValue('range-cost'), (await api(`/admin/spend?${q}`)).total.cost_usd, preset);
  }
  assert.equal(await cardValue('range-cost'), before);
});

test('the CSV download is what /admin/spend gives for the shown range', async () => {
  const { query } = await shownRange();
  for (const report of ['model', 'team', 'session']) {
    const [download] = await Promise.all([
      page.waitForEvent('download'),
      page.click(`#view-overview button.csv[data-report="${report}"]`),
    ]);
    assert.match(download.suggestedFilename(), new RegExp(`^tollgate-spend-by-${report}-.*\\.csv$`));
    const saved = fs.readFileSync(await download.path(), 'utf8');
    assert.equal(saved, await api(`/admin/spend?group_by=${report}&${query}&format=csv`), report);
  }
});

test('the master key can open any team: budgets, keys, spend by model and day', async () => {
  await page.click(`#by-team button[data-team="${seed.teamA.id}"]`);
  await ready('team', seed.teamA.id);
  const detail = await api(`/v1/spend/teams/${seed.teamA.id}`);
  const { query } = await shownRange();
  const byModel = await api(`/admin/spend?group_by=model&team_id=${seed.teamA.id}&${query}`);
  await assertTableMatches('#team-by-model', byModel, ['requests', 'output_tokens', 'cost_usd', 'savings_usd']);
  assert.equal(await cardValue('team-month-cost'), detail.spend.month.cost_usd);
  const budgets = await page.$$eval('#budgets tbody tr[data-group]', (rows) =>
    rows.map((tr) => [tr.dataset.group, tr.querySelector('[data-field="spent_usd"]').dataset.usd,
      tr.querySelector('[data-field="remaining_usd"]').dataset.usd, tr.querySelector('[data-field="projection"]').textContent]));
  assert.deepEqual(budgets.map((b) => b[0]), detail.budgets.map((b) => `${b.level}:${b.id}`));
  for (const [i, b] of detail.budgets.entries()) {
    assert.equal(budgets[i][1], b.spent_usd, `${b.level} spent`);
    assert.equal(budgets[i][2], b.remaining_usd ?? '', `${b.level} remaining`);
    assert.match(budgets[i][3], /runs out|lasts past the reset|used up|nothing spent/, `${b.level} projection`);
  }
  const keys = await page.$$eval('#keys tbody tr[data-group]', (rows) => rows.map((tr) => tr.textContent));
  assert.equal(keys.length, detail.keys.length);
  assert.ok(keys.some((k) => k.includes('revoked')), 'the revoked key says so');
  assert.ok(keys.some((k) => k.includes(seed.teamA.keyPrefix)), 'keys are shown by prefix');

  // Another team from the picker.
  await page.selectOption('#team-pick', seed.teamB.id);
  await ready('team', seed.teamB.id);
  assert.equal(await cardValue('team-month-cost'), (await api(`/v1/spend/teams/${seed.teamB.id}`)).spend.month.cost_usd);
  await page.selectOption('#team-pick', seed.teamA.id);
  await ready('team', seed.teamA.id);
  await screenshot('team-view');
});

test("a team key sees its own team and never another team's numbers", async () => {
  await signOut();
  assert.equal(await page.evaluate(() => sessionStorage.length), 0, 'signing out forgets the key');
  assert.equal(await page.$$eval('#app td', (tds) => tds.length), 0, 'signing out clears the figures');

  await signIn(seed.teamA.key);
  await ready('overview');
  const { query } = await shownRange();
  const teamsB = await api(`/admin/spend?group_by=team&team_id=${seed.teamB.id}&${query}`);
  const mine = await api(`/v1/spend?group_by=team&${query}`, seed.teamA.key);
  await assertTableMatches('#by-team', mine, ['requests', 'cost_usd']);
  assert.deepEqual(mine.data.map((r) => r.group), [seed.teamA.id]);
  assert.equal(await page.isVisible('#by-org-panel'), false, 'no organization table for a team key');
  assert.equal(await cardValue('range-cost'), mine.total.cost_usd);

  const forbidden = [seed.teamB.id, seed.teamB.name, seed.teamB.org, seed.teamB.keyPrefix, seed.teamB.keyName,
    seed.teamB.session, usd(teamsB.total.cost_usd)];
  const mySessions = await api(`/v1/spend?group_by=session&limit=20&${query}`, seed.teamA.key);
  assert.deepEqual(mySessions.data.map((r) => r.group), [seed.teamA.session], 'a team key sees its own sessions only');
  await assertTableMatches('#sessions', mySessions, ['requests', 'cost_usd']);
  const assertNothingOfB = async (where) => {
    const html = await page.content();
    const text = await page.innerText('body');
    for (const f of forbidden) {
      assert.ok(!html.includes(f) && !text.includes(f), `${where}: "${f}" of team B is not on the page`);
    }
  };
  await assertNothingOfB('overview');
  await screenshot('team-key');
  await page.setViewportSize({ width: 420, height: 900 });
  await screenshot('team-key-narrow');
  await page.setViewportSize({ width: 1280, height: 900 });

  await page.click('.tab[data-view="team"]');
  await ready('team', seed.teamA.id);
  assert.equal(await page.isDisabled('#team-pick'), true, 'a team key cannot pick another team');
  await assertNothingOfB('team view');

  // The API refuses, whatever the page does.
  await expecting([/status of 403/, /status of 403/], async () => {
    const [status, body] = await page.evaluate(async (id) => {
      const key = sessionStorage.getItem('tollgate.key');
      const r = await fetch(`/v1/spend?team_id=${encodeURIComponent(id)}`, { headers: { Authorization: `Bearer ${key}` } });
      return [r.status, await r.json()];
    }, seed.teamB.id);
    assert.equal(status, 403);
    assert.equal(body.error.code, 'spend_out_of_scope');
    assert.match(body.error.message, /may not see the spend of team/);
    const teamStatus = await page.evaluate(async (id) => {
      const key = sessionStorage.getItem('tollgate.key');
      return (await fetch(`/v1/spend/teams/${encodeURIComponent(id)}`, { headers: { Authorization: `Bearer ${key}` } })).status;
    }, seed.teamB.id);
    assert.equal(teamStatus, 403);
  });
});

test('a bad key gets the API\'s clear message', async () => {
  await signOut();
  await expecting([/status of 401/], async () => {
    await signIn('tg-this-is-not-a-real-key');
    await page.waitForSelector('#sign-in-error:not([hidden])');
  });
  assert.equal(await page.textContent('#sign-in-error'), 'Sign-in failed: Incorrect API key provided.');
  assert.equal(await page.isVisible('#app'), false);
  assert.equal(await page.evaluate(() => sessionStorage.length), 0, 'a refused key is not kept');
  await screenshot('bad-key');
});

test('keys never reach a URL, a cookie or storage beyond the tab', async () => {
  assert.ok(requested.length > 10);
  for (const url of requested) {
    for (const key of [master, seed.teamA.key, 'tg-this-is-not-a-real-key']) {
      assert.ok(!url.includes(key), `a key in ${url}`);
    }
  }
  assert.deepEqual(await context.cookies(), []);
  assert.equal(await page.evaluate(() => localStorage.length), 0);
});

test('no console errors and no CSP violations', () => {
  assert.deepEqual(problems, []);
});
