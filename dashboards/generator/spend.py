"""The Spend dashboard: for finance and the platform lead."""

from .grafana import (
    DS_VARS_PG, MODEL_VAR, ORG_VAR, OT, OTM, RED_BELOW_ZERO, TEAM_VAR, bargauge, column, dashboard,
    prom, row, sql, stat, table, text, timeseries,
)
from .ledger_sql import (
    DAILY_BY_TEAM, RANGE_BY_TEAM, SAVINGS_BY_ROUTE, SPEND_COLUMNS, STAT_MONTH, STAT_REQUESTS, STAT_SAVED, STAT_TODAY,
    TOP_KEYS, mtd_by,
)


def spend_dashboard():
    usd_h = "currencyUSD"
    panels = [
        text("""
**Exact figures** (top) come from the ledger in PostgreSQL: the hourly rollup for whole hours plus the
current hour's rows, in exact picodollars, UTC calendar days and months, the same figures as
`GET /admin/spend`. They ignore the time picker. **Rates** (below) come from Prometheus counters: live, but
approximate and reset when a gateway restarts. Master-key traffic shows as organization and team `master`.
""", size=(24, 3)),
        row("This month, exact (ledger)"),
        stat("Spend today", "Cost of every request since 00:00 UTC today, from the ledger (exact).",
             [sql(STAT_TODAY)], "currencyUSD", 6),
        stat("Spend this month", "Cost of every request since the 1st of this month, 00:00 UTC, from the ledger (exact).",
             [sql(STAT_MONTH)], "currencyUSD", 6),
        stat("Saved this month vs reference models",
             "What the same usage would have cost on each route's reference model, minus what it cost (exact). "
             "Negative: routing cost more than the reference.",
             [sql(STAT_SAVED)], "currencyUSD", 6, thresholds=RED_BELOW_ZERO),
        stat("Requests this month", "Upstream attempts recorded in the ledger this month (a fallback counts each attempt).",
             [sql(STAT_REQUESTS)], "short", 0),
        table("Spend by team: today and month to date",
              "Exact spend per team from the ledger. Equals GET /admin/spend?group_by=team for the same window.",
              [sql(mtd_by(["org", "team"], ["Organization", "Team"]))], SPEND_COLUMNS,
              sort="Month to date (USD)", size=(24, 8), footer=True),
        table("Spend by organization: today and month to date",
              "Exact spend per organization. Equals GET /admin/spend?group_by=org.",
              [sql(mtd_by(["org"], ["Organization"]))], SPEND_COLUMNS,
              sort="Month to date (USD)", size=(12, 7), footer=True),
        table("Spend by model: today and month to date",
              "Exact spend per configured model that served the request. Equals GET /admin/spend?group_by=model.",
              [sql(mtd_by(["model"], ["Model"]))], SPEND_COLUMNS,
              sort="Month to date (USD)", size=(12, 7), footer=True),
        table("Top keys this month",
              "The 20 virtual keys that spent most this month (exact). Equals GET /admin/spend?group_by=key.",
              [sql(TOP_KEYS)],
              [column("Requests", "short", 0), column("Month to date (USD)", "currencyUSD", 6, display="color-text"),
               column("Month to date (exact USD)", "string")],
              sort="Month to date (USD)", size=(12, 9)),
        table("Savings against reference models this month",
              "Per route: cost, what the same usage would have cost on the route's reference model, and the "
              "difference (exact). Requests to a model directly, or to a route without a reference, save nothing. "
              "Equals GET /admin/spend?group_by=route.",
              [sql(SAVINGS_BY_ROUTE)],
              [column("Requests", "short", 0), column("Cost (USD)", "currencyUSD", 6),
               column("On reference models (USD)", "currencyUSD", 6),
               column("Saved (USD)", "currencyUSD", 6, RED_BELOW_ZERO, display="color-text"),
               column("Saved (share)", "percentunit", 1)],
              sort="Saved (USD)", size=(12, 9)),
        row("Over the selected range, exact (ledger)"),
        timeseries("Daily spend by team (ledger)",
                   "Exact cost per UTC day and team over the time picker's range. Equals GET /admin/spend?group_by=day per team.",
                   [sql(DAILY_BY_TEAM, fmt="time_series")], "currencyUSD", 6, stack=True, draw="bars",
                   calcs=("sum",), size=(14, 8)),
        table("Spend in the selected range by team (ledger)",
              "Exact cost per team between the time picker's start and end.",
              [sql(RANGE_BY_TEAM)],
              [column("Requests", "short", 0), column("Cost (USD)", "currencyUSD", 6, display="color-text"),
               column("Saved vs reference (USD)", "currencyUSD", 6)],
              sort="Cost (USD)", size=(10, 8)),
        row("Live rates (Prometheus counters)"),
        timeseries("Spend rate by organization", "USD per hour, from tollgate_cost_usd_total.",
                   [prom(f"sum by (org) (rate(tollgate_cost_usd_total{{{OTM}}}[$__rate_interval])) * 3600", "{{org}}")],
                   usd_h, 4, size=(8, 8)),
        timeseries("Spend rate by team", "USD per hour, from tollgate_cost_usd_total.",
                   [prom(f"sum by (org, team) (rate(tollgate_cost_usd_total{{{OTM}}}[$__rate_interval])) * 3600",
                         "{{org}} / {{team}}")],
                   usd_h, 4, size=(8, 8)),
        timeseries("Spend rate by model", "USD per hour, from tollgate_cost_usd_total.",
                   [prom(f"sum by (model) (rate(tollgate_cost_usd_total{{{OTM}}}[$__rate_interval])) * 3600", "{{model}}")],
                   usd_h, 4, size=(8, 8)),
        bargauge("Spend in the selected range by team (counters)",
                 "increase() of tollgate_cost_usd_total over the range: approximate (extrapolated, and a restart "
                 "loses the in-flight part). The ledger tables above are exact.",
                 [prom(f"sum by (org, team) (increase(tollgate_cost_usd_total{{{OTM}}}[$__range]))",
                       "{{org}} / {{team}}", instant=True, fmt="time_series")],
                 "currencyUSD", 4, size=(8, 8)),
        timeseries("Tokens by kind", "Tokens per second by kind. Reasoning tokens are a part of output tokens.",
                   [prom(f"sum by (kind) (rate(tollgate_tokens_total{{{OTM}}}[$__rate_interval]))", "{{kind}}")],
                   "suffix: tok/s", 1, size=(8, 8)),
        timeseries("Savings rate vs reference models",
                   "USD per hour: tollgate_reference_cost_usd_total minus tollgate_cost_usd_total, per team "
                   "(traffic without a reference counts equally on both sides).",
                   [prom(f"(sum by (org, team) (rate(tollgate_reference_cost_usd_total{{{OT}}}[$__rate_interval]))"
                         f" - sum by (org, team) (rate(tollgate_cost_usd_total{{{OT}}}[$__rate_interval]))) * 3600",
                         "{{org}} / {{team}}")],
                   usd_h, 4, min_=None, size=(8, 8)),
    ]
    return dashboard(
        "tollgate-spend", "Tollgate / Spend",
        "What each organization, team, model and key spends: exact month-to-date figures from the ledger, live rates from Prometheus.",
        ["spend", "finance"], DS_VARS_PG + [ORG_VAR, TEAM_VAR, MODEL_VAR], panels, time_from="now-7d", refresh="1m")
