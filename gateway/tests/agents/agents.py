"""Drives the real agent CLIs through a real Tollgate against the mock upstream.

Run by run.sh inside a network namespace that has only loopback. Starts the
mock upstream and the gateway on free ports, gives every scenario a virtual
key of its own, runs Claude Code (`claude -p`) and Codex (`codex exec`)
unmodified, and checks for each run:

- the agent's own answer: a plain reply, or, for a tool turn, that the agent
  ran its shell tool (`echo tollgate-tool-ok`) and sent the result back (the
  simulated model then answers `tool result: ...` quoting it);
- the ledger: one complete, priced, provider-metered row per upstream
  request, on the expected provider, endpoint and client format;
- what reached the mock upstream: the path, and for translated backends
  what the translation must keep (system messages in place, reasoning).

Usage: agents.py [SCENARIO-NAME-SUBSTRING ...]
       agents.py --capture DIR

`--capture` runs the agents straight against the mock upstream and writes
the requests they send, scrubbed of what changes from run to run, as the
golden fixtures `router` tests its parsing and translation with (see
`router/src/dispatch/agents.rs`). Run it through run.sh when the pinned
versions move, and review the diff.
"""

import json
import os
import re
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
BIN = os.path.join(ROOT, "target", "debug")
CLIS = os.path.join(ROOT, "gateway", "tests", "agents", "node_modules", ".bin")
MASTER_KEY = "agents-master-key"
MARKER = "tollgate-tool-ok"
DEADLINE = 60  # seconds an agent run may take
# Where agents' homes go: outside the repository (and outside /tmp, where
# Codex refuses to put its helper binaries).
OUTSIDE = "/var/tmp" if os.path.isdir("/var/tmp") else None

CLAUDE_TOOL = 'TOLLGATE_CALL Bash {"command": "echo ' + MARKER + '", "description": "Print a marker"}'
CODEX_TOOL = 'TOLLGATE_CALL exec_command {"cmd": "echo ' + MARKER + '"}'

# name, agent, model, provider, mode ("plain" or "tool"), upstream path
SCENARIOS = [
    ("claude-anthropic-plain", "claude", "claude-sonnet-4-5", "ant", "plain", "/v1/messages"),
    ("claude-anthropic-tool", "claude", "claude-sonnet-4-5", "ant", "tool", "/v1/messages"),
    # Newer models put system messages inside `messages`: passed through.
    ("claude-anthropic-system-messages-tool", "claude", "claude-fable-5", "ant", "tool", "/v1/messages"),
    # Kimi behind ANTHROPIC_BASE_URL: translated to chat completions.
    ("claude-openai-plain", "claude", "claude-opus-5", "chat", "plain", "/v1/chat/completions"),
    ("claude-openai-tool", "claude", "claude-opus-5", "chat", "tool", "/v1/chat/completions"),
    ("codex-openai-plain", "codex", "gpt-5.5", "chat", "plain", "/v1/chat/completions"),
    ("codex-openai-tool", "codex", "gpt-5.5", "chat", "tool", "/v1/chat/completions"),
    # Models outside Codex's own catalog: it sends namespace tools and no
    # apply_patch for them. (Of its catalog, only gpt-5.5 declares tools
    # to a custom provider in 0.171.)
    ("codex-anthropic-plain", "codex", "claude-haiku-4-5", "ant", "plain", "/v1/messages"),
    ("codex-anthropic-tool", "codex", "claude-haiku-4-5", "ant", "tool", "/v1/messages"),
    ("codex-responses-plain", "codex", "deepseek-v4-flash", "resp", "plain", "/v1/responses"),
    ("codex-responses-tool", "codex", "deepseek-v4-flash", "resp", "tool", "/v1/responses"),
    ("codex-unlisted-model-tool", "codex", "kimi-k2.6", "chat", "tool", "/v1/chat/completions"),
    # A catalog model that declares no tools at all.
    ("codex-catalog-model-plain", "codex", "gpt-6-luna", "resp", "plain", "/v1/responses"),
    # A key whose hard budget has no room: refused before any upstream
    # request, in a shape each agent shows its user as a quota problem.
    ("claude-budget-refused", "claude", "claude-opus-5", "chat", "budget", None),
    ("codex-budget-refused", "codex", "gpt-5.5", "chat", "budget", None),
    # The upstream breaks off mid-answer: the stream still ends with
    # response.failed, which Codex reports (its retries are off here).
    ("codex-upstream-breaks", "codex", "glm-broken", "broken", "broken", "/v1/chat/completions"),
]

# A hard budget no request fits.
NO_ROOM = {"limit_usd": 0.000001, "period": "monthly", "enforcement": "hard"}


def free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def wait_for(url, proc, what):
    until = time.time() + 30
    while time.time() < until:
        if proc.poll() is not None:
            raise SystemExit(f"{what} exited before answering")
        try:
            urllib.request.urlopen(url, timeout=2)
            return
        except urllib.error.HTTPError:
            return  # it answers, whatever the status
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"{what} did not answer {url} within 30 s")


def admin(url, path, body):
    req = urllib.request.Request(
        url + path,
        data=json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {MASTER_KEY}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.load(resp)


def gateway_config(work, port, mock, broken):
    return f"""
[server]
listen = "127.0.0.1:{port}"
master_key = "{MASTER_KEY}"

[database]
url = "sqlite://{work}/tollgate.db"

[ledger]
spool_dir = "{work}/spool"
flush_interval = "20ms"

[providers.chat]
kind = "openai"
base_url = "http://127.0.0.1:{mock}/v1"
api_key = "sk-vendor-chat"

[providers.ant]
kind = "anthropic"
base_url = "http://127.0.0.1:{mock}"
api_key = "sk-ant-vendor"

[providers.resp]
kind = "openai"
base_url = "http://127.0.0.1:{mock}/v1"
api_key = "sk-vendor-resp"
responses = true

[providers.broken]
kind = "openai"
base_url = "http://127.0.0.1:{broken}/v1"

[models."glm-broken"]
provider = "broken"
upstream_model = "glm-5"

[models."claude-sonnet-4-5"]
provider = "ant"

[models."claude-fable-5"]
provider = "ant"
upstream_model = "claude-sonnet-4-5"

[models."claude-opus-5"]
provider = "chat"
upstream_model = "kimi-k2.6"

[models."gpt-5.5"]
provider = "chat"
upstream_model = "glm-5"

[models."claude-haiku-4-5"]
provider = "ant"

[models."deepseek-v4-flash"]
provider = "resp"

[models."gpt-6-luna"]
provider = "resp"
upstream_model = "deepseek-v4-flash"

[models."kimi-k2.6"]
provider = "chat"
"""


def agent_home(parent, name):
    """A fresh home and working folder for one agent run, outside any git
    repository (the agents read the git status of their folder into the
    prompt), with a temporary folder of its own."""
    home = os.path.join(parent, name)
    os.makedirs(os.path.join(home, "tmp"))
    return home


def claude(home, base_url, key, model, prompt):
    env = {
        "TMPDIR": os.path.join(home, "tmp"),
        "HOME": home,
        "CLAUDE_CONFIG_DIR": os.path.join(home, ".claude"),
        "PATH": "/usr/bin:/bin",
        "TERM": "dumb",
        "LANG": "C.UTF-8",
        "ANTHROPIC_BASE_URL": base_url,
        "ANTHROPIC_API_KEY": key,
        "ANTHROPIC_MODEL": model,
        "ANTHROPIC_SMALL_FAST_MODEL": model,
        "ANTHROPIC_DEFAULT_HAIKU_MODEL": model,
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "DISABLE_AUTOUPDATER": "1",
        "DISABLE_TELEMETRY": "1",
        "DISABLE_ERROR_REPORTING": "1",
        "DISABLE_BUG_COMMAND": "1",
        "CLAUDE_CODE_DISABLE_FEEDBACK_SURVEY": "1",
        "DISABLE_COST_WARNINGS": "1",
        "CLAUDE_CODE_DISABLE_TERMINAL_TITLE": "1",
    }
    cmd = [os.path.join(CLIS, "claude"), "-p", prompt, "--output-format", "json", "--allowedTools", "Bash"]
    return cmd, env


def codex(home, base_url, key, model, prompt):
    config_dir = os.path.join(home, ".codex")
    os.makedirs(config_dir, exist_ok=True)
    with open(os.path.join(config_dir, "config.toml"), "w") as f:
        f.write(f"""model = "{model}"
model_provider = "tollgate"
check_for_update_on_startup = false

[model_providers.tollgate]
name = "Tollgate"
base_url = "{base_url}/v1"
env_key = "TOLLGATE_API_KEY"
wire_api = "responses"
request_max_retries = 0
stream_max_retries = 0
stream_idle_timeout_ms = 20000

[features]
plugins = false

[analytics]
enabled = false

[otel]
exporter = "none"
""")
    env = {
        "TMPDIR": os.path.join(home, "tmp"),
        "HOME": home,
        "CODEX_HOME": config_dir,
        "PATH": "/usr/bin:/bin",
        "TERM": "dumb",
        "LANG": "C.UTF-8",
        "TOLLGATE_API_KEY": key,
    }
    cmd = [
        os.path.join(CLIS, "codex"), "exec", "--json", "--skip-git-repo-check",
        "--dangerously-bypass-approvals-and-sandbox", prompt,
    ]
    return cmd, env


def check_broken(out):
    events = [json.loads(line) for line in out.splitlines() if line.strip().startswith("{")]
    failed = [e for e in events if e.get("type") == "turn.failed"]
    assert failed, f"Codex did not report the broken stream: {events}"
    message = failed[-1]["error"]["message"]
    # Tollgate's response.failed reached Codex, with its message.
    assert "upstream connection ended before the answer was complete" in message, message
    return message


def check_claude(out, mode):
    result = json.loads(out)
    if mode == "budget":
        assert result.get("is_error") is True and result.get("api_error_status") == 429, result
        assert "budget" in result.get("result", ""), f"the refusal does not name the budget: {result.get('result')}"
        return result["result"]
    assert result.get("is_error") is False, f"Claude Code reported an error: {result.get('result')}"
    text = result.get("result") or ""
    assert text.strip(), "Claude Code gave an empty answer"
    if mode == "tool":
        assert "tool result:" in text and MARKER in text, f"the tool's output did not come back: {text!r}"
    return text


def check_codex(out, mode):
    events = [json.loads(line) for line in out.splitlines() if line.strip().startswith("{")]
    kinds = [e.get("type") for e in events]
    if mode == "budget":
        failed = [e for e in events if e.get("type") == "turn.failed"]
        assert failed, f"Codex did not fail the turn: {kinds}"
        message = failed[0]["error"]["message"]
        # Codex's own words for OpenAI's insufficient_quota.
        assert "Quota exceeded" in message, message
        return message
    assert "turn.completed" in kinds, f"Codex did not complete the turn: {kinds}"
    assert "turn.failed" not in kinds and "error" not in kinds, f"Codex reported an error: {events}"
    items = [e["item"] for e in events if e.get("type") == "item.completed"]
    messages = [i.get("text", "") for i in items if i.get("type") == "agent_message"]
    assert messages and messages[-1].strip(), f"Codex gave no answer: {items}"
    usage = next(e["usage"] for e in events if e.get("type") == "turn.completed")
    assert usage.get("input_tokens", 0) > 0, f"Codex saw no usage: {usage}"
    if mode == "tool":
        runs = [i for i in items if i.get("type") == "command_execution"]
        assert runs and MARKER in runs[0].get("aggregated_output", ""), f"the command did not run: {items}"
        assert runs[0].get("exit_code") == 0, runs[0]
        assert "tool result:" in messages[-1] and MARKER in messages[-1], messages[-1]
    return messages[-1]


def ledger_rows(db, key_id, want):
    until = time.time() + 15
    rows = []
    while time.time() < until:
        con = sqlite3.connect(db)
        con.row_factory = sqlite3.Row
        try:
            rows = [dict(r) for r in con.execute("SELECT * FROM ledger WHERE key_id = ? ORDER BY started_at", (key_id,))]
        except sqlite3.OperationalError:
            rows = []
        finally:
            con.close()
        if len(rows) >= want:
            return rows
        time.sleep(0.05)
    return rows


def expected_rows(mode):
    return {"plain": 1, "tool": 2, "budget": 0, "broken": 1}[mode]


def check_ledger(rows, agent, model, provider, mode):
    want = expected_rows(mode)
    assert len(rows) == want, f"expected {want} ledger rows, found {len(rows)}: {rows}"
    fmt, endpoint = ("anthropic", "messages") if agent == "claude" else ("responses", "responses")
    if mode == "broken":
        (r,) = rows
        assert r["outcome"] == "upstream_disconnected" and r["status"] == 200, r
        # Billed from what was sent and streamed before the break.
        assert r["usage_estimated"] == 1 and r["input_tokens"] > 0 and r["cost_picousd"] > 0, r
        return
    for r in rows:
        assert r["status"] == 200 and r["outcome"] == "complete", r
        assert (r["client_format"], r["endpoint"]) == (fmt, endpoint), r
        assert (r["requested_model"], r["provider"]) == (model, provider), r
        assert r["usage_estimated"] == 0, f"usage should come from the provider: {r}"
        assert r["input_tokens"] + r["cached_input_tokens"] > 0 and r["output_tokens"] > 0, r
        assert r["cost_picousd"] > 0 and r["priced"] == 1, r
        assert r["stream"] == 1, r


def check_upstream(received, name, path, mode):
    if mode == "budget":
        assert not received, "a refused request never reaches the upstream"
        return
    assert received, "the mock upstream received nothing"
    for r in received:
        assert r["path"] == path, f"{name}: the mock got {r['path']}, expected {path}"
        for header in ("authorization", "x-api-key"):
            assert header not in r["headers"], "credentials are never recorded"
    first = received[0]
    body = first["body"]
    if name.startswith("claude-anthropic"):
        # Passed through: Claude Code's own query string and fields arrive.
        assert first["query"] == "beta=true", first["query"]
        assert "context_management" in body and "thinking" in body
        assert "anthropic-beta" in first["headers"]
    if name == "claude-anthropic-system-messages-tool":
        roles = [m["role"] for m in body["messages"]]
        assert "system" in roles, f"system messages were not passed through: {roles}"
    if name.startswith("claude-openai"):
        roles = [m["role"] for m in body["messages"]]
        assert roles[0] == "system", roles
        assert body.get("reasoning_effort") in ("low", "medium", "high"), body.get("reasoning_effort")
        assert "context_management" not in body and "thinking" not in body
        assert first["query"] is None, "a translated request carries no client query string"
    if mode == "tool" and path == "/v1/chat/completions":
        assert len(received) == 2, len(received)
        last = received[-1]["body"]["messages"]
        assert any(m["role"] == "tool" for m in last), "the tool result reached the upstream as a tool message"
        # Reasoning came back with the call, as Kimi and DeepSeek need it.
        calls = [m for m in last if m["role"] == "assistant" and m.get("tool_calls")]
        assert calls and calls[-1].get("reasoning_content"), f"no reasoning_content on the call: {calls}"
    if name == "codex-anthropic-tool":
        assert len(received) == 2, len(received)
        turns = [m for m in received[-1]["body"]["messages"] if m["role"] == "assistant"]
        blocks = turns[-1]["content"]
        # The thinking block and its signature made the round trip through
        # Codex inside the reasoning item's encrypted_content.
        assert blocks[0]["type"] == "thinking" and blocks[0]["signature"] == "mock-signature", blocks
        assert any(b["type"] == "tool_use" for b in blocks), blocks


# name, agent, model, mode: what `--capture` records.
CAPTURES = [
    ("claude-code-sonnet-4-5", "claude", "claude-sonnet-4-5", "tool"),
    ("claude-code-fable-5", "claude", "claude-fable-5", "tool"),
    ("codex-gpt-5.5", "codex", "gpt-5.5", "tool"),
    ("codex-unlisted-model", "codex", "kimi-k2.6", "plain"),
]

VOLATILE_HEADERS = {
    "x-claude-code-session-id", "session-id", "session_id", "thread-id",
    "x-client-request-id", "x-codex-window-id", "x-codex-turn-metadata", "content-length", "host",
}


def scrub(value, work):
    """What changes from run to run, replaced by fixed stand-ins."""
    if isinstance(value, dict):
        return {k: scrub(v, work) for k, v in value.items()}
    if isinstance(value, list):
        return [scrub(v, work) for v in value]
    if not isinstance(value, str):
        return value
    value = value.replace(work, "/work")
    value = re.sub(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", "00000000-0000-0000-0000-000000000000", value)
    value = re.sub(r"\b[0-9a-f]{64}\b", "0" * 64, value)
    value = re.sub(r"cc_version=([0-9.]+)\.[0-9a-f]+;", r"cc_version=\1.000;", value)
    value = re.sub(r"\b20\d\d-\d\d-\d\d\b", "2026-01-01", value)
    value = re.sub(r"\d+ tokens left", "N tokens left", value)
    return value


def capture(out_dir):
    """Records what the agents send, straight to the mock upstream."""
    work = tempfile.mkdtemp(prefix="tollgate-capture-", dir=OUTSIDE)
    record = os.path.join(work, "mock-requests")
    os.makedirs(record)
    (port,) = free_ports(1)
    mock = subprocess.Popen(
        [os.path.join(BIN, "loadtest"), "mock", "--listen", f"127.0.0.1:{port}", "--tokens-per-second", "0",
         "--ttft", "0s", "--output-tokens", "8", "--reasoning-tokens", "2", "--record", record],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(f"http://127.0.0.1:{port}/", mock, "the mock upstream")
        versions = {}
        for agent in ("claude", "codex"):
            v = subprocess.run([os.path.join(CLIS, agent), "--version"], capture_output=True, text=True)
            versions[agent] = v.stdout.strip()
        os.makedirs(out_dir, exist_ok=True)
        for name, agent, model, mode in CAPTURES:
            home = agent_home(work, name)
            prompt = {"plain": "Say hello", "tool": CLAUDE_TOOL if agent == "claude" else CODEX_TOOL}[mode]
            build = claude if agent == "claude" else codex
            cmd, env = build(home, f"http://127.0.0.1:{port}", "sk-capture", model, prompt)
            before = set(os.listdir(record))
            run = subprocess.run(cmd, env=env, cwd=home, capture_output=True, text=True,
                                 timeout=DEADLINE, stdin=subprocess.DEVNULL)
            if run.returncode != 0:
                raise SystemExit(f"{name}: exit code {run.returncode}\n{run.stderr[-2000:]}")
            # The last request holds the whole conversation (after a tool
            # round trip: the call, its result and the reasoning before it).
            last = sorted(set(os.listdir(record)) - before)[-1]
            r = json.load(open(os.path.join(record, last)))
            r["headers"] = {k: ("<varies>" if k in VOLATILE_HEADERS else v) for k, v in r["headers"].items()}
            fixture = {"agent": versions[agent], "request": scrub(r, home)}
            path = os.path.join(out_dir, f"{name}.json")
            with open(path, "w") as out:
                json.dump(fixture, out, indent=1, ensure_ascii=False)
                out.write("\n")
            print(f"wrote {os.path.relpath(path, ROOT)}")
        return 0
    finally:
        mock.terminate()
        mock.wait(timeout=10)
        shutil.rmtree(work, ignore_errors=True)


def main():
    if sys.argv[1:2] == ["--capture"]:
        return capture(sys.argv[2] if len(sys.argv) > 2 else os.path.join(ROOT, "router", "tests", "fixtures", "agents"))
    wanted = sys.argv[1:]
    scenarios = [s for s in SCENARIOS if not wanted or any(w in s[0] for w in wanted)]
    work = tempfile.mkdtemp(prefix="agents-", dir=os.path.join(ROOT, "target"))
    homes = tempfile.mkdtemp(prefix="tollgate-agents-", dir=OUTSIDE)
    # One folder per mock: each numbers its own files.
    record = os.path.join(work, "mock-requests")
    record_broken = os.path.join(work, "broken-mock-requests")
    os.makedirs(record)
    os.makedirs(record_broken)
    mock_port, gw_port, broken_port = free_ports(3)
    procs = []
    logs = {}
    failures = []
    try:
        logs["mock"] = open(os.path.join(work, "mock.log"), "w")
        procs.append(subprocess.Popen(
            [os.path.join(BIN, "loadtest"), "mock", "--listen", f"127.0.0.1:{mock_port}",
             "--tokens-per-second", "0", "--ttft", "0s", "--output-tokens", "8", "--reasoning-tokens", "2",
             "--record", record],
            stdout=logs["mock"], stderr=subprocess.STDOUT))
        procs.append(subprocess.Popen(
            [os.path.join(BIN, "loadtest"), "mock", "--listen", f"127.0.0.1:{broken_port}",
             "--tokens-per-second", "0", "--ttft", "0s", "--usage-shape", "none", "--disconnect-after", "3",
             "--record", record_broken],
            stdout=logs["mock"], stderr=subprocess.STDOUT))
        with open(os.path.join(work, "tollgate.toml"), "w") as f:
            f.write(gateway_config(work, gw_port, mock_port, broken_port))
        logs["gateway"] = open(os.path.join(work, "tollgate.log"), "w")
        procs.append(subprocess.Popen(
            [os.path.join(BIN, "tollgate"), "serve", "--config", os.path.join(work, "tollgate.toml")],
            stdout=logs["gateway"], stderr=subprocess.STDOUT, env={**os.environ, "RUST_LOG": "info"}))
        base_url = f"http://127.0.0.1:{gw_port}"
        wait_for(f"http://127.0.0.1:{mock_port}/", procs[0], "the mock upstream")
        wait_for(f"http://127.0.0.1:{broken_port}/", procs[1], "the breaking mock upstream")
        wait_for(base_url + "/healthz", procs[2], "the gateway")
        org = admin(base_url, "/admin/orgs", {"name": "agents"})
        team = admin(base_url, "/admin/teams", {"org_id": org["id"], "name": "agents"})
        for name, agent, model, provider, mode, path in scenarios:
            body = {"team_id": team["id"], "name": name}
            if mode == "budget":
                body["budget"] = NO_ROOM
            key = admin(base_url, "/admin/keys", body)
            home = agent_home(homes, name)
            tool = CLAUDE_TOOL if agent == "claude" else CODEX_TOOL
            prompt = tool if mode == "tool" else "Say hello"
            build = claude if agent == "claude" else codex
            cmd, env = build(home, base_url, key["key"], model, prompt)
            folder = record_broken if provider == "broken" else record
            before = set(os.listdir(folder))
            started = time.time()
            run = subprocess.run(cmd, env=env, cwd=home, capture_output=True, text=True,
                                 timeout=DEADLINE, stdin=subprocess.DEVNULL)
            took = time.time() - started
            received = [json.load(open(os.path.join(folder, f))) for f in sorted(set(os.listdir(folder)) - before)]
            try:
                if mode not in ("budget", "broken"):
                    assert run.returncode == 0, f"exit code {run.returncode}\n{run.stdout[-2000:]}\n{run.stderr[-2000:]}"
                if mode == "broken":
                    answer = check_broken(run.stdout)
                else:
                    answer = (check_claude if agent == "claude" else check_codex)(run.stdout, mode)
                rows = ledger_rows(os.path.join(work, "tollgate.db"), key["id"], expected_rows(mode))
                check_ledger(rows, agent, model, provider, mode)
                check_upstream(received, name, path, mode)
                cost = sum(r["cost_picousd"] for r in rows) / 1e12
                print(f"ok    {name:40} {took:5.1f}s  {len(rows)} ledger rows  ${cost:.6f}  {answer[:60]!r}")
            except AssertionError as e:
                failures.append(name)
                print(f"FAIL  {name:40} {took:5.1f}s  {e}")
        if failures:
            print(f"\n{len(failures)} of {len(scenarios)} agent scenarios failed: {', '.join(failures)}")
            print(f"gateway log: {work}/tollgate.log (kept)")
            return 1
        print(f"\nall {len(scenarios)} agent scenarios passed")
        return 0
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
        for f in logs.values():
            f.close()
        shutil.rmtree(homes, ignore_errors=True)
        if not failures:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
