"""Grafana's side of the dashboards: loading them, checking their JSON
shape and the provisioning files, and substituting variables, `$__`
intervals and SQL macros the way Grafana does before a query runs."""

import datetime as dt
import json
import re
from pathlib import Path

PROM_UID = "${DS_PROMETHEUS}"
PG_UID = "${DS_POSTGRES}"
# A variable set to "All".
ALL = object()

# Units that take no decimals setting.
NON_NUMERIC_UNITS = {"string", "dateTimeAsIso", "dateTimeAsUS", "dateTimeFromNow"}


def panels_of(dashboard):
    for p in dashboard.get("panels", []):
        yield p
        yield from p.get("panels", [])


def load_dashboards(directory):
    out = []
    for path in sorted(Path(directory).glob("*.json")):
        with open(path, encoding="utf-8") as f:
            out.append((path.name, json.load(f)))
    return out


def check_shape(name, d, report):
    where = name
    for field in ("uid", "title", "schemaVersion", "panels", "templating", "time"):
        if field not in d:
            report.fail(where, f"has no {field}")
    if not isinstance(d.get("schemaVersion"), int) or d.get("schemaVersion", 0) < 36:
        report.fail(where, "schemaVersion must be a current Grafana's (36 or later)")
    var_names = {v["name"] for v in d.get("templating", {}).get("list", [])}
    for v in d.get("templating", {}).get("list", []):
        if v["type"] == "query" and v.get("datasource", {}).get("uid") != PROM_UID:
            report.fail(where, f"variable {v['name']} does not use ${{DS_PROMETHEUS}}")
    ids, titles = set(), set()
    for p in panels_of(d):
        pw = f"{name} / {p.get('title') or p.get('type')}"
        if p.get("id") in ids:
            report.fail(pw, f"repeats panel id {p.get('id')}")
        ids.add(p.get("id"))
        if "gridPos" not in p:
            report.fail(pw, "has no gridPos")
        if p["type"] in ("row", "text"):
            continue
        report.count("panels")
        if p["title"] in titles:
            report.fail(pw, "repeats a title in its dashboard (titles name panels in reports)")
        titles.add(p["title"])
        ds = p.get("datasource") or {}
        if ds.get("uid") not in (PROM_UID, PG_UID):
            report.fail(pw, f"datasource must be ${{DS_PROMETHEUS}} or ${{DS_POSTGRES}}, not {ds!r}")
        if ds.get("uid", "").strip("${}") not in var_names:
            report.fail(pw, f"uses {ds.get('uid')} but the dashboard has no such variable")
        targets = p.get("targets") or []
        if not targets:
            report.fail(pw, "has no targets")
        refs = [t.get("refId") for t in targets]
        if len(set(refs)) != len(refs) or None in refs:
            report.fail(pw, f"targets need distinct refIds, have {refs}")
        for t in targets:
            if (t.get("datasource") or {}).get("uid") != ds.get("uid"):
                report.fail(pw, f"target {t.get('refId')} uses another datasource than its panel")
            if ds.get("uid") == PROM_UID and not t.get("expr"):
                report.fail(pw, f"target {t.get('refId')} has no expr")
            if ds.get("uid") == PG_UID and not (t.get("rawSql") and t.get("rawQuery")):
                report.fail(pw, f"target {t.get('refId')} has no raw SQL")
        defaults = p.get("fieldConfig", {}).get("defaults", {})
        unit = defaults.get("unit")
        if not unit:
            report.fail(pw, "sets no unit")
        elif unit not in NON_NUMERIC_UNITS and not isinstance(defaults.get("decimals"), int):
            report.fail(pw, "sets no decimals")
        th = defaults.get("thresholds") or {}
        if th.get("mode") not in ("absolute", "percentage") or not th.get("steps"):
            report.fail(pw, "sets no thresholds")
        for o in p.get("fieldConfig", {}).get("overrides", []):
            props = {x["id"] for x in o.get("properties", [])}
            if o["matcher"]["id"] == "byName" and "unit" not in props and "custom.lineStyle" not in props:
                report.fail(pw, f"column {o['matcher']['options']} sets no unit")
        renamed = [set(t["options"].get("renameByName", {}).values())
                   for t in p.get("transformations", []) if t["id"] == "organize"]
        if renamed and ds.get("uid") == PROM_UID:
            for name in override_names(p):
                if name not in renamed[-1]:
                    report.fail(pw, f"styles column {name!r}, which its transformations do not produce")
        opts = p.get("options", {})
        if p["type"] in ("timeseries", "state-timeline"):
            legend = opts.get("legend", {})
            for k in ("showLegend", "displayMode", "placement", "calcs"):
                if k not in legend:
                    report.fail(pw, f"legend.{k} is not set")
            if "mode" not in opts.get("tooltip", {}):
                report.fail(pw, "tooltip.mode is not set")
        if p["type"] in ("stat", "bargauge") and "calcs" not in opts.get("reduceOptions", {}):
            report.fail(pw, "reduceOptions.calcs is not set")


def override_names(panel):
    return [o["matcher"]["options"] for o in panel.get("fieldConfig", {}).get("overrides", [])
            if o["matcher"]["id"] == "byName"]


REPO_DASHBOARDS = Path(__file__).resolve().parents[3] / "dashboards"


def check_provisioning(dashboards, report):
    """The provisioning files exist, name the uids the dashboards default to,
    and take URLs and credentials from the environment."""
    base = REPO_DASHBOARDS / "provisioning"
    ds_file, db_file = base / "datasources" / "tollgate.yaml", base / "dashboards" / "tollgate.yaml"
    for f in (ds_file, db_file):
        if not f.exists():
            report.fail("provisioning", f"{f} is missing")
            return
    ds, db = ds_file.read_text(encoding="utf-8"), db_file.read_text(encoding="utf-8")
    uids = set(re.findall(r"^\s*uid:\s*(\S+)", ds, re.M))
    for needed in ("type: prometheus", "type: postgres", "${TOLLGATE_PROMETHEUS_URL}", "${TOLLGATE_LEDGER_PASSWORD}"):
        if needed not in ds:
            report.fail("provisioning", f"{ds_file.name} has no {needed!r}")
    if "type: file" not in db:
        report.fail("provisioning", f"dashboards/{db_file.name} is not a file provider")
    for name, d in dashboards:
        for v in d["templating"]["list"]:
            if v["type"] == "datasource" and v["current"].get("value") not in uids:
                report.fail(name, f"variable {v['name']} defaults to {v['current'].get('value')!r}, "
                                  f"not a provisioned uid ({sorted(uids)})")


# ------------------------------------------------------------ variables


def prom_escape(value):
    """How Grafana's Prometheus datasource escapes a multi-value item."""
    return re.sub(r"([\\^$*+?.()|{}\[\]'])", r"\\\\\1", value)


def regex_escape(value):
    """Grafana's `regex` format (kbn.regexEscape)."""
    return re.sub(r"([\\^$*+?.()|\[\]{}/])", r"\\\1", value)


def format_value(var, value, fmt, target):
    """A variable's value as Grafana interpolates it into `target` (prom or sql)."""
    if value is ALL:
        # A custom "All" value is inserted as is, whatever the format.
        return var.get("allValue") or ".*"
    if isinstance(value, str):
        value = [value]
    if fmt == "regex" or (fmt is None and target == "prom"):
        esc = [regex_escape(v) if fmt == "regex" else prom_escape(v) for v in value]
        return esc[0] if len(esc) == 1 else "(" + "|".join(esc) + ")"
    if fmt == "pipe":
        return "|".join(value)
    if fmt == "csv":
        return ",".join(value)
    if fmt in ("sqlstring", None) and target == "sql":
        return ",".join("'" + v.replace("'", "''") + "'" for v in value)
    if fmt in ("raw", "text"):
        return ",".join(value)
    raise ValueError(f"format {fmt} of ${var['name']} is not handled by this checker")


VAR_RE = re.compile(r"\$\{(\w+)(?::(\w+))?\}|\[\[(\w+)(?::(\w+))?\]\]|\$(\w+)")


def interpolate(text, variables, values, target):
    """Substitutes dashboard variables (not `$__` built-ins) Grafana's way."""
    by_name = {v["name"]: v for v in variables}

    def repl(m):
        name = m.group(1) or m.group(3) or m.group(5)
        fmt = m.group(2) or m.group(4)
        if name.startswith("__") or name not in by_name:
            return m.group(0)
        var = by_name[name]
        if var["type"] == "datasource":
            raise ValueError(f"${name} (a datasource variable) appears in a query")
        if var["type"] == "custom":
            return values.get(name, var["current"]["value"])
        return format_value(var, values.get(name, ALL), fmt, target)

    return VAR_RE.sub(repl, text)


def prom_expr(expr, variables, values, window):
    start, end, step = window
    rng = int(end - start)
    builtins = {
        "$__rate_interval": "1m",
        "$__interval_ms": str(step * 1000),
        "$__interval": f"{step}s",
        "$__range_ms": str(rng * 1000),
        "$__range_s": str(rng),
        "$__range": f"{rng}s",
    }
    for k in sorted(builtins, key=len, reverse=True):
        expr = expr.replace(k, builtins[k])
        expr = expr.replace("${" + k[1:] + "}", builtins[k])
    expr = interpolate(expr, variables, values, "prom")
    left = re.findall(r"\$\{?\w+", expr)
    if left:
        raise ValueError(f"left unsubstituted: {left}")
    return expr


# --------------------------------------------------------------- SQL


def split_args(s):
    """Splits macro arguments on top-level commas."""
    args, depth, cur = [], 0, ""
    for ch in s:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            args.append(cur.strip())
            cur = ""
        else:
            cur += ch
    if cur.strip():
        args.append(cur.strip())
    return args


def interval_seconds(text):
    text = text.strip().strip("'\"")
    m = re.fullmatch(r"(\d+)(ms|s|m|h|d|w)", text)
    if not m:
        raise ValueError(f"interval {text!r}")
    n, unit = int(m.group(1)), m.group(2)
    return n * {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}[unit]


def iso(ts):
    return dt.datetime.fromtimestamp(ts, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def sql_macros(sql, frm, to):
    """Grafana's PostgreSQL macros for the range [frm, to] (unix seconds)."""

    def expand(name, args):
        if name == "timeFilter":
            return f"{args[0]} BETWEEN '{iso(frm)}' AND '{iso(to)}'"
        if name == "timeFrom":
            return f"'{iso(frm)}'"
        if name == "timeTo":
            return f"'{iso(to)}'"
        if name == "unixEpochFrom":
            return str(frm)
        if name == "unixEpochTo":
            return str(to)
        if name == "unixEpochFilter":
            return f"{args[0]} >= {frm} AND {args[0]} <= {to}"
        if name == "unixEpochNanoFrom":
            return str(frm * 10**9)
        if name == "unixEpochNanoTo":
            return str(to * 10**9)
        if name == "time":
            return f'{args[0]} AS "time"'
        if name == "timeEpoch":
            return f'extract(epoch from {args[0]}) AS "time"'
        if name in ("timeGroup", "timeGroupAlias"):
            secs = interval_seconds(args[1])
            out = f"floor(extract(epoch from {args[0]})/{secs:g})*{secs:g}"
            return out + (' AS "time"' if name.endswith("Alias") else "")
        if name in ("unixEpochGroup", "unixEpochGroupAlias"):
            secs = interval_seconds(args[1])
            out = f"floor({args[0]}/{secs:g})*{secs:g}"
            return out + (' AS "time"' if name.endswith("Alias") else "")
        raise ValueError(f"macro $__{name} is not handled by this checker")

    out, i = "", 0
    for m in re.finditer(r"\$__(\w+)\(", sql):
        if m.start() < i:
            continue
        depth, j = 1, m.end()
        while depth and j < len(sql):
            depth += {"(": 1, ")": -1}.get(sql[j], 0)
            j += 1
        out += sql[i:m.start()] + expand(m.group(1), split_args(sql[m.end():j - 1]))
        i = j
    out += sql[i:]
    if "$__" in out:
        raise ValueError(f"unsubstituted macro near {out[out.index('$__'):][:40]!r}")
    return out
