"""The Health dashboard: for on-call."""

from .grafana import DS_VARS, dashboard, prom, row, stat, steps, timeseries


def health_dashboard():
    up_mappings = [{"type": "value", "options": {"0": {"text": "down", "color": "red", "index": 0},
                                                 "1": {"text": "up", "color": "green", "index": 1}}}]
    panels = [
        row("Ledger"),
        stat("Ledger backlog", "Spooled ledger bytes not yet in the database (the writer's queue), summed over gateways.",
             [prom("sum(tollgate_ledger_backlog_bytes)", "backlog")], "bytes", 0,
             thresholds=steps((1048576, "orange"), (67108864, "red")), graph="area"),
        stat("Spool errors in range", "Ledger rows that could not be written to the spool: spend that may be lost.",
             [prom("sum(increase(tollgate_ledger_spool_errors_total[$__range]))", "spool errors", instant=True,
                   fmt="time_series")],
             "short", 0, thresholds=steps((1, "red"))),
        stat("Failed ledger batches", "Batches the writer could not insert since the gateways started (it retries them).",
             [prom("sum(tollgate_ledger_rows{state=\"failed_batches\"})", "failed batches")], "short", 0,
             thresholds=steps((1, "orange"))),
        stat("Bad spool lines", "Spooled rows that could not be read back since start.",
             [prom("sum(tollgate_ledger_rows{state=\"bad_line\"})", "bad lines")], "short", 0,
             thresholds=steps((1, "red"))),
        timeseries("Ledger backlog per gateway", "Spooled bytes waiting for the database, per gateway.",
                   [prom("tollgate_ledger_backlog_bytes", "{{instance}}")], "bytes", 0,
                   thresholds=steps((1048576, "orange"), (67108864, "red")), size=(8, 8)),
        timeseries("Ledger rows by state", "Rows since each gateway started: appended to the spool, inserted, duplicate (replayed), bad_line, failed_batches.",
                   [prom("sum by (state) (tollgate_ledger_rows)", "{{state}}")], "short", 0, size=(8, 8)),
        timeseries("Ledger rows written per second", "Rows appended to the spool and inserted into the database per second.",
                   [prom("sum by (state) (deriv(tollgate_ledger_rows{state=~\"appended|inserted\"}[$__rate_interval]))",
                         "{{state}}")],
                   "suffix: rows/s", 2, min_=None, size=(8, 8)),
        row("Quota store (Redis)"),
        stat("Redis quota store", "1 while Redis (shared budget and rate-limit counters) answers. No data: the gateways count in process, without Redis.",
             [prom("min(tollgate_quota_store_up)", "store")], "none", 0, mappings=up_mappings,
             thresholds={"mode": "absolute", "steps": [{"color": "red", "value": None}, {"color": "green", "value": 1}]},
             color_mode="background"),
        stat("Local admissions in range", "Requests admitted on a gateway's own counts while Redis could not be reached.",
             [prom("sum(increase(tollgate_quota_local_admissions_total[$__range]))", "local admissions",
                   instant=True, fmt="time_series")],
             "short", 0, thresholds=steps((1, "orange"))),
        timeseries("Quota store failures and local admissions", "Redis calls that failed or timed out, and requests admitted locally, per second.",
                   [prom("sum(rate(tollgate_quota_store_failures_total[$__rate_interval]))", "store failures", ref="A"),
                    prom("sum(rate(tollgate_quota_local_admissions_total[$__rate_interval]))", "local admissions", ref="B")],
                   "reqps", 3, size=(12, 6)),
        row("Load"),
        timeseries("Requests in flight", "Upstream attempts under way, per gateway.",
                   [prom("tollgate_requests_in_flight", "{{instance}}")], "short", 0, size=(8, 8)),
        timeseries("Open streams", "Streams being relayed, per gateway.",
                   [prom("tollgate_streams_open", "{{instance}}")], "short", 0, size=(8, 8)),
        timeseries("Gateway 5xx responses", "Responses with a 5xx status per second, by route.",
                   [prom("sum by (route, status) (rate(tollgate_http_requests_total{status=~\"5..\"}[$__rate_interval]))",
                         "{{route}} {{status}}")],
                   "reqps", 3, size=(8, 8)),
    ]
    return dashboard(
        "tollgate-health", "Tollgate / Health",
        "Is spend being recorded? Ledger backlog and rows, spool errors, the Redis quota store, load.",
        ["health", "on-call"], DS_VARS, panels, time_from="now-6h")
