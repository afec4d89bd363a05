#!/usr/bin/env bash
# What cache affinity saves: a 30-turn agent session with a growing
# context (each turn resends the conversation with the last answer and a
# new user message) through a route of two candidates at similar list
# prices, each on its own mock upstream that caches a session's repeated
# prompt prefix, with cached input at a tenth of the input price. The
# route's strategy is `weighted` 50/50, which spreads requests (and so a
# session's turns) over both. Replayed through the same route with
# affinity on (the default) and off (`affinity = false`), then the
# ledger's cost of each run (`/admin/spend?group_by=session`) and the
# saving. Loopback only; stops by itself.
#   loadtest/affinity.sh [TURNS] [SESSIONS]
set -euo pipefail
turns=${1:-30}
sessions=${2:-1}
mock_a=19093
mock_b=19094
gw_port=18083
master=affinity-demo-key-0123
source "$(dirname "$0")/harness.sh"

# A mock with a prefix cache, answering 200 tokens unpaced.
prefix_mock() {
    RUST_LOG=warn "$bin/loadtest" mock --listen "127.0.0.1:$1" --ttft 0s --tokens-per-second 0 \
        --output-tokens 200 --prefix-cache --usage-shape "$2" &
    pids+=($!)
}
prefix_mock "$mock_a" kimi
prefix_mock "$mock_b" deepseek
cat > "$work/tollgate.toml" <<TOML
[server]
listen = "127.0.0.1:$gw_port"
master_key = "$master"
$(ledger_toml)
[providers.a]
kind = "openai"
base_url = "http://127.0.0.1:$mock_a/v1"
[providers.b]
kind = "openai"
base_url = "http://127.0.0.1:$mock_b/v1"
[models.model-a]
provider = "a"
input_per_mtok = 0.60
cached_input_per_mtok = 0.06
output_per_mtok = 2.50
[models.model-b]
provider = "b"
input_per_mtok = 0.56
cached_input_per_mtok = 0.056
output_per_mtok = 2.40
[routes.agent]
candidates = ["model-a", "model-b"]
strategy = "weighted"
weights = [1, 1]
[routes.agent-no-affinity]
candidates = ["model-a", "model-b"]
strategy = "weighted"
weights = [1, 1]
affinity = false
TOML
start_gateway "$gw_port"

python3 - "$gw_port" "$master" "$turns" "$sessions" <<'PY'
import json, sys, time, urllib.request

port, master, turns, sessions = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
base = f"http://127.0.0.1:{port}"

def call(method, path, body=None, headers=None):
    req = urllib.request.Request(base + path, method=method,
                                 data=None if body is None else json.dumps(body).encode())
    req.add_header("Authorization", f"Bearer {master}")
    req.add_header("content-type", "application/json")
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    with urllib.request.urlopen(req, timeout=60) as resp:
        return dict(resp.headers), json.loads(resp.read())

# Common words the tokenizer counts as one token each; every message starts
# with its own tag, so no two are alike.
WORDS = ("the file test code line error build change run function value type "
         "list name path output input result check call return data query table "
         "time user state field method class module import update read write").split()

def text(tag, words):
    return tag + " " + " ".join(WORDS[i % len(WORDS)] for i in range(words - 1))

def replay(route, session):
    # An agent's system prompt and tool definitions, then per turn a user
    # message (a task, or a tool's output) of 600 words.
    messages = [{"role": "system", "content": text(f"Agent session {session}.", 3000)}]
    served, moves = [], 0
    for turn in range(turns):
        messages.append({"role": "user", "content": text(f"Turn {turn}.", 600)})
        headers, answer = call("POST", "/v1/chat/completions",
                               {"model": route, "messages": messages, "max_tokens": 200},
                               {"x-tollgate-session": session})
        model = headers.get("x-tollgate-model") or headers.get("X-Tollgate-Model")
        if served and served[-1] != model:
            moves += 1
        served.append(model)
        messages.append({"role": "assistant", "content": answer["choices"][0]["message"]["content"]})
    return moves

runs = [("affinity on", "agent", "on"), ("affinity off", "agent-no-affinity", "off")]
moved = {}
for name, route, tag in runs:
    moved[name] = sum(replay(route, f"{tag}-{s}") for s in range(sessions))

def spend(route):
    want = turns * sessions
    for _ in range(100):
        _, report = call("GET", f"/admin/spend?group_by=session&route={route}")
        rows = report["data"]
        if sum(r["requests"] for r in rows) >= want:
            return rows
        time.sleep(0.1)
    sys.exit(f"the ledger did not get {want} rows for {route}")

result = {}
for name, route, _ in runs:
    rows = spend(route)
    cost = sum(float(r["cost_usd"]) for r in rows)
    inp = sum(r["input_tokens"] + r["cached_input_tokens"] + r["cache_write_tokens"] for r in rows)
    cached = sum(r["cached_input_tokens"] for r in rows)
    result[name] = cost
    print(f"{name:12}: {sum(r['requests'] for r in rows)} requests, {inp} prompt tokens "
          f"({inp - cached} at the full input price), cache-hit share {cached / inp:.3f}, "
          f"moves between candidates {moved[name]}, ledger cost ${cost:.6f}")
on, off = result["affinity on"], result["affinity off"]
print(f"saving      : ${off - on:.6f}, {1 - on / off:.1%} of the cost without affinity "
      f"(without costs {off / on:.2f}x with)")
PY
