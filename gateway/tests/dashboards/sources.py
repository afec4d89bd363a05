"""The live systems check.py reads: Prometheus's HTTP API, the gateway's
/metrics and /admin/spend, and the ledger through psql."""

import csv
import io
import json
import subprocess
import urllib.error
import urllib.parse
import urllib.request


def get(url, params=None, headers=None, timeout=15):
    if params:
        url += "?" + urllib.parse.urlencode(params, doseq=True)
    req = urllib.request.Request(url, headers=headers or {})
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        return resp.read().decode()


class Prometheus:
    def __init__(self, url):
        self.url = url.rstrip("/")

    def api(self, path, params):
        data = urllib.parse.urlencode(params, doseq=True).encode()
        req = urllib.request.Request(self.url + path, data=data, method="POST")
        try:
            with urllib.request.urlopen(req, timeout=15) as resp:
                body = json.load(resp)
        except urllib.error.HTTPError as e:
            body = json.loads(e.read() or b"{}")
        if body.get("status") != "success":
            raise ValueError(f"{body.get('errorType', 'error')}: {body.get('error', body)}")
        return body["data"]

    def instant(self, expr, at):
        return self.api("/api/v1/query", {"query": expr, "time": f"{at:.3f}"})

    def range(self, expr, start, end, step):
        return self.api("/api/v1/query_range",
                        {"query": expr, "start": f"{start:.3f}", "end": f"{end:.3f}", "step": f"{step}s"})

    def label_values(self, label, match, start, end):
        # The label values endpoint answers GET only.
        params = urllib.parse.urlencode({"match[]": match, "start": f"{start:.3f}", "end": f"{end:.3f}"})
        try:
            body = json.loads(get(f"{self.url}/api/v1/label/{label}/values?{params}"))
        except urllib.error.HTTPError as e:
            body = json.loads(e.read() or b"{}")
        if body.get("status") != "success":
            raise ValueError(f"{body.get('errorType', 'error')}: {body.get('error', body)}")
        return body["data"]


def samples(data):
    """Every sample value of an instant or range result, as floats."""
    kind, result = data["resultType"], data["result"]
    if kind == "scalar":
        return [float(result[1])]
    if kind == "vector":
        return [float(r["value"][1]) for r in result]
    if kind == "matrix":
        return [float(v[1]) for r in result for v in r["values"]]
    return []


class Gateway:
    def __init__(self, url, master_key):
        self.url = url.rstrip("/")
        self.headers = {"Authorization": f"Bearer {master_key}"}

    def metrics(self):
        return get(self.url + "/metrics")

    def spend(self, group_by, from_s, to_s=None, **filters):
        params = {"group_by": group_by, "from": str(from_s)}
        if to_s is not None:
            params["to"] = str(to_s)
        params.update({k: v for k, v in filters.items() if v is not None})
        return json.loads(get(self.url + "/admin/spend", params, self.headers))["data"]


def exposition(text):
    """Metric families and their types, and every sample's value by series."""
    families, values = {}, {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(None, 3)
            families[name] = kind
        elif line and not line.startswith("#"):
            series, _, value = line.rpartition(" ")
            values[series] = float(value)
    return families, values


def metric_sum(values, name, **labels):
    total = 0.0
    for series, v in values.items():
        base, _, rest = series.partition("{")
        if base != name:
            continue
        if all(f'{k}="{val}"' in rest for k, val in labels.items()):
            total += v
    return total


class Ledger:
    def __init__(self, database):
        self.database = database

    def query(self, sql):
        out = subprocess.run(
            ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "--csv", "-d", self.database, "-c", sql],
            capture_output=True, text=True, timeout=30,
        )
        if out.returncode != 0:
            lines = out.stderr.strip().splitlines()
            errors = [line for line in lines if line.startswith("ERROR:")]
            raise ValueError((errors or lines or ["psql failed"])[0])
        rows = list(csv.reader(io.StringIO(out.stdout)))
        if not rows:
            return [], []
        return rows[0], [dict(zip(rows[0], r)) for r in rows[1:]]
