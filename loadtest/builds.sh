#!/usr/bin/env bash
# Several builds of the gateway side by side in one run: each NAME=BINARY
# (optionally NAME=BINARY:VAR=VALUE,VAR=VALUE for its environment) runs in
# front of the same unpaced mock (64-token answers, 64-word prompts) with
# its own SQLite ledger and a virtual key under hard budgets and rate
# limits, and `loadtest compare` sends each the same load in turn: whole
# chat answers, chat streams and Responses streams translated from
# Messages, with every gateway's CPU per request and RSS. The first build
# is the baseline of the ratios. The builds run one after another, and the
# first of a run tends to come out slower: name each build twice
# (a=..., b=..., a2=..., b2=...) to see how far two runs of the same
# build differ. Loopback only; stops by itself.
#   loadtest/builds.sh [SECONDS] NAME=BINARY[:ENV] NAME=BINARY[:ENV] ...
# For example, this checkout against the last release's binary:
#   cargo build --release -p tollgate
#   loadtest/builds.sh 8 old=/usr/local/bin/tollgate new=target/release/tollgate \
#       old2=/usr/local/bin/tollgate new2=target/release/tollgate
set -euo pipefail
secs=8
if [[ ${1:-} =~ ^[0-9]+$ ]]; then
    secs=$1
    shift
fi
[ $# -ge 2 ] || { echo "usage: $0 [SECONDS] NAME=BINARY[:ENV] NAME=BINARY[:ENV] ..." >&2; exit 2; }
mock_port=${MOCK_PORT:-19890}
first_port=${GATEWAY_PORT:-18890}
master=builds-master-key-0123456789abcdef
source "$(dirname "$0")/harness.sh"
ulimit -n 65536 2>/dev/null || true
start_mock "$mock_port"
targets=() keys=() gw_pids=()
port=$first_port
for spec in "$@"; do
    name=${spec%%=*}
    rest=${spec#*=}
    binary=${rest%%:*}
    envs=()
    [[ $rest == *:* ]] && IFS=, read -r -a envs <<<"${rest#*:}"
    [[ -x $binary ]] || { echo "$binary is not an executable" >&2; exit 2; }
    mkdir -p "$work/$name"
    (work=$work/$name; doors_toml "$port" "$mock_port") > "$work/$name/tollgate.toml"
    env "${envs[@]}" RUST_LOG=warn "$binary" serve --config "$work/$name/tollgate.toml" &
    pids+=($!)
    gw_pids+=(--pid "$name=$!")
    for _ in $(seq 100); do
        curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && break
        sleep 0.1
    done
    keys+=(--key "$name=$(limited_key "$port")")
    targets+=(--target "$name=http://127.0.0.1:$port/v1")
    port=$((port + 1))
done
run() {
    "$bin/loadtest" compare --quiet --warm-up 1s --duration "${secs}s" --concurrency 64 \
        --api-key "$master" "${keys[@]}" "${gw_pids[@]}" "${targets[@]}" "$@"
    echo
}
run --model demo
run --model demo --stream
run --model claude-demo --api responses --stream
