"""Exact figures: what the SQL panels show, compared with GET /admin/spend
for the same window and filters, as decimals and integers."""

import datetime as dt
from decimal import Decimal


def day_month_start(now):
    t = dt.datetime.fromtimestamp(now, dt.timezone.utc)
    day = dt.datetime(t.year, t.month, t.day, tzinfo=dt.timezone.utc)
    month = dt.datetime(t.year, t.month, 1, tzinfo=dt.timezone.utc)
    return int(day.timestamp()), int(month.timestamp())


class Names:
    """Group values of /admin/spend (ids) to the names SQL panels show."""

    def __init__(self, state):
        self.org = {v: k for k, v in state["orgs"].items()}
        self.team = {t["id"]: (t["org"], t["name"]) for t in state["teams"].values()}
        self.key = {k["id"]: name for name, k in state["keys"].items()}

    def group(self, group_by, g):
        if group_by == "org":
            return ("master",) if g is None else (self.org[g],)
        if group_by == "team":
            return ("master", "master") if g is None else self.team[g]
        if group_by == "key":
            return ("master key",) if g is None else (self.key[g],)
        return (g,)


def dec(v):
    return Decimal(v) if v not in (None, "") else Decimal(0)


def compare(report, where, label, got, want):
    if got != want:
        report.fail(where, f"{label}: dashboard shows {got}, /admin/spend says {want}")
    else:
        report.count("exact figures equal /admin/spend")


class Exact:
    """Compares SQL panels with GET /admin/spend for the same window."""

    def __init__(self, gw, names, report, now, window):
        self.gw, self.names, self.report = gw, names, report
        self.day, self.month = day_month_start(now)
        self.window = window

    def rows(self, group_by, from_s, to_s, filters):
        out = {}
        for r in self.gw.spend(group_by, from_s, to_s, **filters):
            out[self.names.group(group_by, r["group"])] = r
        return out

    def total(self, from_s, filters):
        rows = self.gw.spend("provider", from_s, None, **filters)
        t = {"requests": 0, "cost": 0, "reference": 0}
        for r in rows:
            t["requests"] += r["requests"]
            t["cost"] += r["cost_picousd"]
            t["reference"] += r["reference_cost_picousd"]
        return t

    @staticmethod
    def usd(pico):
        return Decimal(pico) / Decimal(10**12)

    def stat(self, where, rows, filters, window, what):
        if len(rows) != 1:
            self.report.fail(where, f"a stat query must return one row, got {len(rows)}")
            return
        (value,) = rows[0].values()
        t = self.total(self.day if window == "day" else self.month, filters)
        if what == "requests":
            compare(self.report, where, "requests", int(dec(value)), t["requests"])
        elif what == "cost":
            compare(self.report, where, "cost", dec(value), self.usd(t["cost"]))
        else:
            compare(self.report, where, "savings", dec(value), self.usd(t["reference"] - t["cost"]))

    def by_group(self, where, rows, filters, group_by, key_cols):
        month = self.rows(group_by, self.month, None, filters)
        today = self.rows(group_by, self.day, None, filters)
        got = {tuple(r[c] for c in key_cols): r for r in rows}
        if set(got) != set(month):
            self.report.fail(where, f"groups {sorted(got)} differ from /admin/spend's {sorted(month)}")
        for k in sorted(set(got) & set(month)):
            r, m = got[k], month[k]
            label = "/".join(k)
            compare(self.report, where, f"{label} requests", int(dec(r["Requests"])), m["requests"])
            if "Input tokens" in r:
                compare(self.report, where, f"{label} input tokens", int(dec(r["Input tokens"])),
                        m["input_tokens"] + m["cached_input_tokens"] + m["cache_write_tokens"])
                compare(self.report, where, f"{label} output tokens", int(dec(r["Output tokens"])), m["output_tokens"])
            compare(self.report, where, f"{label} month to date", dec(r["Month to date (USD)"]), dec(m["cost_usd"]))
            compare(self.report, where, f"{label} exact month to date", r["Month to date (exact USD)"], m["cost_usd"])
            if "Today (USD)" in r:
                want = dec(today[k]["cost_usd"]) if k in today else Decimal(0)
                compare(self.report, where, f"{label} today", dec(r["Today (USD)"]), want)
            if "Saved vs reference (USD)" in r:
                compare(self.report, where, f"{label} saved", dec(r["Saved vs reference (USD)"]), dec(m["savings_usd"]))
        if group_by == "key":
            order = [tuple(r[c] for c in key_cols) for r in rows]
            costs = [dec(got[k]["Month to date (USD)"]) for k in order]
            if costs != sorted(costs, reverse=True):
                self.report.fail(where, "keys are not in order of spend")
        if not any(dec(m["cost_usd"]) > 0 for m in month.values()) and month:
            self.report.fail(where, "every figure is zero: the load did not reach it")

    def by_route(self, where, rows, filters):
        month = self.rows("route", self.month, None, filters)
        got = {(r["Route"],): r for r in rows}
        if set(got) != set(month):
            self.report.fail(where, f"routes {sorted(got)} differ from /admin/spend's {sorted(month)}")
        for k in sorted(set(got) & set(month)):
            r, m = got[k], month[k]
            compare(self.report, where, f"{k[0]} requests", int(dec(r["Requests"])), m["requests"])
            compare(self.report, where, f"{k[0]} cost", dec(r["Cost (USD)"]), dec(m["cost_usd"]))
            compare(self.report, where, f"{k[0]} reference", dec(r["On reference models (USD)"]),
                    dec(m["reference_cost_usd"]))
            compare(self.report, where, f"{k[0]} saved", dec(r["Saved (USD)"]), dec(m["savings_usd"]))

    def range_by_team(self, where, rows, filters):
        frm, to = self.window
        want = self.rows("team", frm, to, filters)
        got = {(r["Organization"], r["Team"]): r for r in rows}
        if set(got) != set(want):
            self.report.fail(where, f"teams {sorted(got)} differ from /admin/spend's {sorted(want)}")
        for k in sorted(set(got) & set(want)):
            compare(self.report, where, f"{'/'.join(k)} requests", int(dec(got[k]["Requests"])), want[k]["requests"])
            compare(self.report, where, f"{'/'.join(k)} cost", dec(got[k]["Cost (USD)"]), dec(want[k]["cost_usd"]))
            compare(self.report, where, f"{'/'.join(k)} saved", dec(got[k]["Saved vs reference (USD)"]),
                    dec(want[k]["savings_usd"]))

    def daily(self, where, rows, filters):
        frm, to = self.window
        want = {r["group"]: dec(r["cost_usd"]) for r in self.gw.spend("day", frm, to, **filters)}
        got = {}
        for r in rows:
            day = dt.datetime.fromtimestamp(int(dec(r["time"])), dt.timezone.utc)
            key = day.strftime("%Y-%m-%dT%H:%M:%S.000Z")
            got[key] = got.get(key, Decimal(0)) + dec(r["value"])
        compare(self.report, where, "cost per day", got, want)
        per_team = {}
        for r in rows:
            per_team[r["metric"]] = per_team.get(r["metric"], Decimal(0)) + dec(r["value"])
        teams = self.rows("team", frm, to, filters)
        compare(self.report, where, "cost per team over the days", per_team,
                {" / ".join(k): dec(v["cost_usd"]) for k, v in teams.items()})


EXACT = {
    ("tollgate-spend", "Spend today"): lambda e, w, rows, f: e.stat(w, rows, f, "day", "cost"),
    ("tollgate-spend", "Spend this month"): lambda e, w, rows, f: e.stat(w, rows, f, "month", "cost"),
    ("tollgate-spend", "Saved this month vs reference models"): lambda e, w, rows, f: e.stat(w, rows, f, "month", "saved"),
    ("tollgate-spend", "Requests this month"): lambda e, w, rows, f: e.stat(w, rows, f, "month", "requests"),
    ("tollgate-spend", "Spend by team: today and month to date"):
        lambda e, w, rows, f: e.by_group(w, rows, f, "team", ["Organization", "Team"]),
    ("tollgate-spend", "Spend by organization: today and month to date"):
        lambda e, w, rows, f: e.by_group(w, rows, f, "org", ["Organization"]),
    ("tollgate-spend", "Spend by model: today and month to date"):
        lambda e, w, rows, f: e.by_group(w, rows, f, "model", ["Model"]),
    ("tollgate-spend", "Top keys this month"): lambda e, w, rows, f: e.by_group(w, rows, f, "key", ["Key"]),
    ("tollgate-spend", "Savings against reference models this month"): lambda e, w, rows, f: e.by_route(w, rows, f),
    ("tollgate-spend", "Daily spend by team (ledger)"): lambda e, w, rows, f: e.daily(w, rows, f),
    ("tollgate-spend", "Spend in the selected range by team (ledger)"): lambda e, w, rows, f: e.range_by_team(w, rows, f),
}
