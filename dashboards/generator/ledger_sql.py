"""SQL over Tollgate's ledger for the PostgreSQL panels.

The ledger keeps exact picodollars (1e-12 USD). Reports read whole hours
from the hourly rollup (`spend_hourly`) and the partial hours at either end
from the rows (`ledger`), exactly as GET /admin/spend does
(billing/src/reports.rs), so these figures equal its figures. Names come
from joins to orgs, teams and api_keys, so the panels filter by the same
organization and team names as the Prometheus panels; master-key traffic
is organization and team `master`, key `master key`.
"""

from .grafana import column

MS_NOW = "(extract(epoch FROM now()) * 1000)::bigint + 1"
MS_DAY = "(extract(epoch FROM date_trunc('day', now() AT TIME ZONE 'UTC')) * 1000)::bigint"
MS_MONTH = "(extract(epoch FROM date_trunc('month', now() AT TIME ZONE 'UTC')) * 1000)::bigint"
# The macros expand to integer literals: widen them before scaling to ms.
MS_FROM = "$__unixEpochFrom()::bigint * 1000"
MS_TO = "$__unixEpochTo()::bigint * 1000"


def spend_cte(from_ms, to_ms):
    """`spend`: one row per rollup hour or ledger row in [from_ms, to_ms),
    with org, team and key names; filtered by the dashboard's variables.
    Master-key traffic is org and team `master`, key `master key`."""
    return f"""
WITH range AS (
  SELECT f, t, ((f + 3599999) / 3600000) * 3600000 AS wf, (t / 3600000) * 3600000 AS wt
  FROM (SELECT ({from_ms})::bigint AS f, ({to_ms})::bigint AS t) AS given
),
bounds AS (
  -- Whole hours [wf, wt) from the rollup; the rows before and after them
  -- ([f, lo) and [hi, t)) from the ledger. No whole hour: all rows.
  SELECT f, t, wf, wt,
         CASE WHEN wf < wt THEN wf ELSE t END AS lo,
         CASE WHEN wf < wt THEN wt ELSE t END AS hi
  FROM range
),
parts AS (
  SELECT s.hour AS at_ms, s.org_id, s.team_id, s.key_id, s.route, s.model,
         s.requests, s.input_tokens + s.cached_input_tokens + s.cache_write_tokens AS prompt_tokens,
         s.output_tokens, s.cost_picousd, s.reference_cost_picousd
  FROM spend_hourly s, bounds b
  WHERE s.hour >= b.wf AND s.hour < b.wt
  UNION ALL
  SELECT l.started_at, COALESCE(l.org_id, ''), COALESCE(l.team_id, ''), COALESCE(l.key_id, ''), l.route, l.requested_model,
         1, l.input_tokens + l.cached_input_tokens + l.cache_write_tokens,
         l.output_tokens, l.cost_picousd, COALESCE(l.reference_cost_picousd, l.cost_picousd)
  FROM ledger l, bounds b
  WHERE (l.started_at >= b.f AND l.started_at < b.lo) OR (l.started_at >= b.hi AND l.started_at < b.t)
),
spend AS (
  SELECT p.*, to_timestamp(p.at_ms / 1000) AS at_time,
         COALESCE(o.name, 'master') AS org, COALESCE(t.name, 'master') AS team,
         CASE WHEN p.key_id = '' THEN 'master key' ELSE COALESCE(k.name, k.key_prefix) END AS key_name,
         k.key_prefix
  FROM parts p
  LEFT JOIN orgs o ON o.id = p.org_id
  LEFT JOIN teams t ON t.id = p.team_id
  LEFT JOIN api_keys k ON k.id = p.key_id
  WHERE COALESCE(o.name, 'master') ~ '^(${{org:regex}})$'
    AND COALESCE(t.name, 'master') ~ '^(${{team:regex}})$'
    AND p.model ~ '^(${{model:regex}})$'
)""".strip("\n")


def usd(col):
    """Picodollars to an exact USD numeric (12 places)."""
    return f"round(SUM({col})::numeric / 1000000000000, 12)"


MONTH = spend_cte(MS_MONTH, MS_NOW)
RANGE = spend_cte(MS_FROM, MS_TO)

# Spend per group: today and month to date in one pass (the day starts on
# an hour, so today's rows are the month's rows at or after it).
def mtd_by(group_cols, group_names, order="\"Month to date (USD)\" DESC"):
    select = ", ".join(f"{c} AS \"{n}\"" for c, n in zip(group_cols, group_names))
    by = ", ".join(group_cols)
    return f"""
{MONTH}
SELECT {select},
       SUM(requests) AS "Requests",
       SUM(prompt_tokens) AS "Input tokens",
       SUM(output_tokens) AS "Output tokens",
       round(COALESCE(SUM(cost_picousd) FILTER (WHERE at_ms >= {MS_DAY}), 0)::numeric / 1000000000000, 12) AS "Today (USD)",
       {usd("cost_picousd")} AS "Month to date (USD)",
       {usd("reference_cost_picousd - cost_picousd")} AS "Saved vs reference (USD)",
       {usd("cost_picousd")}::text AS "Month to date (exact USD)"
FROM spend
GROUP BY {by}
ORDER BY {order}, {by}
"""


SPEND_COLUMNS = [
    column("Requests", "short", 0),
    column("Input tokens", "short", 0),
    column("Output tokens", "short", 0),
    column("Today (USD)", "currencyUSD", 6),
    column("Month to date (USD)", "currencyUSD", 6, display="color-text"),
    column("Saved vs reference (USD)", "currencyUSD", 6),
    column("Month to date (exact USD)", "string"),
]

STAT_TODAY = f"""
{MONTH}
SELECT round(COALESCE(SUM(cost_picousd) FILTER (WHERE at_ms >= {MS_DAY}), 0)::numeric / 1000000000000, 12) AS "Today"
FROM spend
"""
STAT_MONTH = f"""
{MONTH}
SELECT round(COALESCE(SUM(cost_picousd), 0)::numeric / 1000000000000, 12) AS "Month to date"
FROM spend
"""
STAT_SAVED = f"""
{MONTH}
SELECT round(COALESCE(SUM(reference_cost_picousd - cost_picousd), 0)::numeric / 1000000000000, 12) AS "Saved this month"
FROM spend
"""
STAT_REQUESTS = f"""
{MONTH}
SELECT COALESCE(SUM(requests), 0) AS "Requests this month"
FROM spend
"""

TOP_KEYS = f"""
{MONTH}
SELECT key_name AS "Key", COALESCE(key_prefix, '') AS "Prefix", org AS "Organization", team AS "Team",
       SUM(requests) AS "Requests",
       {usd("cost_picousd")} AS "Month to date (USD)",
       {usd("cost_picousd")}::text AS "Month to date (exact USD)"
FROM spend
GROUP BY key_id, key_name, key_prefix, org, team
ORDER BY SUM(cost_picousd) DESC, key_name
LIMIT 20
"""

SAVINGS_BY_ROUTE = f"""
{MONTH}
SELECT route AS "Route",
       SUM(requests) AS "Requests",
       {usd("cost_picousd")} AS "Cost (USD)",
       {usd("reference_cost_picousd")} AS "On reference models (USD)",
       {usd("reference_cost_picousd - cost_picousd")} AS "Saved (USD)",
       CASE WHEN SUM(reference_cost_picousd) > 0
            THEN SUM(reference_cost_picousd - cost_picousd)::float8 / SUM(reference_cost_picousd)
            ELSE 0 END AS "Saved (share)"
FROM spend
GROUP BY route
ORDER BY SUM(reference_cost_picousd - cost_picousd) DESC, route
"""

DAILY_BY_TEAM = f"""
{RANGE}
SELECT $__timeGroupAlias(at_time, '1d'), org || ' / ' || team AS metric,
       {usd("cost_picousd")} AS value
FROM spend
GROUP BY 1, 2
ORDER BY 1, 2
"""

RANGE_BY_TEAM = f"""
{RANGE}
SELECT org AS "Organization", team AS "Team",
       SUM(requests) AS "Requests",
       {usd("cost_picousd")} AS "Cost (USD)",
       {usd("reference_cost_picousd - cost_picousd")} AS "Saved vs reference (USD)"
FROM spend
GROUP BY org, team
ORDER BY SUM(cost_picousd) DESC, org, team
"""
