#!/usr/bin/env bash
# What Tollgate adds to an agent fleet's traffic, side by side in one run:
# the same load straight at the unpaced mock upstream (64-token answers,
# 64-word prompts), through Tollgate (a virtual key under hard org and team
# budgets and rate limits, the SQLite ledger) and, when nginx is installed,
# through a bare nginx proxy hop to the same mock. For chat completions
# (whole, streamed, and translated from Messages), the Messages API (passed
# through and translated) and the Responses API (passed through and
# translated from Messages and from chat); then the latency
# Tollgate adds at a fixed 1,000 req/s (open loop), and its memory: idle
# after the runs, and with 2,000 streams held open by a slow upstream.
# Loopback only; stops by itself.
#   loadtest/wire-speed.sh [SECONDS] [CONCURRENCY] [PLOT_DIR]
set -euo pipefail
secs=${1:-8}
conc=${2:-64}
plots=${3:-}
mock_port=19690
slow_port=19691
gw_port=18680
nginx_port=18681
open_streams=2000
master=wire-speed-master-key-0123456789
source "$(dirname "$0")/harness.sh"
[ -z "$plots" ] || mkdir -p "$plots"
# Thousands of open streams need as many descriptors in each process.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

start_mock "$mock_port"
mock_pid=${pids[-1]}
# A slow upstream for the open-stream count: 64 tokens at 8 a second.
RUST_LOG=warn "$bin/loadtest" mock --listen "127.0.0.1:$slow_port" --ttft 0s --tokens-per-second 8 --output-tokens 64 &
pids+=($!)
{
    doors_toml "$gw_port" "$mock_port"
    cat <<TOML
[providers.slow]
kind = "openai"
base_url = "http://127.0.0.1:$slow_port/v1"
[models.slow]
provider = "slow"
input_per_mtok = 1.0
output_per_mtok = 2.0
TOML
} > "$work/tollgate.toml"
start_gateway "$gw_port"
key=$(limited_key "$gw_port")

nginx_target=()
if command -v nginx >/dev/null; then
    mkdir -p "$work/nginx"
    cat > "$work/nginx/nginx.conf" <<NGINX
$([ "$(id -u)" = 0 ] && echo "user root;")
worker_processes 2;
daemon off;
error_log $work/nginx/error.log warn;
pid $work/nginx/nginx.pid;
events { worker_connections 8192; }
http {
    access_log off;
    client_body_temp_path $work/nginx/body;
    proxy_temp_path $work/nginx/proxy;
    upstream mock { server 127.0.0.1:$mock_port; keepalive 256; }
    server {
        listen 127.0.0.1:$nginx_port;
        location / {
            proxy_pass http://mock;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
        }
    }
}
NGINX
    nginx -p "$work/nginx" -c "$work/nginx/nginx.conf" &
    pids+=($!)
    nginx_target=(--target "nginx=http://127.0.0.1:$nginx_port/v1")
else
    echo "(nginx is not installed: the nginx hop is left out)" >&2
fi

# compare NAME MODEL [FLAGS...]: the mock, Tollgate and (for OpenAI-shaped
# runs) nginx under the same load.
compare() {
    local name=$1 model=$2
    shift 2
    local plot=()
    [ -z "$plots" ] || plot=(--plot "$plots/$name.svg")
    "$bin/loadtest" compare --quiet --warm-up 1s --duration "${secs}s" --model "$model" \
        --api-key "$master" --key "tollgate=$key" --pid "tollgate=$gw_pid" --pid "mock=$mock_pid" \
        --target "mock=http://127.0.0.1:$mock_port/v1" \
        --target "tollgate=http://127.0.0.1:$gw_port/v1" "${plot[@]}" "$@"
    echo
}

compare chat-whole demo --concurrency "$conc" "${nginx_target[@]}"
compare chat-streamed demo --concurrency "$conc" --stream "${nginx_target[@]}"
compare messages-passed-through claude-demo --api messages --concurrency "$conc" --stream
compare messages-translated demo --api messages --concurrency "$conc" --stream
compare chat-translated claude-demo --concurrency "$conc" --stream
compare responses-passed-through demo --api responses --concurrency "$conc" --stream
compare responses-translated claude-demo --api responses --concurrency "$conc" --stream
compare responses-translated-from-chat chat-demo --api responses --concurrency "$conc" --stream
compare chat-whole-1000rps demo --rate 1000
compare chat-streamed-1000rps demo --rate 1000 --stream

rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }
sleep 2
idle=$(rss_kib "$gw_pid")
echo "tollgate idle after the runs: $((idle / 1024)) MiB"
"$bin/loadtest" compare --quiet --duration 4s --model slow --stream --concurrency "$open_streams" \
    --api-key "$key" --pid "tollgate=$gw_pid" --target "tollgate=http://127.0.0.1:$gw_port/v1" --json \
    > "$work/open.json"
python3 - "$work/open.json" "$idle" "$open_streams" <<'PY'
import json, sys
runs = json.load(open(sys.argv[1]))
run = runs[0] if isinstance(runs, list) else runs
text = json.dumps(run)
peak = None
def find(o):
    global peak
    if isinstance(o, dict):
        for k, v in o.items():
            if k in ("rss_peak_mib", "peak_rss_mib", "rss_peak_kib", "peak_rss_kib"):
                peak = (k, v)
            find(v)
    elif isinstance(o, list):
        for v in o:
            find(v)
find(run)
idle_kib, n = int(sys.argv[2]), int(sys.argv[3])
if peak is None:
    print("no peak RSS in the report:", text[:400])
    sys.exit(1)
k, v = peak
peak_kib = v * 1024 if k.endswith("mib") else v
print(f"tollgate with {n} streams open: peak {peak_kib / 1024:.0f} MiB, "
      f"{(peak_kib - idle_kib) / n:.1f} KiB per open stream over idle")
PY
