// Tollgate's spend page. Plain modules, no build step. Everything shown comes
// from the authenticated API, which decides what the key may see: the master
// key every organization and team, a team's key its own team only.

import { Api, ApiError } from './api.js';
import { dailyChart } from './chart.js';
import { count, day, inDays, places, shiftDate, time, today, usd } from './format.js';

const KEY = 'tollgate.key';
const $ = (id) => document.getElementById(id);

const state = {
  api: null,
  me: null,
  teams: [],
  range: null,
  view: 'overview',
  teamId: null,
  gen: 0,
};

// ---- small DOM helpers ----------------------------------------------------

function h(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') node.className = v;
    else if (k.startsWith('on')) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

function show(node, visible) {
  node.hidden = !visible;
}

function setError(message) {
  $('error').textContent = message || '';
  show($('error'), Boolean(message));
}

/** A money cell: the readable amount, the API's exact string beside it. */
function money(value, field, decimals = 2) {
  return h('td', { class: 'num', 'data-field': field, 'data-usd': value ?? '' }, usd(value, decimals));
}

function num(value, field) {
  return h('td', { class: 'num', 'data-field': field, 'data-n': value ?? '' }, count(value));
}

function setMoney(id, value) {
  $(id).textContent = usd(value);
  $(id).dataset.usd = value ?? '';
}

// ---- names ------------------------------------------------------------------

function teamName(id) {
  const t = state.teams.find((x) => x.id === id);
  return t ? t.name : id;
}

function orgName(id) {
  const t = state.teams.find((x) => x.org_id === id);
  return t && t.org_name ? t.org_name : id;
}

// ---- the range ----------------------------------------------------------------

function preset(name) {
  const t = today();
  switch (name) {
    case 'today':
      return { from: t, to: t, preset: name };
    case '7d':
      return { from: shiftDate(t, -6), to: t, preset: name };
    case '30d':
      return { from: shiftDate(t, -29), to: t, preset: name };
    default:
      return { from: `${t.slice(0, 8)}01`, to: t, preset: 'month' };
  }
}

function setRange(range) {
  state.range = range;
  $('from').value = range.from;
  $('to').value = range.to;
  for (const b of document.querySelectorAll('[data-preset]')) {
    b.setAttribute('aria-pressed', String(b.dataset.preset === range.preset));
  }
}

/** The API's half-open range for the picker's inclusive UTC days. */
function rangeParams() {
  return {
    from: `${state.range.from}T00:00:00Z`,
    to: `${shiftDate(state.range.to, 1)}T00:00:00Z`,
  };
}

/** Every UTC day of the range, oldest first, with the report's figures. */
function everyDay(report) {
  const byDate = new Map(report.data.map((r) => [day(r.group), r]));
  const out = [];
  for (let d = state.range.from; d <= state.range.to; d = shiftDate(d, 1)) {
    const r = byDate.get(d);
    out.push({ date: d, usd: r ? r.cost_usd : '0', requests: r ? r.requests : 0 });
  }
  return out;
}

// ---- tables -----------------------------------------------------------------------

const SPEND_COLUMNS = [
  ['requests', 'Requests'],
  ['input_tokens', 'Input tokens'],
  ['cached_input_tokens', 'Cached input'],
  ['output_tokens', 'Output tokens'],
  ['cost_usd', 'Cost'],
  ['savings_usd', 'Saved'],
];

const SAVINGS_COLUMNS = [
  ['requests', 'Requests'],
  ['cost_usd', 'Cost'],
  ['reference_cost_usd', 'On reference models'],
  ['savings_usd', 'Saved'],
];

/**
 * Fills `table` with a spend report: one row per group, named by
 * `nameOf(group)` (a string or a node), and the report's total.
 */
function spendTable(table, report, label, nameOf, columns = SPEND_COLUMNS) {
  const all = [...report.data, report.total];
  // Money columns line up: each padded to its longest exact amount.
  const cells = columns.map(([field]) => {
    if (!field.endsWith('_usd')) return (row) => num(row[field], field);
    const decimals = places(all.map((r) => r[field]));
    return (row) => money(row[field], field, decimals);
  });
  const head = h('tr', {}, h('th', { scope: 'col' }, label), columns.map(([, title]) => h('th', { scope: 'col', class: 'num' }, title)));
  const rows = report.data.map((r) =>
    h('tr', { 'data-group': r.group ?? '' }, h('th', { scope: 'row' }, nameOf(r.group)), cells.map((cell) => cell(r))),
  );
  if (rows.length === 0) {
    rows.push(h('tr', { class: 'empty' }, h('td', { colspan: columns.length + 1 }, 'No spend in this range')));
  }
  const total = h('tr', { 'data-group': '*total' }, h('th', { scope: 'row' }, 'Total'), cells.map((cell) => cell(report.total)));
  table.replaceChildren(h('thead', {}, head), h('tbody', {}, rows), h('tfoot', {}, total));
}

function named(name, id) {
  return h('span', { title: id }, name);
}

function teamCell(id) {
  if (id === null) return h('span', { class: 'muted' }, '(master key)');
  if (state.me.type !== 'master') return named(teamName(id), id);
  return h('button', { type: 'button', class: 'link', 'data-team': id, title: id, onclick: () => openTeam(id) }, teamName(id));
}

/** How many sessions the overview lists. */
const RECENT_SESSIONS = 20;

/** A share from 0 to 1 as a percentage with one decimal, or a dash. */
function share(value) {
  return h('td', { class: 'num', 'data-field': 'cache_hit_share', 'data-n': value ?? '' },
    value === null || value === undefined ? '—' : `${(value * 100).toFixed(1)}%`);
}

/** First and last seen, the last without its date when on the same day. */
function seen(first, last) {
  if (!first || !last) return '—';
  const at = (iso) => `${iso.slice(0, 10)} ${iso.slice(11, 16)}`;
  const until = first.slice(0, 10) === last.slice(0, 10) ? last.slice(11, 16) : at(last);
  return `${at(first)} – ${until}`;
}

/** Fills the sessions table: one row a session, most recent first, and the total. */
function sessionsTable(table, report) {
  const all = [...report.data, report.total];
  const decimals = Object.fromEntries(['cost_usd', 'savings_usd'].map((f) => [f, places(all.map((r) => r[f]))]));
  const cells = (r) => [
    h('td', { class: 'when', 'data-first': r.first_seen ?? '', 'data-last': r.last_seen ?? '' }, seen(r.first_seen, r.last_seen)),
    num(r.requests, 'requests'),
    num(r.input_tokens, 'input_tokens'),
    num(r.cached_input_tokens, 'cached_input_tokens'),
    share(r.cache_hit_share),
    num(r.output_tokens, 'output_tokens'),
    money(r.cost_usd, 'cost_usd', decimals.cost_usd),
    money(r.savings_usd, 'savings_usd', decimals.savings_usd),
  ];
  const titles = ['Seen (UTC)', 'Requests', 'Input tokens', 'Cached input', 'Cache hits', 'Output tokens', 'Cost', 'Saved'];
  const head = h('tr', {}, h('th', { scope: 'col' }, 'Session'),
    titles.map((t, i) => h('th', { scope: 'col', class: i >= 1 ? 'num' : null }, t)));
  const rows = report.data.map((r) =>
    h('tr', { 'data-group': r.group }, h('th', { scope: 'row' }, h('code', { title: r.group }, r.group)), cells(r)));
  if (rows.length === 0) {
    rows.push(h('tr', { class: 'empty' }, h('td', { colspan: titles.length + 1 }, 'No sessions in this range')));
  }
  const total = h('tr', { 'data-group': '*total' }, h('th', { scope: 'row' }, 'Total'), cells(report.total));
  table.replaceChildren(h('thead', {}, head), h('tbody', {}, rows), h('tfoot', {}, total));
}

// ---- the overview ------------------------------------------------------------------

async function loadOverview(gen) {
  const api = state.api;
  const t = today();
  const month = { group_by: 'day', from: `${t.slice(0, 8)}01T00:00:00Z`, to: `${shiftDate(t, 1)}T00:00:00Z` };
  const groups = ['team', 'model', 'route', 'day'];
  if (state.me.type === 'master') groups.push('org');
  const [monthReport, sessions, ...reports] = await Promise.all([
    api.json('/v1/spend', month),
    api.json('/v1/spend', { ...rangeParams(), group_by: 'session', limit: RECENT_SESSIONS }),
    ...groups.map((g) => api.json('/v1/spend', { ...rangeParams(), group_by: g })),
  ]);
  if (gen !== state.gen) return false;
  const by = Object.fromEntries(groups.map((g, i) => [g, reports[i]]));

  const todayRow = monthReport.data.find((r) => day(r.group) === t);
  setMoney('today-cost', todayRow ? todayRow.cost_usd : '0');
  $('today-requests').textContent = `${count(todayRow ? todayRow.requests : 0)} requests`;
  setMoney('month-cost', monthReport.total.cost_usd);
  $('month-requests').textContent = `${count(monthReport.total.requests)} requests`;
  const total = by.model.total;
  setMoney('range-cost', total.cost_usd);
  $('range-requests').textContent = `${count(total.requests)} requests · ${count(total.input_tokens + total.cached_input_tokens + total.cache_write_tokens)} in, ${count(total.output_tokens)} out tokens`;
  setMoney('range-savings', total.savings_usd);
  $('range-reference').textContent = `against ${usd(total.reference_cost_usd)} on reference models`;

  dailyChart($('chart-overview'), everyDay(by.day), `Daily spend from ${state.range.from} to ${state.range.to}`);
  show($('by-org-panel'), state.me.type === 'master');
  if (by.org) {
    spendTable($('by-org'), by.org, 'Organization', (id) => (id === null ? h('span', { class: 'muted' }, '(master key)') : named(orgName(id), id)));
  } else {
    $('by-org').replaceChildren();
  }
  spendTable($('by-team'), by.team, 'Team', teamCell);
  spendTable($('by-model'), by.model, 'Model', (m) => m);
  spendTable($('by-route'), by.route, 'Route', (r) => r, SAVINGS_COLUMNS);
  $('sessions-limit').textContent = String(RECENT_SESSIONS);
  sessionsTable($('sessions'), sessions);
  return true;
}

// ---- the team view --------------------------------------------------------------------

function budgetRow(b, decimals) {
  const level = { org: 'Organization', team: 'Team', key: 'Key' }[b.level] || b.level;
  const limit = [];
  if (b.limit_usd !== null && b.limit_usd !== undefined) limit.push(usd(String(b.limit_usd)));
  if (b.limit_tokens !== null && b.limit_tokens !== undefined) limit.push(`${count(b.limit_tokens)} tokens`);
  const used = [usd(b.spent_usd, decimals.spent_usd)];
  if (b.limit_tokens !== null && b.limit_tokens !== undefined) used.push(`${count(b.spent_tokens)} tokens`);
  let share = null;
  if (b.limit_usd) share = (Number(b.spent_usd) + Number(b.reserved_usd)) / b.limit_usd;
  else if (b.limit_tokens) share = (b.spent_tokens + b.reserved_tokens) / b.limit_tokens;
  const remaining = b.remaining_usd !== undefined ? usd(b.remaining_usd, decimals.remaining_usd) : `${count(b.remaining_tokens)} tokens`;
  return h('tr', { 'data-group': `${b.level}:${b.id}` },
    h('th', { scope: 'row' }, h('span', { class: `badge ${b.level}` }, level), ' ', named(b.name || b.id, b.id)),
    h('td', {}, `${b.period}, ${b.enforcement}`),
    h('td', { class: 'num' }, limit.join(' / ')),
    h('td', { class: 'num', 'data-field': 'spent_usd', 'data-usd': b.spent_usd }, used.join(' / ')),
    money(b.reserved_usd, 'reserved_usd', decimals.reserved_usd),
    h('td', { class: 'num', 'data-field': 'remaining_usd', 'data-usd': b.remaining_usd ?? '' },
      remaining,
      share === null ? null : h('meter', { min: 0, max: 1, low: 0.75, high: 0.9, optimum: 0, value: Math.min(1, share), title: `${Math.round(share * 100)}% used` })),
    h('td', {}, b.resets_at ? time(b.resets_at) : 'never'),
    h('td', { 'data-field': 'projection' }, projection(b)),
  );
}

function projection(b) {
  const p = b.projection;
  if (!p) return h('span', { class: 'muted' }, 'tokens only');
  if (!p.runs_out_at) return h('span', { class: 'muted' }, 'nothing spent this month');
  const rate = h('span', { class: 'sub' }, `at ${usd(p.daily_average_usd)} a day`);
  if (b.remaining_usd !== undefined && /^0\.0*$/.test(b.remaining_usd)) {
    return h('span', { class: 'warn' }, 'used up');
  }
  const at = Date.parse(p.runs_out_at);
  if (p.before_reset) {
    return h('span', {}, h('span', { class: 'warn' }, `runs out ${day(p.runs_out_at)} (${inDays(Date.now(), at)})`), h('br'), rate);
  }
  return h('span', {}, h('span', { class: 'ok' }, 'lasts past the reset'), h('br'), rate);
}

function keyStatus(k) {
  if (k.revoked_at) return h('span', { class: 'warn' }, `revoked ${day(k.revoked_at)}`);
  if (k.expires_at && Date.parse(k.expires_at) <= Date.now()) return h('span', { class: 'warn' }, `expired ${day(k.expires_at)}`);
  if (k.expires_at) return `active, expires ${day(k.expires_at)}`;
  return 'active';
}

function keysTable(detail, byKey) {
  const spent = new Map(byKey.data.map((r) => [r.group, r]));
  const decimals = places([...byKey.data, byKey.total].map((r) => r.cost_usd));
  const head = h('tr', {}, ['Key', 'Prefix', 'Created', 'Status'].map((t) => h('th', { scope: 'col' }, t)),
    h('th', { scope: 'col', class: 'num' }, 'Requests'), h('th', { scope: 'col', class: 'num' }, 'Cost'));
  const rows = detail.keys.map((k) => {
    const r = spent.get(k.id);
    return h('tr', { 'data-group': k.id },
      h('th', { scope: 'row' }, named(k.name || '(unnamed)', k.id)),
      h('td', {}, h('code', {}, `${k.prefix}…`)),
      h('td', {}, day(k.created_at)),
      h('td', {}, keyStatus(k)),
      num(r ? r.requests : 0, 'requests'),
      money(r ? r.cost_usd : '0', 'cost_usd', decimals));
  });
  if (rows.length === 0) rows.push(h('tr', { class: 'empty' }, h('td', { colspan: 6 }, 'No keys')));
  const foot = h('tr', { 'data-group': '*total' }, h('th', { scope: 'row', colspan: 4 }, 'Total in range'),
    num(byKey.total.requests, 'requests'), money(byKey.total.cost_usd, 'cost_usd', decimals));
  $('keys').replaceChildren(h('thead', {}, head), h('tbody', {}, rows), h('tfoot', {}, foot));
}

function fillTeamPicker() {
  const pick = $('team-pick');
  const orgs = new Map();
  for (const t of state.teams) {
    if (!orgs.has(t.org_id)) orgs.set(t.org_id, h('optgroup', { label: t.org_name || t.org_id }));
    orgs.get(t.org_id).append(h('option', { value: t.id }, t.name));
  }
  pick.replaceChildren(...orgs.values());
  pick.disabled = state.me.type !== 'master';
  if (state.teamId) pick.value = state.teamId;
}

async function loadTeam(gen) {
  const id = state.teamId;
  if (!id) {
    $('team-org').textContent = 'No teams yet.';
    return true;
  }
  const api = state.api;
  const scoped = { ...rangeParams(), team_id: id };
  const [detail, byModel, byDay, byKey] = await Promise.all([
    api.json(`/v1/spend/teams/${encodeURIComponent(id)}`),
    api.json('/v1/spend', { ...scoped, group_by: 'model' }),
    api.json('/v1/spend', { ...scoped, group_by: 'day' }),
    api.json('/v1/spend', { ...scoped, group_by: 'key' }),
  ]);
  if (gen !== state.gen) return false;
  $('team-pick').value = id;
  $('team-org').textContent = `in ${detail.team.org_name}`;
  setMoney('team-today-cost', detail.spend.today.cost_usd);
  $('team-today-requests').textContent = `${count(detail.spend.today.requests)} requests`;
  setMoney('team-month-cost', detail.spend.month.cost_usd);
  $('team-month-requests').textContent = `${count(detail.spend.month.requests)} requests`;
  setMoney('team-range-cost', byModel.total.cost_usd);
  $('team-range-requests').textContent = `${count(byModel.total.requests)} requests from ${state.range.from} to ${state.range.to}`;

  const budgets = $('budgets');
  const head = h('tr', {}, ['Budget', 'Period', 'Limit', 'Spent', 'Held', 'Remaining', 'Resets', 'Projection'].map((t, i) =>
    h('th', { scope: 'col', class: i >= 2 && i <= 5 ? 'num' : null }, t)));
  const decimals = Object.fromEntries(['spent_usd', 'reserved_usd', 'remaining_usd'].map((f) => [f, places(detail.budgets.map((b) => b[f]))]));
  const rows = detail.budgets.map((b) => budgetRow(b, decimals));
  if (rows.length === 0) rows.push(h('tr', { class: 'empty' }, h('td', { colspan: 8 }, 'No budgets on this team, its organization or its keys')));
  budgets.replaceChildren(h('thead', {}, head), h('tbody', {}, rows));

  keysTable(detail, byKey);
  dailyChart($('chart-team'), everyDay(byDay), `Daily spend of ${detail.team.name} from ${state.range.from} to ${state.range.to}`);
  spendTable($('team-by-model'), byModel, 'Model', (m) => m);
  return true;
}

// ---- loading ------------------------------------------------------------------------

async function reload() {
  const gen = ++state.gen;
  const app = $('app');
  app.dataset.ready = '';
  app.setAttribute('aria-busy', 'true');
  setError('');
  try {
    const done = state.view === 'team' ? await loadTeam(gen) : await loadOverview(gen);
    if (done && gen === state.gen) {
      app.dataset.ready = [state.view, state.range.from, state.range.to, state.view === 'team' ? state.teamId : ''].join('|');
    }
  } catch (e) {
    if (gen !== state.gen) return;
    if (e instanceof ApiError && e.status === 401) {
      signOut(`Signed out: ${e.message}`);
      return;
    }
    setError(e instanceof ApiError ? e.message : `Something went wrong: ${e.message}`);
    app.dataset.ready = 'error';
  } finally {
    if (gen === state.gen) app.removeAttribute('aria-busy');
  }
}

function setView(view) {
  state.view = view;
  for (const b of document.querySelectorAll('.tab')) b.setAttribute('aria-pressed', String(b.dataset.view === view));
  show($('view-overview'), view === 'overview');
  show($('view-team'), view === 'team');
  reload();
}

function openTeam(id) {
  state.teamId = id;
  setView('team');
}

// ---- CSV --------------------------------------------------------------------------------

async function downloadCsv(button) {
  const params = { ...rangeParams(), group_by: button.dataset.report, format: 'csv' };
  if (button.dataset.scope === 'team') params.team_id = state.teamId;
  try {
    const blob = await state.api.blob('/v1/spend', params);
    const who = button.dataset.scope === 'team' ? `${teamName(state.teamId)}-` : '';
    const name = `tollgate-spend-${who}by-${params.group_by}-${state.range.from}-to-${state.range.to}.csv`.replace(/[^A-Za-z0-9._-]+/g, '_');
    const href = URL.createObjectURL(blob);
    const a = h('a', { href, download: name, hidden: true });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(href), 10_000);
  } catch (e) {
    setError(e instanceof ApiError ? e.message : `The CSV could not be made: ${e.message}`);
  }
}

// ---- signing in and out ---------------------------------------------------------------

async function signIn(key) {
  const api = new Api(key);
  const me = await api.json('/v1/me');
  const teams = await api.json('/v1/spend/teams');
  sessionStorage.setItem(KEY, key);
  state.api = api;
  state.me = me;
  state.teams = teams.data;
  state.teamId = me.type === 'key' ? me.team.id : (state.teams[0] || {}).id || null;
  $('who-label').textContent = me.type === 'master'
    ? 'Master key: every organization and team'
    : `Team ${me.team.name} (${me.org.name}), key ${me.key.name ? `${me.key.name} ` : ''}${me.key.prefix}…`;
  fillTeamPicker();
  setRange(preset('month'));
  show($('sign-in'), false);
  show($('who'), true);
  show($('app'), true);
  setView('overview');
}

function clearFigures() {
  for (const t of document.querySelectorAll('#app table')) t.replaceChildren();
  for (const c of document.querySelectorAll('#app .chart')) c.replaceChildren();
  for (const p of document.querySelectorAll('#app .card .big, #app .card .sub')) {
    p.textContent = '';
    if (p.dataset.usd !== undefined) p.dataset.usd = '';
  }
  $('team-pick').replaceChildren();
  $('team-org').textContent = '';
}

function signOut(message) {
  sessionStorage.removeItem(KEY);
  state.gen += 1;
  state.api = null;
  state.me = null;
  state.teams = [];
  state.teamId = null;
  clearFigures();
  setError('');
  $('app').dataset.ready = '';
  $('who-label').textContent = '';
  show($('app'), false);
  show($('who'), false);
  show($('sign-in'), true);
  $('sign-in-error').textContent = message || '';
  show($('sign-in-error'), Boolean(message));
  $('key').value = '';
  $('key').focus();
}

async function onSignIn(event) {
  event.preventDefault();
  const input = $('key');
  const key = input.value.trim();
  const error = $('sign-in-error');
  show(error, false);
  if (!key) return;
  const button = $('sign-in-button');
  button.disabled = true;
  try {
    await signIn(key);
    input.value = '';
  } catch (e) {
    sessionStorage.removeItem(KEY);
    error.textContent = e instanceof ApiError ? `Sign-in failed: ${e.message}` : `Sign-in failed: ${e.message}`;
    show(error, true);
    input.select();
  } finally {
    button.disabled = false;
  }
}

function onRange(event) {
  event.preventDefault();
  const from = $('from').value;
  const to = $('to').value;
  if (!from || !to) return;
  if (from > to) {
    setError('The range must start on or before the day it ends.');
    return;
  }
  setRange({ from, to, preset: null });
  reload();
}

function start() {
  $('sign-in-form').addEventListener('submit', onSignIn);
  $('sign-out').addEventListener('click', () => signOut());
  $('range').addEventListener('submit', onRange);
  for (const b of document.querySelectorAll('[data-preset]')) {
    b.addEventListener('click', () => {
      setRange(preset(b.dataset.preset));
      reload();
    });
  }
  for (const b of document.querySelectorAll('.tab')) b.addEventListener('click', () => setView(b.dataset.view));
  for (const b of document.querySelectorAll('button.csv')) b.addEventListener('click', () => downloadCsv(b));
  $('team-pick').addEventListener('change', (e) => openTeam(e.target.value));

  const saved = sessionStorage.getItem(KEY);
  if (!saved) {
    signOut();
    return;
  }
  signIn(saved).catch((e) => signOut(e instanceof ApiError ? `Signed out: ${e.message}` : undefined));
}

start();
