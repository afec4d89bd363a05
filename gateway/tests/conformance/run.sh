#!/usr/bin/env bash
# Runs the SDK conformance suite: builds the binaries, starts two mock
# upstreams and a gateway on free loopback ports, creates a virtual key and
# drives the gateway with the official OpenAI and Anthropic Python SDKs.
#
# Each mock serves chat completions, Messages and Responses on one port, so
# one upstream stands behind three provider kinds: OpenAI chat (`gpt-mock`),
# Anthropic (`claude-mock`) and OpenAI with `responses = true` (`resp-mock`,
# which gets Responses requests passed through untouched).
#
#   gateway/tests/conformance/run.sh [PYTEST ARGS...]
#
# CONFORMANCE_SKIP_BUILD=1 uses the binaries already in target/debug.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)
SUITE=gateway/tests/conformance
VENV=target/conformance-venv
cd "$ROOT"
# shellcheck source=../processes.sh
source gateway/tests/processes.sh

# Everything started here; the trap below ends it all and removes $WORK.
PIDS=()
WORK=

SUITE_NAME=conformance
cleanup() {
    local status=$?
    trap - EXIT INT TERM
    stop_suite "$status" 40
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# 1. The binaries.
if [[ ${CONFORMANCE_SKIP_BUILD:-0} != 1 ]]; then
    cargo build -j2 --locked --bins
fi
for bin in target/debug/tollgate target/debug/loadtest; do
    [[ -x $bin ]] || { echo "$bin is missing: build it or unset CONFORMANCE_SKIP_BUILD" >&2; exit 1; }
done

# 2. The SDKs, in a venv reinstalled only when the requirements change.
STAMP=$VENV/.requirements-stamp
WANT=$( { python3 --version; cat "$SUITE/requirements.txt"; } | sha256sum | cut -d' ' -f1)
if [[ ! -x $VENV/bin/python || ! -f $STAMP || $(cat "$STAMP") != "$WANT" ]]; then
    echo "conformance: installing the SDKs into $VENV" >&2
    rm -rf "$VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q --disable-pip-version-check -r "$SUITE/requirements.txt"
    echo "$WANT" >"$STAMP"
fi
PY=$VENV/bin/python

# Loopback only, whatever the environment says about proxies; and no
# credentials or base URLs from the environment reach the SDKs.
export NO_PROXY=127.0.0.1,localhost no_proxy=127.0.0.1,localhost
unset HTTP_PROXY HTTPS_PROXY ALL_PROXY http_proxy https_proxy all_proxy
unset OPENAI_API_KEY OPENAI_BASE_URL OPENAI_ORG_ID OPENAI_PROJECT_ID
unset ANTHROPIC_API_KEY ANTHROPIC_AUTH_TOKEN ANTHROPIC_BASE_URL ANTHROPIC_PROFILE ANTHROPIC_CONFIG_DIR
unset TOLLGATE_MASTER_KEY TOLLGATE_CONFIG DATABASE_URL

# 3. Free ports (held together while chosen, so they differ) and the mocks.
read -r P1 P2 PG < <("$PY" -c '
import socket
socks = [socket.socket() for _ in range(3)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in socks))
')
[[ -n $PG ]] || { echo "conformance: could not pick free ports" >&2; exit 1; }
WORK=$(mktemp -d)

target/debug/loadtest mock --listen "127.0.0.1:$P1" --tokens-per-second 0 --ttft 0s \
    --output-tokens 8 --reasoning-tokens 2 --cached-tokens 3 >"$WORK/mock.log" 2>&1 &
PIDS+=($!)
target/debug/loadtest mock --listen "127.0.0.1:$P2" --fail-status 429 >"$WORK/mock-429.log" 2>&1 &
PIDS+=($!)

# 4. The gateway.
MASTER_KEY=conformance-master-key
cat >"$WORK/tollgate.toml" <<EOF
[server]
listen = "127.0.0.1:$PG"
master_key = "$MASTER_KEY"

[database]
url = "sqlite://$WORK/tollgate.db"

[ledger]
spool_dir = "$WORK/spool"

[providers.oai]
kind = "openai"
base_url = "http://127.0.0.1:$P1/v1"

[providers.ant]
kind = "anthropic"
base_url = "http://127.0.0.1:$P1"
api_key = "sk-ant-conformance"

[providers.oai_resp]
kind = "openai"
base_url = "http://127.0.0.1:$P1/v1"
responses = true

[providers.limited]
kind = "openai"
base_url = "http://127.0.0.1:$P2/v1"

[providers.limited_resp]
kind = "openai"
base_url = "http://127.0.0.1:$P2/v1"
responses = true

[providers.limited_ant]
kind = "anthropic"
base_url = "http://127.0.0.1:$P2"

[models."gpt-mock"]
provider = "oai"

[models."claude-mock"]
provider = "ant"

[models."resp-mock"]
provider = "oai_resp"

[models."limited"]
provider = "limited"

[models."limited-resp"]
provider = "limited_resp"

[models."limited-claude"]
provider = "limited_ant"
EOF
target/debug/tollgate serve --config "$WORK/tollgate.toml" >"$WORK/tollgate.log" 2>&1 &
PIDS+=($!)
GATEWAY_PID=$!
URL=http://127.0.0.1:$PG

# 5. Wait for the gateway to answer and the mocks to listen.
wait_http "mock upstream" "${PIDS[0]}" "http://127.0.0.1:$P1/" any
wait_http "429 mock upstream" "${PIDS[1]}" "http://127.0.0.1:$P2/" any
wait_http tollgate "$GATEWAY_PID" "$URL/healthz" 200

# 6. A virtual key: an org, a team, a key, through the admin API.
VIRTUAL_KEY=$("$PY" - "$URL" "$MASTER_KEY" <<'EOF'
import json
import sys
import urllib.request

url, master_key = sys.argv[1:]


def post(path, body):
    req = urllib.request.Request(
        url + path,
        data=json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {master_key}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.load(resp)


org = post("/admin/orgs", {"name": "conformance"})
team = post("/admin/teams", {"org_id": org["id"], "name": "sdk"})
key = post("/admin/keys", {"team_id": team["id"], "name": "sdk"})
print(key["key"])
EOF
)

# 7. The suite.
export TOLLGATE_URL=$URL TOLLGATE_KEY=$VIRTUAL_KEY TOLLGATE_MASTER_KEY=$MASTER_KEY
export PYTHONDONTWRITEBYTECODE=1
timeout 300 "$PY" -m pytest -q -p no:cacheprovider "$SUITE" "$@"
