"""The Traffic and latency dashboard: for on-call."""

from .grafana import (
    DS_VARS, M, MODEL_VAR, ORG_VAR, OTM, TEAM_VAR, bargauge, dashboard, prom, row, stat, steps,
    timeseries,
)


def quantiles(metric, by, sel, legend):
    return [
        prom(f"histogram_quantile(0.5, sum by (le, {by}) (rate({metric}_bucket{{{sel}}}[$__rate_interval])))",
             f"p50 {legend}", ref="A"),
        prom(f"histogram_quantile(0.99, sum by (le, {by}) (rate({metric}_bucket{{{sel}}}[$__rate_interval])))",
             f"p99 {legend}", ref="B"),
    ]


def traffic_dashboard():
    latency_thresholds = steps((1, "orange"), (5, "red"))
    panels = [
        row("Now"),
        stat("Requests per second", "Proxied requests per second (every attempt).",
             [prom(f"sum(rate(tollgate_requests_total{{{OTM}}}[$__rate_interval]))", "requests")],
             "reqps", 2, graph="area"),
        stat("Error ratio", "Share of proxied requests answered with a 4xx or 5xx status.",
             [prom(f"sum(rate(tollgate_requests_total{{status!~\"2..\", {OTM}}}[$__rate_interval])) / "
                   f"sum(rate(tollgate_requests_total{{{OTM}}}[$__rate_interval]))", "errors")],
             "percentunit", 1, thresholds=steps((0.01, "orange"), (0.05, "red")), graph="area"),
        stat("Requests in flight", "Upstream attempts under way on the gateways.",
             [prom("sum(tollgate_requests_in_flight)", "in flight")], "short", 0, graph="area"),
        stat("Open streams", "Streamed answers being relayed right now.",
             [prom("sum(tollgate_streams_open)", "open streams")], "short", 0, graph="area"),
        row("Requests"),
        timeseries("Requests by model", "Proxied requests per second per configured model.",
                   [prom(f"sum by (model) (rate(tollgate_requests_total{{{OTM}}}[$__rate_interval]))", "{{model}}")],
                   "reqps", 2, size=(8, 8)),
        timeseries("Requests by provider", "Proxied requests per second per provider.",
                   [prom(f"sum by (provider) (rate(tollgate_requests_total{{{OTM}}}[$__rate_interval]))", "{{provider}}")],
                   "reqps", 2, size=(8, 8)),
        timeseries("Requests by status", "Proxied requests per second per HTTP status sent to the client.",
                   [prom(f"sum by (status) (rate(tollgate_requests_total{{{OTM}}}[$__rate_interval]))", "{{status}}")],
                   "reqps", 2, size=(8, 8)),
        timeseries("Requests by team", "Proxied requests per second per organization and team.",
                   [prom(f"sum by (org, team) (rate(tollgate_requests_total{{{OTM}}}[$__rate_interval]))",
                         "{{org}} / {{team}}")],
                   "reqps", 2, size=(8, 8)),
        timeseries("Upstream errors by kind", "Failed upstream attempts per second, per provider and kind of failure.",
                   [prom("sum by (provider, kind) (rate(tollgate_upstream_errors_total[$__rate_interval]))",
                         "{{provider}}: {{kind}}")],
                   "reqps", 3, size=(8, 8)),
        timeseries("HTTP responses by route and status", "Every HTTP response of the gateway (admin, metrics and proxy routes).",
                   [prom("sum by (route, status) (rate(tollgate_http_requests_total[$__rate_interval]))",
                         "{{route}} {{status}}")],
                   "reqps", 2, size=(8, 8)),
        row("Latency"),
        timeseries("Request duration by model", "Time to the last byte, p50 and p99, per model.",
                   quantiles("tollgate_request_duration_seconds", "model", M, "{{model}}"), "s", 3,
                   thresholds=latency_thresholds, size=(12, 8)),
        timeseries("Time to first token by model", "Streams: time from the request to the first streamed token, p50 and p99.",
                   quantiles("tollgate_time_to_first_token_seconds", "model", M, "{{model}}"), "s", 3,
                   thresholds=latency_thresholds, size=(12, 8)),
        timeseries("Time per output token by model", "Streams: time between output tokens after the first, p50 and p99.",
                   quantiles("tollgate_time_per_output_token_seconds", "model", M, "{{model}}"), "s", 4,
                   size=(12, 8)),
        timeseries("Gateway overhead", "Time spent in Tollgate itself (total minus upstream), p50 and p99 per endpoint.",
                   quantiles("tollgate_gateway_overhead_seconds", "endpoint", "", "{{endpoint}}"), "s", 4,
                   thresholds=steps((0.01, "orange"), (0.05, "red")), size=(12, 8)),
        row("Streams and tokens"),
        bargauge("Streams by how they ended", "Streams in the selected range by how they ended: complete, client_disconnected, "
                 "upstream_disconnected, upstream_error, upstream_malformed, upstream_timeout, gateway_shutdown, budget_exhausted.",
                 [prom(f"sum by (end) (increase(tollgate_streams_total{{{M}}}[$__range]))", "{{end}}",
                       instant=True, fmt="time_series")],
                 "short", 0, size=(8, 8)),
        timeseries("Stream ends per second", "Streams ending per second by how they ended.",
                   [prom(f"sum by (end) (rate(tollgate_streams_total{{{M}}}[$__rate_interval]))", "{{end}}")],
                   "reqps", 3, size=(8, 8)),
        timeseries("Open streams and requests in flight", "Gauges summed over gateways.",
                   [prom("sum(tollgate_streams_open)", "open streams", ref="A"),
                    prom("sum(tollgate_requests_in_flight)", "in flight", ref="B")],
                   "short", 0, size=(8, 8)),
        timeseries("Tokens per second by model", "Input and output tokens per second per model (reasoning is part of output).",
                   [prom(f"sum by (model) (rate(tollgate_tokens_total{{kind!=\"reasoning\", {OTM}}}[$__rate_interval]))",
                         "{{model}}")],
                   "suffix: tok/s", 1, size=(8, 8)),
        timeseries("Usage estimated", "Requests per second whose usage the provider did not report, so Tollgate counted it with a tokenizer.",
                   [prom(f"sum by (model, provider) (rate(tollgate_usage_estimated_total{{{M}}}[$__rate_interval]))",
                         "{{model}} ({{provider}})")],
                   "reqps", 3, size=(8, 8)),
        timeseries("Unpriced requests", "Requests per second of models without a configured price (charged the default price).",
                   [prom(f"sum by (model) (rate(tollgate_unpriced_requests_total{{{M}}}[$__rate_interval]))", "{{model}}")],
                   "reqps", 3, size=(8, 8)),
    ]
    return dashboard(
        "tollgate-traffic", "Tollgate / Traffic and latency",
        "Requests by model and provider, errors by kind, time to first token, time per output token, gateway overhead, streams.",
        ["traffic", "on-call"], DS_VARS + [ORG_VAR, TEAM_VAR, MODEL_VAR], panels, time_from="now-1h")
