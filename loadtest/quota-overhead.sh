#!/usr/bin/env bash
# What budgets and rate limits cost on the request path: the same bounded
# load through the gateway with a virtual key that has no quotas, and with
# one under a hard team budget, an org budget and key rate limits (worst
# case estimated with the tokenizer, reserved, settled). The mock upstream
# direct is the baseline. With REDIS_URL set, the same quotas are also
# counted in Redis (one script call per admission, batched settlements).
# Loopback only; stops by itself.
#   [REDIS_URL=redis://127.0.0.1:6379] loadtest/quota-overhead.sh [SECONDS] [CONCURRENCY]
set -euo pipefail
secs=${1:-8}
conc=${2:-32}
mock_port=19092
gw_port=18082
master=quota-overhead-key
source "$(dirname "$0")/harness.sh"

start_mock "$mock_port"
# write_config PORT NAME [EXTRA]: a gateway config with its own database.
write_config() {
    cat > "$work/$2.toml" <<TOML
[server]
listen = "127.0.0.1:$1"
master_key = "$master"
[database]
url = "sqlite://$work/$2.db"
[ledger]
spool_dir = "$work/$2-spool"
[providers.mock]
kind = "openai"
base_url = "http://127.0.0.1:$mock_port/v1"
[models.demo]
provider = "mock"
input_per_mtok = 1.0
output_per_mtok = 2.0
${3:-}
TOML
}
write_config "$gw_port" tollgate
start_gateway "$gw_port"

plain_org=$(admin "$gw_port" /admin/orgs '{"name": "load-plain"}' | field id)
plain_team=$(admin "$gw_port" /admin/teams "{\"org_id\": \"$plain_org\", \"name\": \"plain\"}" | field id)
plain_key=$(admin "$gw_port" /admin/keys "{\"team_id\": \"$plain_team\"}" | field key)
local_key=$(limited_key "$gw_port")

drive() { "$bin/loadtest" drive --duration "${secs}s" --concurrency "$conc" --model demo --prompt-words 64 "$@"; }
direct=$(drive --base-url "http://127.0.0.1:$mock_port/v1" --api-key "$master")
plain=$(drive --base-url "http://127.0.0.1:$gw_port/v1" --api-key "$plain_key")
limited=$(drive --base-url "http://127.0.0.1:$gw_port/v1" --api-key "$local_key")
runs=("direct" "$direct" "key, no quotas" "$plain" "key, budgets+limits" "$limited")

# With REDIS_URL set, the same quotas counted in Redis by a second gateway.
if [ -n "${REDIS_URL:-}" ]; then
    kill "$gw_pid"
    prefix="tollgate-load-$$"
    redis_port=$((gw_port + 1))
    write_config "$redis_port" shared "[redis]
url = \"$REDIS_URL\"
prefix = \"$prefix\""
    start_gateway "$redis_port" "$work/shared.toml"
    shared_key=$(limited_key "$redis_port")
    shared=$(drive --base-url "http://127.0.0.1:$redis_port/v1" --api-key "$shared_key")
    runs+=("same, in Redis" "$shared")
    redis-cli -u "$REDIS_URL" --scan --pattern "$prefix:*" | xargs -r redis-cli -u "$REDIS_URL" del >/dev/null
fi
compare "${runs[@]}"
