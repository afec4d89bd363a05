#!/usr/bin/env bash
# What choosing a route costs: the same bounded load straight at the mock
# upstream (the baseline), through the gateway to a plain model, and through
# a two-candidate `cheapest` route (needs estimated with the tokenizer,
# candidates planned), for a short and a long prompt. Loopback only; stops
# by itself.
#   loadtest/route-overhead.sh [SECONDS] [CONCURRENCY]
set -euo pipefail
secs=${1:-8}
conc=${2:-32}
mock_port=19091
gw_port=18081
key=route-overhead-key
source "$(dirname "$0")/harness.sh"

start_mock "$mock_port"
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
start_gateway "$gw_port"

drive() { "$bin/loadtest" drive --duration "${secs}s" --concurrency "$conc" --api-key "$key" "$@"; }
for words in 64 20000; do
    direct=$(drive --base-url "http://127.0.0.1:$mock_port/v1" --model demo --prompt-words "$words")
    model=$(drive --base-url "http://127.0.0.1:$gw_port/v1" --model demo --prompt-words "$words")
    route=$(drive --base-url "http://127.0.0.1:$gw_port/v1" --model auto --prompt-words "$words")
    compare "$words words, direct" "$direct" "$words words, model" "$model" "$words words, route" "$route"
done
