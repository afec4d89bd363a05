"""The Routing dashboard: for the platform lead and on-call."""

from .grafana import (
    DS_VARS, LABEL_COLUMNS, M, MODEL_VAR, ROUTE_VAR, bargauge, column, dashboard, prom, row, stat,
    state_timeline, steps, table, timeseries,
)


# Kept share: red below half, orange below 90 %.
RED_BELOW_KEPT = {"mode": "absolute", "steps": [
    {"color": "red", "value": None}, {"color": "orange", "value": 0.5}, {"color": "green", "value": 0.9}]}


def routing_dashboard():
    sel = 'route=~"$route", model=~"$model"'
    breaker_mappings = [{
        "type": "value",
        "options": {
            "0": {"text": "closed", "color": "green", "index": 0},
            "1": {"text": "open", "color": "red", "index": 1},
            "2": {"text": "half-open", "color": "yellow", "index": 2},
        },
    }]
    panels = [
        row("Choices"),
        timeseries("Route choices", "Requests per second per route and the model chosen first.",
                   [prom(f"sum by (route, model) (rate(tollgate_route_choices_total{{{sel}}}[$__rate_interval]))",
                         "{{route}} → {{model}}")],
                   "reqps", 2, size=(12, 8)),
        bargauge("Route choices in the selected range", "Requests per route and first choice over the range.",
                 [prom(f"sum by (route, model) (increase(tollgate_route_choices_total{{{sel}}}[$__range]))",
                       "{{route}} → {{model}}", instant=True, fmt="time_series")],
                 "short", 0, size=(12, 8)),
        row("Fallbacks"),
        timeseries("Fallbacks by reason", "Attempts per second that failed over to the next candidate, by route, the model that failed, and why.",
                   [prom(f"sum by (route, model, reason) (rate(tollgate_fallbacks_total{{{sel}}}[$__rate_interval]))",
                         "{{route}}: {{model}} ({{reason}})")],
                   "reqps", 3, size=(12, 8)),
        bargauge("Fallback share by route", "Fallbacks ÷ routed requests over the range.",
                 [prom(f"sum by (route) (increase(tollgate_fallbacks_total{{{sel}}}[$__range])) / on (route) "
                       f"(sum by (route) (increase(tollgate_route_choices_total{{{sel}}}[$__range])) > 0)",
                       "{{route}}", instant=True, fmt="time_series")],
                 "percentunit", 1, thresholds=steps((0.05, "orange"), (0.25, "red")), size=(12, 8)),
        table("Fallbacks in the selected range", "Fallbacks over the range by route, model and reason.",
              [prom(f"sum by (route, model, reason) (increase(tollgate_fallbacks_total{{{sel}}}[$__range]))",
                    instant=True)],
              [column("Fallbacks", "short", 0)], unit="short", sort="Fallbacks",
              transformations=[{"id": "organize", "options": {"excludeByName": {"Time": True}, "indexByName": {},
                                                              "renameByName": {"Value": "Fallbacks", **LABEL_COLUMNS}}}],
              size=(24, 6)),
        row("Cache affinity"),
        timeseries("Session requests by affinity outcome",
                   "Answered requests of agent sessions on routes with affinity, per second: kept (the model that "
                   "served the session's previous request answered, where its prompt is cached), moved (another "
                   "candidate did: a fallback, an open breaker or a refusal), new (no previous model remembered).",
                   [prom('sum by (route, outcome) (rate(tollgate_affinity_total{route=~"$route"}[$__rate_interval]))',
                         "{{route}}: {{outcome}}")],
                   "reqps", 2, size=(12, 8)),
        bargauge("Sessions kept on their cache",
                 "Of the session requests that had a previous model, the share that stayed on it over the range. "
                 "Low means sessions pay full price for prompts their previous model had cached.",
                 [prom('sum by (route) (increase(tollgate_affinity_total{route=~"$route", outcome="kept"}[$__range])) '
                       '/ on (route) (sum by (route) (increase(tollgate_affinity_total{route=~"$route", outcome!="new"}[$__range])) > 0)',
                       "{{route}}", instant=True, fmt="time_series")],
                 "percentunit", 1, thresholds=RED_BELOW_KEPT, size=(12, 8)),
        row("Circuit breakers"),
        stat("Breakers open now", "Models whose breaker is open (1) right now, on any gateway.",
             [prom(f"count(max by (model) (tollgate_breaker_state{{{M}}}) == 1) or vector(0)", "open")],
             "short", 0, thresholds=steps((1, "red"))),
        stat("Breakers half-open now", "Models being probed after a cool-down.",
             [prom(f"count(max by (model) (tollgate_breaker_state{{{M}}}) == 2) or vector(0)", "half-open")],
             "short", 0, thresholds=steps((1, "orange"))),
        state_timeline("Breaker state by model", "0 closed, 1 open (requests skip the model), 2 half-open (one probe at a time). The worst state over gateways.",
                       [prom(f"max by (model) (tollgate_breaker_state{{{M}}})", "{{model}}")],
                       breaker_mappings, steps((1, "red")), size=(12, 8)),
    ]
    return dashboard(
        "tollgate-routing", "Tollgate / Routing",
        "Which model each route chose, fallbacks by reason, sessions kept on their prompt cache, circuit breaker states.",
        ["routing", "on-call"], DS_VARS + [ROUTE_VAR, MODEL_VAR], panels, time_from="now-6h")
