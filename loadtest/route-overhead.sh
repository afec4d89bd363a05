#!/usr/bin/env bash
# What choosing a route costs: the same bounded load straight at the mock
# upstream (the baseline), through the gateway to a plain model, and through
# a two-candidate `cheapest` route (needs estimated with the tokenizer,
# candidates planned), for a short and a long prompt. Loopback only; stops
# by itself.
#   loadtest/route-overhead.sh [SECONDS] [CONCURRENCY]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-8}
conc=${2:-32}
mock_port=19091
gw_port=18081
key=route-overhead-key

cargo build --release -j2 -p tollgate -p tollgate-loadtest >&2
bin=target/release
work=$(mktemp -d)
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait "${pids[@]}" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

RUST_LOG=warn "$bin/loadtest" mock --listen "127.0.0.1:$mock_port" --ttft 0s --tokens-per-second 0 --output-tokens 64 &
pids+=($!)
cat > "$work/tollgate.toml" <<TOML
[server]
listen = "127.0.0.1:$gw_port"
master_key = "$key"
[database]
url = "sqlite://$work/tollgate.db"
[ledger]
spool_dir = "$work/spool"
[providers.mock]
kind = "openai"
base_url = "http://127.0.0.1:$mock_port/v1"
[models.demo]
provider = "mock"
input_per_mtok = 1.0
output_per_mtok = 2.0
[models.other]
provider = "mock"
input_per_mtok = 2.0
output_per_mtok = 1.0
[routes.auto]
candidates = ["demo", "other"]
strategy = "cheapest"
TOML
RUST_LOG=warn "$bin/tollgate" serve --config "$work/tollgate.toml" &
pids+=($!)
for _ in $(seq 100); do
    curl -sf "http://127.0.0.1:$gw_port/readyz" >/dev/null && break
    sleep 0.1
done

drive() { "$bin/loadtest" drive --duration "${secs}s" --concurrency "$conc" --api-key "$key" "$@"; }
for words in 64 20000; do
    direct=$(drive --base-url "http://127.0.0.1:$mock_port/v1" --model demo --prompt-words "$words")
    model=$(drive --base-url "http://127.0.0.1:$gw_port/v1" --model demo --prompt-words "$words")
    route=$(drive --base-url "http://127.0.0.1:$gw_port/v1" --model auto --prompt-words "$words")
    python3 - "$words" "$direct" "$model" "$route" <<'PY'
import json, sys
words = sys.argv[1]
runs = [("direct", json.loads(sys.argv[2])), ("model", json.loads(sys.argv[3])), ("route", json.loads(sys.argv[4]))]
base = runs[0][1]["requests_per_s"]
for name, r in runs:
    print(f"{words} words, {name:6}: {r['requests_per_s']:7.0f} req/s ({r['requests_per_s'] / base:.2f} of direct) "
          f"p50 {r['latency']['p50_ms']:.2f} ms p99 {r['latency']['p99_ms']:.2f} ms errors {r['errors']}")
PY
done
