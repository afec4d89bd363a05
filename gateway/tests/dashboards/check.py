#!/usr/bin/env python3
"""Checks every Grafana dashboard in dashboards/ against live data.

run.sh starts the gateway, Prometheus and the ledger and drives the load
(drive.py); this script then, for each dashboard:

- validates its JSON shape: every panel has a datasource, targets and a
  unit; timeseries set their legend and tooltip; thresholds are explicit;
- fails when a query names a `tollgate_*` metric the gateway's /metrics does
  not export (histogram `_bucket`/`_sum`/`_count` series count as their
  family);
- evaluates every Prometheus target through Prometheus's HTTP API over the
  test's window, with Grafana's variables and `$__` intervals substituted,
  and fails when one returns no data (or only NaN);
- runs every SQL target against the ledger with Grafana's macros
  substituted, fails on an error or an empty result, and compares every
  figure with GET /admin/spend for the same window, exactly (decimal
  strings and integers);
- repeats the queries with concrete variable values (one organization and
  two of its teams; one model) and checks that the filters hold;
- cross-checks the Prometheus spend counters per team with the ledger.

Python 3 standard library only; psql runs the SQL.
"""

import argparse
import json
import math
import os
import re
import sys
import time
from decimal import Decimal
from pathlib import Path

from exact import EXACT, Exact, Names
from panels import (
    PG_UID, PROM_UID, check_provisioning, check_shape, interpolate, load_dashboards, override_names,
    panels_of, prom_expr, sql_macros,
)
from sources import Gateway, Ledger, Prometheus, exposition, metric_sum, samples

# Exported only when the gateway counts quotas in Redis.
REDIS_ONLY = {"tollgate_quota_store_up", "tollgate_quota_store_failures_total",
              "tollgate_quota_local_admissions_total"}


class Report:
    def __init__(self):
        self.failures = []
        self.notes = []
        self.counts = {}

    def fail(self, where, message):
        self.failures.append(f"{where}: {message}")

    def note(self, message):
        self.notes.append(message)

    def count(self, what, n=1):
        self.counts[what] = self.counts.get(what, 0) + n


def scenarios(state):
    """Variable selections to evaluate every query with, and the
    /admin/spend filters that select the same rows."""
    acme = state["orgs"]["acme"]
    return [
        ("All", {}, {}, None),
        ("org=acme, team=platform|research",
         {"org": ["acme"], "team": ["platform", "research"]},
         {"org_id": acme},
         {"org": {"acme"}, "team": {"platform", "research"}}),
        ("model=gpt-small", {"model": ["gpt-small"]}, {"model": "gpt-small"}, {"model": {"gpt-small"}}),
        ("route=smart", {"route": ["smart"]}, {"route": "smart"}, {"route": {"smart"}}),
    ]


def uses(text, names):
    return any(re.search(r"\$\{?" + n + r"\b", text) for n in names)


def check_variables(d, prom, window, report):
    start, end, _ = window
    variables = d["templating"]["list"]
    expected = {"org": {"acme", "globex"}, "team": {"platform", "research", "tiny"},
                "model": {"gpt-small", "claude-mid", "gpt-large"}, "route": {"smart"}}
    for v in variables:
        if v["type"] != "query":
            continue
        where = f"{d['uid']} / variable {v['name']}"
        definition = v["definition"]
        m = re.fullmatch(r"label_values\((.*),\s*(\w+)\)", definition)
        if not m:
            report.fail(where, f"{definition!r} is not label_values(selector, label)")
            continue
        selector = interpolate(m.group(1), variables, {}, "prom")
        try:
            got = set(prom.label_values(m.group(2), selector, start, end))
        except ValueError as e:
            report.fail(where, f"{definition}: {e}")
            continue
        report.count("variables evaluated")
        want = expected.get(v["name"], set())
        if not got:
            report.fail(where, f"{definition} has no values")
        elif not want <= got:
            report.fail(where, f"{definition} lacks {sorted(want - got)} (has {sorted(got)})")
        if uses(m.group(1), ["org"]):
            # Chained: the teams of the chosen organization only.
            selector = interpolate(m.group(1), variables, {"org": ["globex"]}, "prom")
            got = set(prom.label_values(m.group(2), selector, start, end))
            if got != {"tiny", "research"}:
                report.fail(where, f"with org=globex it offers {sorted(got)}, not globex's teams")


def check_labels(data, allowed):
    """Series whose org, team, model or route label falls outside the selection."""
    bad = []
    for r in data.get("result", []) if isinstance(data.get("result"), list) else []:
        metric = r.get("metric", {})
        for label, values in allowed.items():
            if label in metric and metric[label] not in values:
                bad.append(f"{label}={metric[label]}")
    return bad


def run(args):
    report = Report()
    state = json.load(open(args.state, encoding="utf-8"))
    gw = Gateway(args.gateway, args.master_key)
    prom = Prometheus(args.prometheus)
    ledger = Ledger(args.database)
    dashboards = load_dashboards(args.dashboards)
    if not dashboards:
        raise SystemExit(f"no dashboards in {args.dashboards}")

    # The ledger has every row, and Prometheus has scraped the final counts.
    settle(gw, prom, ledger, state.get("history_rows", 0), report)
    now = time.time()
    start = int(state["started"]) - 5
    end = int(now)
    step = max(1, (end - start) // 120)
    window = (start, end, step)
    names = Names(state)
    # SQL panels over the time picker's range start where the rows of the
    # past put a boundary: mid-hour, three days ago.
    sql_window = (int(state["range_from"]), end, step)
    exact = Exact(gw, names, report, now, sql_window[:2])

    check_provisioning(dashboards, report)
    text = gw.metrics()
    # Kept beside the state file, for a look with DASHBOARDS_KEEP=1.
    Path(args.state).with_name("metrics.txt").write_text(text, encoding="utf-8")
    families, values = exposition(text)
    used_metrics = set()

    for fname, d in dashboards:
        check_shape(fname, d, report)
        variables = d["templating"]["list"]
        uid = d["uid"]
        check_variables(d, prom, window, report)
        for v in variables:
            if v["type"] == "query":
                check_metric_names(f"{uid} / variable {v['name']}", v["definition"], families, used_metrics,
                                   args.redis, report)
        for p in panels_of(d):
            if p["type"] in ("row", "text"):
                continue
            where = f"{uid} / {p['title']}"
            ds = (p.get("datasource") or {}).get("uid")
            for t in p.get("targets", []):
                tw = f"{where} [{t.get('refId')}]"
                if ds == PROM_UID:
                    check_metric_names(tw, t["expr"], families, used_metrics, args.redis, report)
                    check_prom_target(tw, t, variables, window, prom, state, args.redis, report)
                elif ds == PG_UID:
                    check_sql_target(tw, (uid, p["title"]), p, t, variables, sql_window, ledger, exact, state,
                                     report)
    missing = [k for k in EXACT if not any(d["uid"] == k[0] and any(p.get("title") == k[1] for p in panels_of(d))
                                           for _, d in dashboards)]
    for k in missing:
        report.fail(f"{k[0]} / {k[1]}", "check.py checks this panel's figures, but no dashboard has it")

    counters_agree_with_ledger(gw, prom, names, state, report)

    unused = sorted(n for n in families if n.startswith("tollgate_") and n not in used_metrics)
    if unused:
        report.note("exported but on no dashboard: " + ", ".join(unused))
    return report


def check_metric_names(where, expr, families, used, redis, report):
    for name in sorted(set(re.findall(r"\btollgate_[a-zA-Z0-9_]+", expr))):
        base = name
        if name not in families:
            for suffix in ("_bucket", "_sum", "_count"):
                if name.endswith(suffix) and families.get(name[: -len(suffix)]) in ("histogram", "summary"):
                    base = name[: -len(suffix)]
        if base in families:
            used.add(base)
            report.count("metric names found in /metrics")
        elif base in REDIS_ONLY and not redis:
            report.note(f"{where}: {name} not checked (exported only with Redis, which was not running)")
        else:
            report.fail(where, f"names {name}, which the gateway's /metrics does not export")


def check_prom_target(where, t, variables, window, prom, state, redis, report):
    start, end, step = window
    for label, values, _, allowed in scenarios(state):
        if label != "All" and not uses(t["expr"], list(values)):
            continue
        try:
            expr = prom_expr(t["expr"], variables, values, window)
            if t.get("instant"):
                data = prom.instant(expr, end)
            else:
                data = prom.range(expr, start, end, step)
        except ValueError as e:
            report.fail(f"{where} ({label})", f"query failed: {e}")
            continue
        report.count("Prometheus queries evaluated")
        vals = [v for v in samples(data) if not math.isnan(v)]
        if label == "All":
            if os.environ.get("DASHBOARDS_SHOW"):
                print(f"{where}: {show(data)}", file=sys.stderr)
            if not vals:
                names = set(re.findall(r"\btollgate_\w+", t["expr"]))
                if not redis and names & REDIS_ONLY:
                    report.note(f"{where}: no data without Redis (skipped)")
                else:
                    report.fail(where, f"no data for: {expr}")
            else:
                report.count("Prometheus targets with data")
        else:
            bad = check_labels(data, allowed)
            if bad:
                report.fail(f"{where} ({label})", f"filter let through {sorted(set(bad))}")


def show(data):
    """The last value of each series, for DASHBOARDS_SHOW=1."""
    out = []
    for r in data.get("result", []):
        value = r["values"][-1][1] if "values" in r else r["value"][1]
        labels = ",".join(f"{k}={v}" for k, v in sorted(r.get("metric", {}).items()))
        out.append(f"{{{labels}}} {value}")
    return "; ".join(out) or "(no data)"


def check_sql_target(where, key, panel, t, variables, window, ledger, exact, state, report):
    start, end, _ = window
    for label, values, filters, _ in scenarios(state):
        if label != "All" and not uses(t["rawSql"], list(values)):
            continue
        if label != "All" and "route" in values:
            continue  # SQL panels filter by org, team and model only
        try:
            sql = interpolate(sql_macros(t["rawSql"], start, end), variables, values, "sql")
            columns, rows = ledger.query(sql)
        except ValueError as e:
            report.fail(f"{where} ({label})", f"SQL failed: {e}")
            continue
        report.count("SQL queries run")
        if not rows:
            report.fail(f"{where} ({label})", "no rows")
            continue
        if t.get("format") == "time_series" and not {"time", "value"} <= set(columns):
            report.fail(where, f"a time series needs time and value columns, has {columns}")
        if label == "All":
            for name in override_names(panel):
                if name not in columns:
                    report.fail(where, f"styles column {name!r}, which the query does not return")
        check = EXACT.get(key)
        if check is None:
            report.fail(where, "a SQL panel whose figures check.py does not compare with /admin/spend")
        else:
            check(exact, f"{where} ({label})", rows, filters)


def settle(gw, prom, ledger, replayed, report, timeout=30):
    """Waits until the ledger holds every row (the load's and the `replayed`
    rows of the past) and Prometheus has scraped the gateway's final counts."""
    deadline = time.time() + timeout
    while True:
        _, v = exposition(gw.metrics())
        appended = metric_sum(v, "tollgate_ledger_rows", state="appended")
        written = metric_sum(v, "tollgate_ledger_rows", state="inserted") + \
            metric_sum(v, "tollgate_ledger_rows", state="duplicate")
        backlog = metric_sum(v, "tollgate_ledger_backlog_bytes")
        if appended > 0 and written >= appended + replayed and backlog == 0:
            break
        if time.time() > deadline:
            raise SystemExit(f"the ledger did not catch up: appended {appended}, written {written}, backlog {backlog}")
        time.sleep(0.2)
    _, rows = ledger.query("SELECT count(*) AS n FROM ledger")
    if int(rows[0]["n"]) != int(appended) + replayed:
        report.fail("ledger", f"{rows[0]['n']} rows in the ledger, the gateway appended {int(appended)} "
                              f"and replayed {replayed}")
    # The rows of the past reached the rollup, in whole past hours, and two
    # of them straddle the SQL range's start inside one rollup hour.
    if replayed:
        _, rows = ledger.query("SELECT count(*) AS n FROM spend_hourly "
                               "WHERE hour < (extract(epoch FROM now())::bigint / 3600) * 3600000")
        if int(rows[0]["n"]) == 0:
            report.fail("ledger", "the rollup has no past hours: the replayed rows did not reach it")
    requests = metric_sum(v, "tollgate_requests_total")
    read_at = time.time()
    while True:
        try:
            got = samples(prom.instant("sum(tollgate_requests_total)", time.time()))
            last = samples(prom.instant("max(timestamp(tollgate_requests_total))", time.time()))
        except ValueError:
            got, last = [], []
        if got and got[0] == requests and last and last[0] > read_at + 1:
            return
        if time.time() > deadline:
            raise SystemExit(f"Prometheus did not scrape the final counts (has {got}, gateway {requests})")
        time.sleep(0.25)


def counters_agree_with_ledger(gw, prom, names, state, report):
    """The spend counters per team equal the ledger (to float precision):
    proves the org and team labels name the right tenants."""
    where = "counters vs ledger"
    # The load's rows only: the replayed rows of the past never went through
    # the counters.
    since = int(state["started"]) - 2
    ledger = {names.group("team", r["group"]): r for r in gw.spend("team", since)}
    checks = [
        ("tollgate_cost_usd_total", lambda r: float(Decimal(r["cost_usd"]))),
        ("tollgate_reference_cost_usd_total", lambda r: float(Decimal(r["reference_cost_usd"]))),
        ('tollgate_tokens_total{kind!="reasoning"}',
         lambda r: r["input_tokens"] + r["cached_input_tokens"] + r["cache_write_tokens"] + r["output_tokens"]),
    ]
    for metric, want_of in checks:
        try:
            data = prom.instant(f"sum by (org, team) ({metric})", time.time())
        except ValueError as e:
            report.fail(where, f"{metric}: {e}")
            continue
        got = {(r["metric"].get("org", ""), r["metric"].get("team", "")): float(r["value"][1]) for r in data["result"]}
        for k, r in ledger.items():
            want = want_of(r)
            have = got.get(k)
            if have is None and want == 0:
                continue
            if have is None or abs(have - want) > 1e-9 + 1e-9 * abs(want):
                report.fail(where, f"{metric} for {'/'.join(k)}: Prometheus {have}, ledger {want}")
            else:
                report.count("counters equal to the ledger")
        extra = set(got) - set(ledger)
        if extra and any(got[k] for k in extra):
            report.fail(where, f"{metric} has teams the ledger has not: {sorted(extra)}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gateway", required=True)
    ap.add_argument("--master-key", required=True)
    ap.add_argument("--prometheus", required=True)
    ap.add_argument("--database", required=True)
    ap.add_argument("--state", required=True)
    ap.add_argument("--dashboards", required=True)
    redis = ap.add_mutually_exclusive_group(required=True)
    redis.add_argument("--redis", dest="redis", action="store_true")
    redis.add_argument("--no-redis", dest="redis", action="store_false")
    args = ap.parse_args()

    started = time.time()
    report = run(args)
    for n in report.notes:
        print(f"dashboards: note: {n}", file=sys.stderr)
    summary = ", ".join(f"{v} {k}" for k, v in sorted(report.counts.items()))
    print(f"dashboards: {summary} ({time.time() - started:.1f}s)", file=sys.stderr)
    if report.failures:
        print(f"dashboards: {len(report.failures)} FAILED:", file=sys.stderr)
        for f in report.failures:
            print(f"  - {f}", file=sys.stderr)
        sys.exit(1)
    skipped = " (Redis panels skipped: no Redis)" if not args.redis else ""
    print(f"dashboards: every panel has data; every exact figure equals /admin/spend{skipped}", file=sys.stderr)


if __name__ == "__main__":
    main()
