#!/usr/bin/env bash
# Drives the real agent CLIs (Claude Code, Codex CLI, pinned in
# package-lock.json) through a real gateway against the mock upstream, on an
# OpenAI-format backend, an Anthropic backend and a Responses pass-through:
# a plain answer and a tool round trip each (see agents.py).
#
# Nothing reaches the network: the run happens inside a network namespace
# that has only loopback (`unshare --net`). Without one it refuses to run
# under CI and skips otherwise.
#
#   gateway/tests/agents/run.sh [SCENARIO-NAME-SUBSTRING ...]
#
# AGENTS_SKIP_BUILD=1 uses the binaries already in target/debug.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)
AGENTS=gateway/tests/agents
cd "$ROOT"

if [[ -z ${TOLLGATE_AGENTS_NETNS:-} ]]; then
    # 1. The CLIs, exactly as the lock file pins them (reinstalled when it changes).
    STAMP=$AGENTS/node_modules/.lock-stamp
    WANT=$(sha256sum "$AGENTS/package-lock.json" | cut -d' ' -f1)
    if [[ ! -f $STAMP || $(cat "$STAMP") != "$WANT" ]]; then
        command -v npm >/dev/null || { echo "agents: npm not found (install Node.js 20 and npm)" >&2; exit 1; }
        echo "agents: installing the pinned agent CLIs (npm ci)" >&2
        (cd "$AGENTS" && npm ci --no-audit --no-fund --loglevel=error)
        echo "$WANT" >"$STAMP"
    fi
    # 2. The binaries.
    if [[ ${AGENTS_SKIP_BUILD:-0} != 1 ]]; then
        cargo build -j2 --locked --bins
    fi
    # 3. Into a namespace with nothing but loopback.
    if unshare --net true 2>/dev/null; then
        exec unshare --net env TOLLGATE_AGENTS_NETNS=1 "$0" "$@"
    fi
    if [[ -n ${CI:-} ]]; then
        echo "agents: cannot create a network namespace (unshare --net); the agents must not run with network access" >&2
        exit 1
    fi
    echo "agents: skipped: no network namespace available here (unshare --net), and the agents must not run with network access" >&2
    exit 0
fi

ip link set lo up
# Loopback only, whatever the environment says about proxies.
unset HTTP_PROXY HTTPS_PROXY ALL_PROXY http_proxy https_proxy all_proxy
timeout 600 python3 "$AGENTS/agents.py" "$@"
