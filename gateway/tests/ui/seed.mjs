// Gives a fresh gateway something to show: two organizations, each with a
// team and keys (created through the admin API, as an operator would), real
// traffic through the gateway with each key (several models, a stream, a
// route with a reference model), then waits until the ledger has every row.
// Prints what the browser test needs as JSON.
//
//   node seed.mjs URL MASTER_KEY > seed.json

const [base, master] = process.argv.slice(2);
if (!base || !master) {
  console.error('usage: node seed.mjs URL MASTER_KEY');
  process.exit(2);
}

async function call(method, path, key, body, extra = {}) {
  const resp = await fetch(base + path, {
    method,
    headers: { Authorization: `Bearer ${key}`, 'Content-Type': 'application/json', ...extra },
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(10_000),
  });
  const text = await resp.text();
  if (!resp.ok) throw new Error(`${method} ${path}: ${resp.status} ${text}`);
  return text;
}

const admin = async (path, body) => JSON.parse(await call('POST', path, master, body));

const monthly = (usd, enforcement) => ({ budget: { limit_usd: usd, period: 'monthly', enforcement } });

// Tenancy.
const acme = await admin('/admin/orgs', {
  name: 'Acme Corp',
  budget: { limit_usd: 0.1, period: 'lifetime', enforcement: 'soft' },
});
const globex = await admin('/admin/orgs', { name: 'Globex Industries' });
const search = await admin('/admin/teams', { org_id: acme.id, name: 'search-relevance', ...monthly(1.5, 'hard') });
const ads = await admin('/admin/teams', { org_id: globex.id, name: 'ads-platform', ...monthly(40, 'hard') });
const searchCi = await admin('/admin/keys', {
  team_id: search.id,
  name: 'search-ci',
  budget: { limit_usd: 0.5, period: 'daily', enforcement: 'hard' },
});
const searchOld = await admin('/admin/keys', { team_id: search.id, name: 'search-laptop' });
const adsBot = await admin('/admin/keys', { team_id: ads.id, name: 'ads-bot' });

// Traffic: each request is one ledger row. Some belong to agent sessions:
// one named explicitly, one the way Claude Code names its own.
const SESSION_A = 'search-reindex-task';
const SESSION_B = 'ads-claude-code-session-77';
async function chat(key, model, stream = false, headers = {}) {
  const body = { model, max_tokens: 1024, messages: [{ role: 'user', content: `Summarise the quarter for ${model}.` }] };
  if (stream) Object.assign(body, { stream: true, stream_options: { include_usage: true } });
  const text = await call('POST', '/v1/chat/completions', key, body, headers);
  if (stream && !text.includes('[DONE]')) throw new Error(`the ${model} stream did not finish: ${text}`);
}

const inA = { 'x-tollgate-session': SESSION_A };
const inB = { 'x-claude-code-session-id': SESSION_B };
const traffic = [
  [searchCi.key, 'glm-4.6', false, inA],
  [searchCi.key, 'glm-4.6', false, inA],
  [searchCi.key, 'auto'],
  [searchCi.key, 'auto'],
  [searchCi.key, 'glm-4.6', true],
  [searchOld.key, 'claude-sonnet-4-5'],
  [adsBot.key, 'claude-sonnet-4-5', false, inB],
  [adsBot.key, 'claude-sonnet-4-5', false, inB],
  [adsBot.key, 'claude-sonnet-4-5'],
  [adsBot.key, 'claude-sonnet-4-5', true],
  [adsBot.key, 'kimi-k2.5'],
  [adsBot.key, 'auto'],
  [master, 'kimi-k2.5'],
];
for (const [key, model, stream, headers] of traffic) await chat(key, model, stream, headers);
await admin(`/admin/keys/${searchOld.id}/revoke`, {});

// Wait until the ledger has every row (the writer batches them).
const deadline = Date.now() + 20_000;
for (;;) {
  const report = JSON.parse(await call('GET', '/admin/spend?group_by=team', master));
  if (report.total.requests === traffic.length) break;
  if (Date.now() > deadline) {
    throw new Error(`only ${report.total.requests} of ${traffic.length} requests reached the ledger`);
  }
  await new Promise((r) => setTimeout(r, 100));
}

process.stdout.write(JSON.stringify({
  teamA: { id: search.id, name: search.name, org: acme.name, key: searchCi.key, keyPrefix: searchCi.prefix, session: SESSION_A },
  teamB: { id: ads.id, name: ads.name, org: globex.name, key: adsBot.key, keyPrefix: adsBot.prefix, keyName: adsBot.name, session: SESSION_B },
  requests: traffic.length,
}));
