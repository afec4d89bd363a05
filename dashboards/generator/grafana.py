"""Builders for Grafana dashboard JSON: targets, panels, variables, layout.

Every builder sets what Grafana would otherwise default (unit, decimals,
thresholds, legend, tooltip, draw style), so a panel renders the same on
every Grafana version that reads schemaVersion 39.
"""

# Grafana 10.4 and later read this schema (newer versions migrate it on load).
SCHEMA_VERSION = 39

PROM = {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}
# "postgres" is the PostgreSQL plugin's id before Grafana 10.3 and an alias
# of `grafana-postgresql-datasource` since; the uid decides anyway.
PG = {"type": "postgres", "uid": "${DS_POSTGRES}"}

# Label matchers shared by the Prometheus panels.
OT = 'org=~"$org", team=~"$team"'
OTM = 'org=~"$org", team=~"$team", model=~"$model"'
M = 'model=~"$model"'

GREEN = {"color": "green", "value": None}


def steps(*pairs):
    """Absolute threshold steps: green below the first value."""
    out = [dict(GREEN)]
    for value, color in pairs:
        out.append({"color": color, "value": value})
    return {"mode": "absolute", "steps": out}


NO_THRESHOLDS = steps()
# For money that may be negative (savings): red below zero.
RED_BELOW_ZERO = {"mode": "absolute", "steps": [{"color": "red", "value": None}, {"color": "green", "value": 0}]}


# ---------------------------------------------------------------- targets


def prom(expr, legend="__auto", ref="A", instant=False, fmt=None):
    """A Prometheus target: a range query for graphs, instant for tables."""
    return {
        "datasource": PROM,
        "editorMode": "code",
        "expr": expr,
        "format": fmt or ("table" if instant else "time_series"),
        "instant": instant,
        "range": not instant,
        "legendFormat": legend,
        "refId": ref,
    }


def sql(raw, ref="A", fmt="table"):
    """A PostgreSQL target with raw SQL."""
    return {
        "datasource": PG,
        "editorMode": "code",
        "format": fmt,
        "rawQuery": True,
        "rawSql": raw.strip(),
        "refId": ref,
    }


# ----------------------------------------------------------------- panels


def _field_defaults(unit, decimals, thresholds, min_, max_, color_mode, custom, mappings=None):
    d = {
        "unit": unit,
        "decimals": decimals,
        "color": {"mode": color_mode},
        "thresholds": thresholds,
        "mappings": mappings or [],
        "custom": custom,
    }
    if min_ is not None:
        d["min"] = min_
    if max_ is not None:
        d["max"] = max_
    return d


def _base(kind, title, description, datasource, targets, defaults, options, overrides=None,
          transformations=None, size=(12, 8)):
    return {
        "type": kind,
        "title": title,
        "description": description,
        "datasource": datasource,
        "targets": targets,
        "fieldConfig": {"defaults": defaults, "overrides": overrides or []},
        "options": options,
        "transformations": transformations or [],
        "_size": size,
    }


def _legend(calcs, mode="table"):
    return {"showLegend": True, "displayMode": mode, "placement": "bottom", "calcs": list(calcs)}


TOOLTIP = {"mode": "multi", "sort": "desc"}


def timeseries(title, description, targets, unit, decimals=2, *, min_=0, max_=None,
               thresholds=NO_THRESHOLDS, stack=False, calcs=("mean", "max", "lastNotNull"),
               overrides=None, size=(12, 8), draw="line"):
    custom = {
        "drawStyle": draw,
        "lineInterpolation": "linear",
        "lineWidth": 1,
        "fillOpacity": 10,
        "gradientMode": "none",
        "showPoints": "never",
        "pointSize": 4,
        "spanNulls": False,
        "insertNulls": False,
        "barAlignment": 0,
        "stacking": {"mode": "normal" if stack else "none", "group": "A"},
        "axisPlacement": "auto",
        "axisLabel": "",
        "axisCenteredZero": False,
        "axisColorMode": "text",
        "axisBorderShow": False,
        "scaleDistribution": {"type": "linear"},
        "thresholdsStyle": {"mode": "off"},
        "hideFrom": {"legend": False, "tooltip": False, "viz": False},
    }
    ds = targets[0]["datasource"]
    return _base(
        "timeseries", title, description, ds, targets,
        _field_defaults(unit, decimals, thresholds, min_, max_, "palette-classic", custom),
        {"legend": _legend(calcs), "tooltip": TOOLTIP},
        overrides=overrides, size=size,
    )


def stat(title, description, targets, unit, decimals=2, *, thresholds=NO_THRESHOLDS,
         color_mode="value", graph="none", calc="lastNotNull", mappings=None, size=(6, 4),
         text_mode="value"):
    ds = targets[0]["datasource"]
    return _base(
        "stat", title, description, ds, targets,
        _field_defaults(unit, decimals, thresholds, None, None, "thresholds", {}, mappings),
        {
            "reduceOptions": {"calcs": [calc], "fields": "", "values": False},
            "orientation": "auto",
            "textMode": text_mode,
            "colorMode": color_mode,
            "graphMode": graph,
            "justifyMode": "auto",
            "wideLayout": True,
            "showPercentChange": False,
        },
        size=size,
    )


def bargauge(title, description, targets, unit, decimals=2, *, thresholds=NO_THRESHOLDS,
             min_=0, max_=None, size=(12, 8)):
    ds = targets[0]["datasource"]
    return _base(
        "bargauge", title, description, ds, targets,
        _field_defaults(unit, decimals, thresholds, min_, max_, "thresholds", {}),
        {
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "orientation": "horizontal",
            "displayMode": "gradient",
            "valueMode": "color",
            "namePlacement": "auto",
            "showUnfilled": True,
            "sizing": "auto",
            "minVizHeight": 16,
            "minVizWidth": 8,
            "maxVizHeight": 300,
        },
        size=size,
    )


def column(name, unit, decimals=None, thresholds=None, display=None, width=None):
    """A table column's override: its unit and decimals, by field name."""
    props = [{"id": "unit", "value": unit}]
    if decimals is not None:
        props.append({"id": "decimals", "value": decimals})
    if thresholds is not None:
        props.append({"id": "thresholds", "value": thresholds})
    if display is not None:
        props.append({"id": "custom.cellOptions", "value": {"type": display}})
    if width is not None:
        props.append({"id": "custom.width", "value": width})
    return {"matcher": {"id": "byName", "options": name}, "properties": props}


def table(title, description, targets, columns, *, unit="none", decimals=0, sort=None,
          transformations=None, size=(24, 8), footer=False):
    ds = targets[0]["datasource"]
    custom = {
        "align": "auto",
        "cellOptions": {"type": "auto"},
        "inspect": False,
        "filterable": False,
    }
    options = {
        "showHeader": True,
        "cellHeight": "sm",
        "footer": {"show": footer, "reducer": ["sum"], "fields": "", "countRows": False},
        "sortBy": [{"displayName": sort, "desc": True}] if sort else [],
    }
    return _base(
        "table", title, description, ds, targets,
        _field_defaults(unit, decimals, NO_THRESHOLDS, None, None, "thresholds", custom),
        options, overrides=columns, transformations=transformations, size=size,
    )


def state_timeline(title, description, targets, mappings, thresholds, size=(24, 8)):
    ds = targets[0]["datasource"]
    custom = {"lineWidth": 0, "fillOpacity": 80, "hideFrom": {"legend": False, "tooltip": False, "viz": False}}
    return _base(
        "state-timeline", title, description, ds, targets,
        _field_defaults("none", 0, thresholds, None, None, "thresholds", custom, mappings),
        {
            "mergeValues": True,
            "showValue": "auto",
            "alignValue": "left",
            "rowHeight": 0.9,
            "legend": _legend((), mode="list"),
            "tooltip": {"mode": "single", "sort": "none"},
        },
        size=size,
    )


# Label columns of Prometheus tables, as people read them.
LABEL_COLUMNS = {"org": "Organization", "team": "Team", "route": "Route", "model": "Model", "reason": "Reason"}


def merge_table(names, hide=("Time",)):
    """Joins instant Prometheus queries (one column per query) into one
    table, renaming `Value #A`… to `names` in refId order."""
    rename = {f"Value #{chr(ord('A') + i)}": n for i, n in enumerate(names)}
    rename.update(LABEL_COLUMNS)
    return [
        {"id": "merge", "options": {}},
        {
            "id": "organize",
            "options": {
                "excludeByName": {h: True for h in hide},
                "indexByName": {},
                "renameByName": rename,
            },
        },
    ]


def row(title):
    return {"type": "row", "title": title, "collapsed": False, "panels": [], "_size": (24, 1)}


def text(content, size=(24, 3)):
    return {
        "type": "text",
        "title": "",
        "options": {"mode": "markdown", "content": content.strip(),
                    "code": {"language": "plaintext", "showLineNumbers": False, "showMiniMap": False}},
        "_size": size,
    }


# -------------------------------------------------------------- variables


def ds_var(name, label, plugin, uid):
    return {
        "type": "datasource",
        "name": name,
        "label": label,
        "query": plugin,
        "regex": "",
        "hide": 0,
        "includeAll": False,
        "multi": False,
        "refresh": 1,
        "skipUrlSync": False,
        "current": {"selected": False, "text": uid, "value": uid},
        "options": [],
    }


def label_var(name, label, definition, *, allow_all=True, multi=True):
    """A Prometheus label_values variable; "All" is the regex `.*`."""
    return {
        "type": "query",
        "name": name,
        "label": label,
        "datasource": PROM,
        "definition": definition,
        # A plain string: every Grafana version reads it (newer ones migrate it).
        "query": definition,
        "regex": "",
        "sort": 1,
        "refresh": 2,
        "hide": 0,
        "includeAll": allow_all,
        "allValue": ".*" if allow_all else None,
        "multi": multi,
        "skipUrlSync": False,
        "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
        "options": [],
    }


def custom_var(name, label, values, default):
    return {
        "type": "custom",
        "name": name,
        "label": label,
        "query": ",".join(values),
        "hide": 0,
        "includeAll": False,
        "multi": False,
        "skipUrlSync": False,
        "current": {"selected": True, "text": default, "value": default},
        "options": [{"selected": v == default, "text": v, "value": v} for v in values],
    }


DS_VARS = [
    ds_var("DS_PROMETHEUS", "Prometheus", "prometheus", "tollgate-prometheus"),
]
DS_VARS_PG = DS_VARS + [ds_var("DS_POSTGRES", "Ledger (PostgreSQL)", "postgres", "tollgate-ledger")]

ORG_VAR = label_var("org", "Organization", "label_values(tollgate_team_info, org)")
TEAM_VAR = label_var("team", "Team", 'label_values(tollgate_team_info{org=~"$org"}, team)')
MODEL_VAR = label_var("model", "Model", "label_values(tollgate_requests_total, model)")
ROUTE_VAR = label_var("route", "Route", "label_values(tollgate_route_choices_total, route)")
BURN_VAR = custom_var("burn", "Burn-rate window", ["1h", "6h", "1d", "7d"], "1h")


# ------------------------------------------------------------ dashboard


def layout(panels):
    """Places panels left to right, wrapping at 24 columns, and numbers them."""
    x = y = row_h = 0
    out = []
    for i, p in enumerate(panels, start=1):
        w, h = p.pop("_size")
        if p["type"] == "row" or x + w > 24:
            x, y = 0, y + row_h
            row_h = 0
        p = {"id": i, "gridPos": {"h": h, "w": w, "x": x, "y": y}, **p}
        out.append(p)
        x += w
        row_h = max(row_h, h)
        if p["type"] == "row":
            x, y, row_h = 0, y + h, 0
    return out


def dashboard(uid, title, description, tags, variables, panels, time_from="now-6h", refresh="30s"):
    return {
        "uid": uid,
        "title": title,
        "description": description,
        "tags": ["tollgate"] + tags,
        "editable": True,
        "fiscalYearStartMonth": 0,
        "graphTooltip": 1,
        "liveNow": False,
        "refresh": refresh,
        "schemaVersion": SCHEMA_VERSION,
        "time": {"from": time_from, "to": "now"},
        "timepicker": {},
        "timezone": "utc",
        "weekStart": "",
        "version": 1,
        "links": [
            {
                "type": "dashboards",
                "title": "Tollgate",
                "tags": ["tollgate"],
                "asDropdown": True,
                "includeVars": True,
                "keepTime": True,
                "icon": "external link",
                "targetBlank": False,
                "tooltip": "",
                "url": "",
            }
        ],
        "annotations": {
            "list": [
                {
                    "builtIn": 1,
                    "datasource": {"type": "grafana", "uid": "-- Grafana --"},
                    "enable": True,
                    "hide": True,
                    "iconColor": "rgba(0, 211, 255, 1)",
                    "name": "Annotations & Alerts",
                    "type": "dashboard",
                }
            ]
        },
        "templating": {"list": variables},
        "panels": layout(panels),
    }
