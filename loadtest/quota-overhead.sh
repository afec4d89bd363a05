#!/usr/bin/env bash
# What budgets and rate limits cost on the request path: the same bounded
# load through the gateway with a virtual key that has no quotas, and with
# one under a hard team budget, an org budget and key rate limits (worst
# case estimated with the tokenizer, reserved, settled). The mock upstream
# direct is the baseline. Loopback only; stops by itself.
#   loadtest/quota-overhead.sh [SECONDS] [CONCURRENCY]
set -euo pipefail
secs=${1:-8}
conc=${2:-32}
mock_port=19092
gw_port=18082
master=quota-overhead-key
source "$(dirname "$0")/harness.sh"

start_mock "$mock_port"
cat > "$work/tollgate.toml" <<TOML
[server]
listen = "127.0.0.1:$gw_port"
master_key = "$master"
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
TOML
start_gateway "$gw_port"

admin() { curl -sf "http://127.0.0.1:$gw_port$1" -H "Authorization: Bearer $master" -H 'content-type: application/json' -d "$2"; }
field() { python3 -c "import json,sys; print(json.load(sys.stdin)['$1'])"; }
org=$(admin /admin/orgs '{"name": "load", "budget": {"limit_usd": 100000, "period": "monthly", "enforcement": "hard"}}' | field id)
plain_org=$(admin /admin/orgs '{"name": "load-plain"}' | field id)
plain_team=$(admin /admin/teams "{\"org_id\": \"$plain_org\", \"name\": \"plain\"}" | field id)
plain_key=$(admin /admin/keys "{\"team_id\": \"$plain_team\"}" | field key)
team=$(admin /admin/teams "{\"org_id\": \"$org\", \"name\": \"limited\", \"budget\": {\"limit_usd\": 100000, \"period\": \"daily\", \"enforcement\": \"hard\"}}" | field id)
limited_key=$(admin /admin/keys "{\"team_id\": \"$team\", \"limits\": {\"rpm\": 100000000, \"tpm\": 100000000000, \"max_concurrent\": 100000}}" | field key)

drive() { "$bin/loadtest" drive --duration "${secs}s" --concurrency "$conc" --model demo --prompt-words 64 "$@"; }
direct=$(drive --base-url "http://127.0.0.1:$mock_port/v1" --api-key "$master")
plain=$(drive --base-url "http://127.0.0.1:$gw_port/v1" --api-key "$plain_key")
limited=$(drive --base-url "http://127.0.0.1:$gw_port/v1" --api-key "$limited_key")
compare "direct" "$direct" "key, no quotas" "$plain" "key, budgets+limits" "$limited"
