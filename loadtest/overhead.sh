#!/usr/bin/env bash
# Measures what Tollgate adds: the same bounded load straight at the mock
# upstream (the baseline), then through the gateway to the same mock, for
# plain and streamed chat completions. Loopback only; stops by itself.
#   loadtest/overhead.sh [SECONDS] [CONCURRENCY]
set -euo pipefail
secs=${1:-10}
conc=${2:-32}
mock_port=19090
gw_port=18080
key=overhead-test-key
source "$(dirname "$0")/harness.sh"

start_mock "$mock_port"
cat > "$work/tollgate.toml" <<TOML
[server]
listen = "127.0.0.1:$gw_port"
master_key = "$key"
$(ledger_toml)
[providers.mock]
kind = "openai"
base_url = "http://127.0.0.1:$mock_port/v1"
[models.demo]
provider = "mock"
TOML
start_gateway "$gw_port"

# CPU seconds (user + system) the gateway process has used so far.
gw_cpu() { awk -v hz="$(getconf CLK_TCK)" '{ printf "%.3f", ($14 + $15) / hz }' "/proc/$gw_pid/stat"; }
drive() { "$bin/loadtest" drive --duration "${secs}s" --concurrency "$conc" --model demo --api-key "$key" "$@"; }
for mode in plain stream; do
    flag=(); [ "$mode" = stream ] && flag=(--stream)
    direct=$(drive --base-url "http://127.0.0.1:$mock_port/v1" "${flag[@]}")
    cpu0=$(gw_cpu)
    via=$(drive --base-url "http://127.0.0.1:$gw_port/v1" "${flag[@]}")
    cpu1=$(gw_cpu)
    python3 - "$mode" "$direct" "$via" "$cpu0" "$cpu1" <<'PY'
import json, sys
mode, d, v = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3])
cpu = float(sys.argv[5]) - float(sys.argv[4])
print(f"{mode}: direct {d['requests_per_s']:.0f} req/s p50 {d['latency']['p50_ms']:.2f} ms p99 {d['latency']['p99_ms']:.2f} ms errors {d['errors']}")
print(f"{mode}: via tollgate {v['requests_per_s']:.0f} req/s p50 {v['latency']['p50_ms']:.2f} ms p99 {v['latency']['p99_ms']:.2f} ms errors {v['errors']}")
print(f"{mode}: throughput ratio {v['requests_per_s']/d['requests_per_s']:.2f}, p50 added {v['latency']['p50_ms']-d['latency']['p50_ms']:.2f} ms")
print(f"{mode}: gateway CPU {cpu * 1e6 / max(v['ok'], 1):.0f} us per request (all three processes share 2 cores)")
PY
done
