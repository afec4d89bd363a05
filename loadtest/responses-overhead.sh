#!/usr/bin/env bash
# What the Responses door costs beside the chat door: the same bounded load
# of streamed (then whole) answers, in one run, straight at the mock
# upstream and through the gateway:
#   - chat completions, direct and through Tollgate (the baseline door);
#   - Responses requests translated to chat completions (what Codex on Kimi,
#     GLM or DeepSeek costs);
#   - Responses requests passed through to an upstream that serves the
#     Responses API itself, and the same straight at the mock.
# Loopback only; stops by itself.
#   loadtest/responses-overhead.sh [SECONDS] [CONCURRENCY]
set -euo pipefail
secs=${1:-8}
conc=${2:-32}
mock_port=19092
gw_port=18082
key=responses-overhead-key
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
[providers.chat]
kind = "openai"
base_url = "http://127.0.0.1:$mock_port/v1"
[providers.native]
kind = "openai"
base_url = "http://127.0.0.1:$mock_port/v1"
responses = true
[models.demo]
provider = "chat"
[models.native]
provider = "native"
TOML
start_gateway "$gw_port"

drive() { "$bin/loadtest" drive --duration "${secs}s" --concurrency "$conc" --api-key "$key" "$@"; }
mock=http://127.0.0.1:$mock_port/v1
gw=http://127.0.0.1:$gw_port/v1
for mode in stream plain; do
    flag=(); [ "$mode" = stream ] && flag=(--stream)
    echo "== $mode"
    compare \
        "chat, via tollgate" "$(drive --base-url "$gw" --model demo --api chat "${flag[@]}")" \
        "responses -> chat, via tollgate" "$(drive --base-url "$gw" --model demo --api responses "${flag[@]}")" \
        "responses pass-through, via tollgate" "$(drive --base-url "$gw" --model native --api responses "${flag[@]}")" \
        "chat, direct to mock" "$(drive --base-url "$mock" --model demo --api chat "${flag[@]}")" \
        "responses, direct to mock" "$(drive --base-url "$mock" --model native --api responses "${flag[@]}")"
done
