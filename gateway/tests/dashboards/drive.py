#!/usr/bin/env python3
"""The data the dashboard test looks at, in three steps that share a JSON
state file with check.py:

  setup    through the admin API of a running gateway: organization `acme`
           (with its own budget), its teams `platform` (USD and token
           budgets, two keys) and `research` (a soft daily budget);
           organization `globex` with team `tiny` (a hard budget of a
           fraction of a cent, so it gets refused) and a second team called
           `research` (so a filter on team names alone lets another
           organization's team through); five keys.
  history  with the gateway stopped: ledger rows of the past written as a
           spool segment, which the gateway's own writer replays into the
           ledger and the hourly rollup at its next start.
  load     a bounded mixed load in two phases (Prometheus scrapes between
           them): chat completions, Messages and Responses, streams, several
           models and providers, a route whose first candidate answers 500
           (fallbacks, then an open breaker), a model that reports no usage,
           streams the upstream cuts, a client that hangs up mid-stream,
           budget refusals, master-key traffic, agent sessions on a route
           with cache affinity.

Python 3 standard library only.
"""

import argparse
import calendar
import concurrent.futures
import http.client
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid


class Gateway:
    def __init__(self, url, master_key):
        self.url = url.rstrip("/")
        self.master_key = master_key

    def call(self, method, path, body=None, key=None, timeout=30, session=None):
        data = None if body is None else json.dumps(body).encode()
        headers = {
            "Authorization": f"Bearer {key or self.master_key}",
            "Content-Type": "application/json",
        }
        if session:
            headers["x-tollgate-session"] = session
        req = urllib.request.Request(self.url + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                return resp.status, resp.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    def admin(self, method, path, body=None):
        status, raw = self.call(method, path, body)
        if status >= 300:
            raise SystemExit(f"drive: {method} {path} answered {status}: {raw[:300]!r}")
        return json.loads(raw)

    def chat(self, key, model, stream=False, max_tokens=None, session=None):
        body = {"model": model, "messages": [{"role": "user", "content": "Say something about tolls."}]}
        if stream:
            body["stream"] = True
        if max_tokens:
            body["max_tokens"] = max_tokens
        status, _ = self.call("POST", "/v1/chat/completions", body, key=key, session=session)
        return status

    def messages(self, key, model, stream=False):
        """The Anthropic Messages door, for the endpoint label."""
        body = {
            "model": model,
            "max_tokens": 64,
            "messages": [{"role": "user", "content": "Say something about bridges."}],
            "stream": stream,
        }
        data = json.dumps(body).encode()
        req = urllib.request.Request(
            self.url + "/v1/messages",
            data=data,
            method="POST",
            headers={"x-api-key": key, "anthropic-version": "2023-06-01", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                resp.read()
                return resp.status
        except urllib.error.HTTPError as e:
            return e.code

    def hang_up_mid_stream(self, key, model):
        """Starts a stream, reads its first event, and closes the socket."""
        parsed = urllib.parse.urlsplit(self.url)
        conn = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=30)
        body = json.dumps({
            "model": model,
            "stream": True,
            "messages": [{"role": "user", "content": "Tell a long story."}],
        })
        conn.request("POST", "/v1/chat/completions", body=body, headers={
            "Authorization": f"Bearer {key}",
            "Content-Type": "application/json",
        })
        resp = conn.getresponse()
        if resp.status != 200:
            raise SystemExit(f"drive: the stream to hang up on answered {resp.status}")
        resp.fp.readline()
        conn.sock.close()
        conn.close()


def drive(loadtest, url, key, model, requests, concurrency, stream, api):
    """Runs `loadtest drive` and returns its JSON report."""
    cmd = [
        loadtest, "drive", "--base-url", url + "/v1", "--model", model,
        "--requests", str(requests), "--concurrency", str(concurrency),
        "--duration", "60s", "--prompt-words", "48", "--api", api,
    ]
    if stream:
        cmd.append("--stream")
    out = subprocess.run(cmd, env={"TOLLGATE_KEY": key, "PATH": "/usr/bin:/bin"},
                         capture_output=True, text=True, timeout=90)
    if out.returncode != 0:
        raise SystemExit(f"drive: {' '.join(cmd)} failed:\n{out.stderr[-2000:]}")
    try:
        return json.loads(out.stdout)
    except json.JSONDecodeError:
        raise SystemExit(f"drive: loadtest printed no JSON report:\n{out.stdout[-2000:]}")


def prometheus_value(prom_url, expr):
    q = urllib.parse.urlencode({"query": expr})
    with urllib.request.urlopen(f"{prom_url}/api/v1/query?{q}", timeout=10) as resp:
        result = json.load(resp)["data"]["result"]
    return float(result[0]["value"][1]) if result else None


def gateway_requests(gw):
    """The gateway's own count of proxied requests, from /metrics."""
    with urllib.request.urlopen(gw.url + "/metrics", timeout=10) as resp:
        text = resp.read().decode()
    return sum(float(line.rpartition(" ")[2]) for line in text.splitlines()
               if line.startswith("tollgate_requests_total{"))


def wait_for_scrape(prom_url, gw, timeout=30):
    """Polls Prometheus until it has the gateway's current request count."""
    want = gateway_requests(gw)
    deadline = time.time() + timeout
    while time.time() < deadline:
        if prometheus_value(prom_url, "sum(tollgate_requests_total)") == want:
            return
        time.sleep(0.2)
    raise SystemExit(f"drive: Prometheus did not scrape {want} requests within {timeout}s")


def setup(gw):
    """Two organizations, four teams, five keys, budgets at both levels.
    Teams are keyed `org/team` (team names are unique within an org only)."""
    state = {"orgs": {}, "teams": {}, "keys": {}}
    acme = gw.admin("POST", "/admin/orgs", {
        "name": "acme",
        "budget": {"limit_usd": 100, "period": "monthly", "enforcement": "soft"},
    })
    globex = gw.admin("POST", "/admin/orgs", {"name": "globex"})
    state["orgs"] = {"acme": acme["id"], "globex": globex["id"]}
    teams = [
        ("acme", "platform", {"limit_usd": 50, "limit_tokens": 2_000_000, "period": "monthly", "enforcement": "hard"}),
        ("acme", "research", {"limit_usd": 20, "period": "daily", "enforcement": "soft"}),
        # A fraction of a cent: a few requests spend it, the rest are refused.
        ("globex", "tiny", {"limit_usd": 0.0008, "period": "daily", "enforcement": "hard"}),
        # Soft and small: the load's second phase takes it past 80 % and
        # 100 %, so the alert counter grows after Prometheus has seen it.
        ("globex", "research", {"limit_usd": 0.0001, "period": "daily", "enforcement": "soft"}),
    ]
    for org, name, budget in teams:
        t = gw.admin("POST", "/admin/teams", {"org_id": state["orgs"][org], "name": name, "budget": budget})
        state["teams"][f"{org}/{name}"] = {"id": t["id"], "org": org, "name": name}
    for team, name in [("acme/platform", "platform-ci"), ("acme/platform", "platform-dev"),
                       ("acme/research", "research-bot"), ("globex/tiny", "tiny-app"),
                       ("globex/research", "globex-lab")]:
        k = gw.admin("POST", "/admin/keys", {"team_id": state["teams"][team]["id"], "name": name})
        state["keys"][name] = {"id": k["id"], "key": k["key"], "team": team}
    return state


HOUR_MS = 3_600_000
DAY_MS = 86_400_000


def month_start_ms(now_ms):
    t = time.gmtime(now_ms / 1000)
    return int(calendar.timegm((t.tm_year, t.tm_mon, 1, 0, 0, 0))) * 1000


def history(state, spool_dir):
    """Ledger rows of the past, as a spool segment the gateway replays at its
    next start, so its own writer puts them in the ledger and the hourly
    rollup. They sit on the boundaries the dashboards' SQL must get right:
    the start of the month and of the day (in and just out), both sides of
    the SQL range's start inside one rollup hour, the hour before this one,
    and long ago. None is newer than a few seconds ago."""
    now_ms = int(time.time() * 1000)
    hour = now_ms // HOUR_MS * HOUR_MS
    day = now_ms // DAY_MS * DAY_MS
    month = month_start_ms(now_ms)
    # The SQL panels' range starts mid-hour three days ago: the rows either
    # side of it share a rollup hour, so only the rows can split it.
    range_from_ms = (now_ms - 3 * DAY_MS) // HOUR_MS * HOUR_MS + 30 * 60_000 + 17_000
    times = [
        now_ms - 40 * DAY_MS,
        month - 1, month, month + 1,
        day - 1, day, day + 1,
        range_from_ms - 60_000, range_from_ms + 60_000,
        now_ms - 26 * HOUR_MS,
        now_ms - 2 * HOUR_MS - 5 * 60_000,
        hour - 1,
    ]
    times = sorted({t for t in times if t < now_ms - 5_000})
    keys, teams = state["keys"], state["teams"]

    def who(key_name):
        if key_name is None:
            return None, None, None
        k = keys[key_name]
        t = teams[k["team"]]
        return state["orgs"][t["org"]], t["id"], k["id"]

    # (key, model, provider, route, reference model, reference price factor)
    callers = [
        ("platform-ci", "gpt-small", "openai", "gpt-small", None, None),
        ("platform-dev", "claude-mid", "anthropic", "claude-mid", None, None),
        ("research-bot", "gpt-small", "openai", "smart", "gpt-large", 17),
        ("globex-lab", "gpt-small", "openai", "gpt-small", None, None),
        (None, "gpt-large", "openai", "gpt-large", None, None),
    ]
    rows = []
    for i, t in enumerate(times):
        for j, (key_name, model, provider, route, ref_model, factor) in enumerate(callers):
            if key_name == "globex-lab" and t >= day:
                continue  # its small daily budget is for the load to cross
            org_id, team_id, key_id = who(key_name)
            n = i * len(callers) + j + 1
            usage = {"input": 100 + n, "cached_input": 7 * (n % 3), "cache_write": 0,
                     "output": 20 + n % 11, "reasoning": n % 4}
            cost = 1_234_567 * n + 89  # picodollars, never round
            rows.append({
                "request_id": str(uuid.uuid4()),
                "started_at_ms": t,
                "org_id": org_id, "team_id": team_id, "key_id": key_id,
                "client_format": "openai", "endpoint": "chat_completions",
                "requested_model": model, "provider": provider, "upstream_model": model,
                "status": 200, "outcome": "complete", "usage": usage,
                "cost_picousd": cost, "latency_ms": 120, "ttft_ms": None,
                "stream": False, "usage_estimated": False, "priced": True,
                "route": route, "attempt": 1, "client_request_id": None,
                "reference_model": ref_model,
                "reference_cost_picousd": cost * factor if factor else None,
            })
    os.makedirs(spool_dir, exist_ok=True)
    seqs = [int(n[:-6]) for n in os.listdir(spool_dir) if n.endswith(".jsonl") and n[:-6].isdigit()]
    path = os.path.join(spool_dir, f"{max(seqs, default=0) + 1:020}.jsonl")
    with open(path, "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")
    state["history_rows"] = len(rows)
    state["range_from"] = range_from_ms // 1000
    print(f"dashboards: spooled {len(rows)} rows of the past for replay", file=sys.stderr)


def load(gw, state, loadtest, prometheus):
    key = {name: k["key"] for name, k in state["keys"].items()}
    lt, url = loadtest, gw.url
    started = time.time()
    # Each load: (key, model, requests, concurrency, stream, api).
    loads = {
        "platform-ci gpt-small": (key["platform-ci"], "gpt-small", 40, 4, False, "chat"),
        "platform-dev claude-mid stream": (key["platform-dev"], "claude-mid", 16, 4, True, "chat"),
        "platform-dev gpt-large": (key["platform-dev"], "gpt-large", 6, 2, False, "chat"),
        "research-bot smart": (key["research-bot"], "smart", 16, 2, False, "chat"),
        "research-bot smart stream": (key["research-bot"], "smart", 6, 2, True, "chat"),
        "research-bot estimated": (key["research-bot"], "estimated", 6, 2, False, "chat"),
        "research-bot estimated stream": (key["research-bot"], "estimated", 4, 2, True, "chat"),
        "platform-ci dropper stream": (key["platform-ci"], "dropper", 4, 2, True, "chat"),
        "master unpriced stream": (gw.master_key, "unpriced", 6, 2, True, "chat"),
        "master gpt-small responses": (gw.master_key, "gpt-small", 4, 2, False, "responses"),
        "globex-lab gpt-small": (key["globex-lab"], "gpt-small", 8, 2, False, "chat"),
    }
    reports = {}
    tiny, messages, broken, sessions = [], [], [], []

    def phase(share):
        """Every load at `share` of its requests (at least one), side by side."""
        with concurrent.futures.ThreadPoolExecutor(max_workers=len(loads)) as pool:
            futures = {}
            for name, (k, model, n, conc, stream, api) in loads.items():
                count = max(1, round(n * share))
                futures[name] = pool.submit(drive, lt, url, k, model, count, min(conc, count), stream, api)
            for name, f in futures.items():
                r = f.result()
                prev = reports.setdefault(name, {"ok": 0, "errors": 0})
                prev["ok"] += r.get("ok", 0)
                prev["errors"] += r.get("errors", 0)
        # The Messages door and a model that fails outright (a 5xx to the client).
        messages.extend(gw.messages(key["platform-dev"], "claude-mid", stream=s) for s in (False, True))
        broken.extend(gw.chat(gw.master_key, "broken-model") for _ in range(2))
        # Agent sessions on a route with cache affinity, turn after turn: a
        # session's first request is new, the rest are kept on its model.
        sessions.extend(gw.chat(key["platform-dev"], "agents", session=f"dashboards-task-{i}")
                        for i in range(3) for _ in range(2))

    # Phase 1 creates every series; Prometheus scrapes them; phase 2 makes
    # them grow, so rates, increases and quantiles have something to show.
    phase(0.25)
    # The tiny team, one request at a time, until its budget refuses it.
    for _ in range(12):
        tiny.append(gw.chat(key["tiny-app"], "gpt-large", max_tokens=16))
        if tiny[-1] == 429:
            break
    gw.hang_up_mid_stream(key["platform-ci"], "slow-model")
    wait_for_scrape(prometheus, gw)
    phase(0.75)
    tiny.extend(gw.chat(key["tiny-app"], "gpt-large", max_tokens=16) for _ in range(3))
    gw.hang_up_mid_stream(key["platform-ci"], "slow-model")

    if 429 not in tiny:
        raise SystemExit(f"drive: the tiny team was never refused by its budget: {tiny}")
    if 200 not in tiny:
        raise SystemExit(f"drive: the tiny team was refused from its first request: {tiny}")
    if any(s < 500 for s in broken):
        raise SystemExit(f"drive: broken-model answered {broken}, expected 5xx")
    if any(s != 200 for s in sessions):
        raise SystemExit(f"drive: the agents route answered {sessions}, expected 200s")

    state.update({
        "started": started,
        "load_done": time.time(),
        "tiny_statuses": tiny,
        "messages_statuses": messages,
        "loadtest": reports,
    })
    total = (sum(r["ok"] + r["errors"] for r in reports.values()) + len(tiny) + len(messages) + len(broken)
             + len(sessions) + 2)
    print(f"dashboards: drove {total} requests in {time.time() - started:.1f}s", file=sys.stderr)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("step", choices=["setup", "history", "load"])
    ap.add_argument("--state", required=True, help="the JSON file the steps share with check.py")
    ap.add_argument("--gateway", help="setup, load: the gateway's URL")
    ap.add_argument("--master-key", help="setup, load")
    ap.add_argument("--spool", help="history: the stopped gateway's spool_dir")
    ap.add_argument("--loadtest", help="load: the loadtest binary")
    ap.add_argument("--prometheus", help="load: waits for it to scrape the first phase before the second")
    args = ap.parse_args()

    if args.step == "setup":
        state = setup(Gateway(args.gateway, args.master_key))
    else:
        with open(args.state, encoding="utf-8") as f:
            state = json.load(f)
        if args.step == "history":
            history(state, args.spool)
        else:
            load(Gateway(args.gateway, args.master_key), state, args.loadtest, args.prometheus)
    with open(args.state, "w", encoding="utf-8") as f:
        json.dump(state, f, indent=2)


if __name__ == "__main__":
    main()
