"""The Budgets dashboard: for the platform lead."""

from .grafana import (
    BURN_VAR, DS_VARS, ORG_VAR, OT, RED_BELOW_ZERO, TEAM_VAR, bargauge, column, dashboard,
    merge_table, prom, row, steps, table, text, timeseries,
)


def budgets_dashboard():
    team_sel = OT
    org_sel = 'org=~"$org"'

    def usd_table(level, sel, by):
        g = f"max by ({by}) "
        burn = (f"sum by ({by}) (rate(tollgate_cost_usd_total{{{sel}}}[$burn]))")
        remaining = f"{g}(tollgate_budget_usd{{level=\"{level}\", kind=\"remaining\", {sel}}})"
        reset = f"{g}(tollgate_budget_reset_timestamp_seconds{{level=\"{level}\", {sel}}})"
        limit = f"{g}(tollgate_budget_usd{{level=\"{level}\", kind=\"limit\", {sel}}})"
        return [
            prom(limit, ref="A", instant=True),
            prom(f"{g}(tollgate_budget_usd{{level=\"{level}\", kind=\"spent\", {sel}}})", ref="B", instant=True),
            prom(f"{g}(tollgate_budget_usd{{level=\"{level}\", kind=\"reserved\", {sel}}})", ref="C", instant=True),
            prom(remaining, ref="D", instant=True),
            prom(f"{g}(tollgate_budget_usd{{level=\"{level}\", kind=\"spent\", {sel}}}) / on ({by}) ({limit} > 0)",
                 ref="E", instant=True),
            prom(f"({burn} * 86400) and on ({by}) {limit}", ref="F", instant=True),
            prom(f"(time() + {remaining} / on ({by}) ({burn} > 0)) * 1000", ref="G", instant=True),
            prom(f"{reset} * 1000", ref="H", instant=True),
            prom(f"{remaining} - on ({by}) ({burn} * on ({by}) ({reset} - time()))", ref="I", instant=True),
        ]

    usd_cols = ["Limit", "Spent", "Held", "Remaining", "Used", "Burn per day", "Exhausted at (projected)",
                "Resets at", "Left at reset (projected)"]
    used_thresholds = steps((0.8, "orange"), (1, "red"))
    budget_columns = [
        column("Limit", "currencyUSD", 4),
        column("Spent", "currencyUSD", 6),
        column("Held", "currencyUSD", 6),
        column("Remaining", "currencyUSD", 6),
        column("Used", "percentunit", 1, used_thresholds, display="color-background"),
        column("Burn per day", "currencyUSD", 4),
        column("Exhausted at (projected)", "dateTimeAsIso"),
        column("Resets at", "dateTimeAsIso"),
        column("Left at reset (projected)", "currencyUSD", 4, RED_BELOW_ZERO, display="color-text"),
    ]

    def token_table(level, sel, by):
        g = f"max by ({by}) "
        return [
            prom(f"{g}(tollgate_budget_tokens{{level=\"{level}\", kind=\"{k}\", {sel}}})", ref=r, instant=True)
            for r, k in zip("ABCD", ["limit", "spent", "reserved", "remaining"])
        ]

    token_columns = [column(n, "short", 0) for n in ["Limit", "Spent", "Held", "Remaining"]]

    panels = [
        text("""
Budgets as each gateway's quota engine counts them this period (shared through Redis when configured).
**Held** is what requests in flight have reserved. **Burn** is the spend rate over the `burn` window (a variable);
the projection divides what remains by it and compares with the reset. Refusals are requests a budget or
rate limit turned away.
""", size=(24, 2)),
        row("Teams"),
        table("Team budgets (USD)", "Per team this period: limit, spent, held, remaining, burn rate, projected exhaustion and reset.",
              usd_table("team", team_sel, "org, team"), budget_columns, sort="Used",
              transformations=merge_table(usd_cols), size=(24, 8)),
        bargauge("Team budget used", "Spent ÷ limit this period; orange from 80 %, red at 100 %.",
                 [prom(f"max by (org, team) (tollgate_budget_usd{{level=\"team\", kind=\"spent\", {team_sel}}})"
                       f" / on (org, team) (max by (org, team) (tollgate_budget_usd{{level=\"team\", kind=\"limit\", {team_sel}}}) > 0)",
                       "{{org}} / {{team}}", instant=True, fmt="time_series")],
                 "percentunit", 1, thresholds=used_thresholds, max_=1, size=(8, 8)),
        timeseries("Team spend against limit", "Spent (solid) and limit per team this period.",
                   [prom(f"max by (org, team) (tollgate_budget_usd{{level=\"team\", kind=\"spent\", {team_sel}}})",
                         "{{org}} / {{team}} spent", ref="A"),
                    prom(f"max by (org, team) (tollgate_budget_usd{{level=\"team\", kind=\"limit\", {team_sel}}})",
                         "{{org}} / {{team}} limit", ref="B")],
                   "currencyUSD", 4, size=(8, 8),
                   overrides=[{"matcher": {"id": "byRegexp", "options": ".* limit$"},
                               "properties": [{"id": "custom.lineStyle", "value": {"fill": "dash", "dash": [10, 10]}}]}]),
        timeseries("Team burn rate", "USD per day, over the burn window, per team with traffic.",
                   [prom(f"sum by (org, team) (rate(tollgate_cost_usd_total{{{team_sel}}}[$burn])) * 86400",
                         "{{org}} / {{team}}")],
                   "currencyUSD", 4, size=(8, 8)),
        table("Team token budgets", "Token budgets per team this period.",
              token_table("team", team_sel, "org, team"), token_columns, sort="Spent",
              transformations=merge_table(["Limit", "Spent", "Held", "Remaining"]), size=(24, 6)),
        row("Organizations"),
        table("Organization budgets (USD)", "Per organization this period (the budget on the organization itself, over all its teams).",
              usd_table("organization", org_sel, "org"), budget_columns, sort="Used",
              transformations=merge_table(usd_cols), size=(24, 6)),
        bargauge("Organization budget used", "Spent ÷ limit this period.",
                 [prom(f"max by (org) (tollgate_budget_usd{{level=\"organization\", kind=\"spent\", {org_sel}}})"
                       f" / on (org) (max by (org) (tollgate_budget_usd{{level=\"organization\", kind=\"limit\", {org_sel}}}) > 0)",
                       "{{org}}", instant=True, fmt="time_series")],
                 "percentunit", 1, thresholds=used_thresholds, max_=1, size=(12, 6)),
        timeseries("Organization burn rate", "USD per day, over the burn window.",
                   [prom(f"sum by (org) (rate(tollgate_cost_usd_total{{{org_sel}}}[$burn])) * 86400", "{{org}}")],
                   "currencyUSD", 4, size=(12, 6)),
        row("Refusals and alerts"),
        timeseries("Refusals by reason", "Requests refused per second by reason (budget, rpm, tpm, concurrency, unavailable) and level.",
                   [prom(f"sum by (reason, level) (rate(tollgate_quota_rejections_total{{{team_sel}}}[$__rate_interval]))",
                         "{{reason}} ({{level}})")],
                   "reqps", 3, size=(8, 8)),
        bargauge("Refusals in the selected range by team", "Requests refused over the range, per team.",
                 [prom(f"sum by (org, team) (increase(tollgate_quota_rejections_total{{{team_sel}}}[$__range]))",
                       "{{org}} / {{team}}", instant=True, fmt="time_series")],
                 "short", 0, thresholds=steps((1, "orange")), size=(8, 8)),
        bargauge("Budget alerts in the selected range", "Budgets crossing an alert threshold (quotas.alert_thresholds), by level, unit and threshold.",
                 [prom("sum by (level, unit, threshold) (increase(tollgate_budget_alerts_total[$__range]))",
                       "{{level}} {{unit}} ≥ {{threshold}}", instant=True, fmt="time_series")],
                 "short", 0, thresholds=steps((1, "orange")), size=(8, 8)),
    ]
    return dashboard(
        "tollgate-budgets", "Tollgate / Budgets",
        "Each team's and organization's budget: spent, held, remaining, burn rate, projected exhaustion, refusals.",
        ["budgets"], DS_VARS + [ORG_VAR, TEAM_VAR, BURN_VAR], panels, time_from="now-24h")
