#!/usr/bin/env bash
# Counts the instructions the gateway spends on one request, with valgrind's
# callgrind: repeatable on a noisy machine where seconds are not. For each
# kind of request the gateway runs under callgrind against the unpaced mock
# (64-token answers, 64-word prompts, a virtual key under hard org and team
# budgets and rate limits, the SQLite ledger), takes a warm-up, zeroes the counters, serves
# REQUESTS more, and the instructions counted (every thread: server, relay,
# ledger writer) are divided by REQUESTS. The warm-up (WARMUP requests of
# the kind, 200 by default) lets each ledger connection prepare its insert
# statements once, as a running gateway has long done: 20 requests left
# about one prepare in five requests in the count, an eighth of a whole
# answer's instructions. Loopback only; stops by itself.
#   [WARMUP=200] loadtest/callgrind.sh [REQUESTS] [KIND...]
# KIND is one of chat, chat-stream, messages, messages-stream,
# messages-translated-stream, chat-translated-stream, responses-stream,
# responses-translated-stream, responses-chat-translated-stream (all by
# default). GATEWAY_BIN=path counts another build of the gateway
# under the same requests (to show what a change saved).
set -euo pipefail
requests=${1:-200}
warmup=${WARMUP:-200}
shift || true
kinds=("$@")
[ ${#kinds[@]} -gt 0 ] || kinds=(chat chat-stream messages messages-stream
    messages-translated-stream chat-translated-stream responses-stream
    responses-translated-stream responses-chat-translated-stream)
command -v valgrind >/dev/null || { echo "valgrind is needed (apt-get install valgrind)" >&2; exit 1; }
mock_port=${MOCK_PORT:-19190}
gw_port=${GATEWAY_PORT:-18180}
master=callgrind-master-key-0123456789
source "$(dirname "$0")/harness.sh"

start_mock "$mock_port"
doors_toml "$gw_port" "$mock_port" > "$work/tollgate.toml"

gw_log=$work/gateway.log
# run_gateway: the gateway under callgrind, ready; its pid in gw_pid.
run_gateway() {
    RUST_LOG=warn valgrind --tool=callgrind --callgrind-out-file="$work/callgrind.%p" \
        "$gateway_bin" serve --config "$work/tollgate.toml" >>"$gw_log" 2>&1 &
    gw_pid=$!
    pids+=($gw_pid)
    for _ in $(seq 600); do
        curl -sf "http://127.0.0.1:$gw_port/readyz" >/dev/null && return
        sleep 0.2
    done
    echo "the gateway did not become ready under callgrind" >&2
    tail -20 "$gw_log" >&2
    exit 1
}

run_gateway
# A virtual key under hard budgets and rate limits, so admission does its work.
vkey=$(limited_key "$gw_port")

# drive KIND N: N requests of KIND, one at a time.
drive() {
    local kind=$1 n=$2 api=chat model=demo stream=()
    case $kind in
        chat) ;;
        chat-stream) stream=(--stream) ;;
        messages) api=messages model=claude-demo ;;
        messages-stream) api=messages model=claude-demo stream=(--stream) ;;
        messages-translated-stream) api=messages stream=(--stream) ;;
        chat-translated-stream) model=claude-demo stream=(--stream) ;;
        responses-chat-translated-stream) api=responses model=chat-demo stream=(--stream) ;;
        responses-stream) api=responses stream=(--stream) ;;
        responses-translated-stream) api=responses model=claude-demo stream=(--stream) ;;
        *) echo "unknown kind $kind" >&2; exit 2 ;;
    esac
    "$bin/loadtest" drive --base-url "http://127.0.0.1:$gw_port/v1" --api "$api" \
        --model "$model" --api-key "$vkey" --requests "$n" --concurrency 1 \
        --duration 600s --quiet "${stream[@]}" >/dev/null
}

# The counters' total: instructions executed since the last zeroing.
total_ir() {
    local out
    callgrind_control -d "$gw_pid" >/dev/null 2>&1
    out=$(ls -t "$work"/callgrind."$gw_pid"* | head -1)
    awk '/^(summary|totals):/ { print $2; exit }' "$out"
}

printf '%-30s %14s %10s\n' kind instructions per-request
for kind in "${kinds[@]}"; do
    drive "$kind" "$warmup"
    callgrind_control -z "$gw_pid" >/dev/null 2>&1
    drive "$kind" "$requests"
    ir=$(total_ir)
    if [ -n "${CALLGRIND_KEEP:-}" ]; then
        mkdir -p "$CALLGRIND_KEEP"
        cp "$(ls -t "$work"/callgrind."$gw_pid"* | head -1)" "$CALLGRIND_KEEP/callgrind.$kind"
    fi
    printf '%-30s %14s %10d\n' "$kind" "$ir" $((ir / requests))
done
