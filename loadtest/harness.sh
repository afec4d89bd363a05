# Shared by the overhead scripts (sourced, not run): builds the release
# binaries, starts a mock upstream and the gateway on loopback, waits for
# them, and stops everything it started when the script exits.

cd "$(dirname "${BASH_SOURCE[0]}")/.."
cargo build --release -j2 -p tollgate -p tollgate-loadtest >&2
bin=${CARGO_TARGET_DIR:-target}/release
# The gateway binary to measure: this checkout's, or another build's
# (GATEWAY_BIN=path) to compare two versions with the same load.
gateway_bin=${GATEWAY_BIN:-$bin/tollgate}
work=$(mktemp -d)
pids=()
harness_cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait "${pids[@]}" 2>/dev/null || true; rm -rf "$work"; }
trap harness_cleanup EXIT

# start_mock PORT: an unpaced mock answering 64 tokens.
start_mock() {
    RUST_LOG=warn "$bin/loadtest" mock --listen "127.0.0.1:$1" --ttft 0s --tokens-per-second 0 --output-tokens 64 &
    pids+=($!)
}

# ledger_toml: config sections keeping the SQLite ledger and its spool in
# the run's scratch directory.
ledger_toml() {
    printf '[database]\nurl = "sqlite://%s/ledger.db"\n[ledger]\nspool_dir = "%s/spool"\n' "$work" "$work"
}

# doors_toml GATEWAY_PORT MOCK_PORT: a gateway on GATEWAY_PORT (master key
# $master, ledger in the scratch directory) in front of the mock on
# MOCK_PORT as three priced models: `demo` in OpenAI's format (which also
# serves the Responses API), `claude-demo` in Anthropic's and `chat-demo`
# in OpenAI's chat format only (as most vendors are: the Responses door
# translates for it).
doors_toml() {
    cat <<TOML
[server]
listen = "127.0.0.1:$1"
master_key = "$master"
$(ledger_toml)
[providers.openai]
kind = "openai"
base_url = "http://127.0.0.1:$2/v1"
responses = true
[providers.anthropic]
kind = "anthropic"
base_url = "http://127.0.0.1:$2"
[providers.chat]
kind = "openai"
base_url = "http://127.0.0.1:$2/v1"
[models.demo]
provider = "openai"
input_per_mtok = 1.0
output_per_mtok = 2.0
[models.claude-demo]
provider = "anthropic"
upstream_model = "demo"
input_per_mtok = 1.0
output_per_mtok = 2.0
[models.chat-demo]
provider = "chat"
upstream_model = "demo"
input_per_mtok = 1.0
output_per_mtok = 2.0
TOML
}

# start_gateway PORT [CONFIG]: the gateway on CONFIG ($work/tollgate.toml by
# default), once it is ready; its pid in gw_pid.
start_gateway() {
    RUST_LOG=warn "$gateway_bin" serve --config "${2:-$work/tollgate.toml}" &
    gw_pid=$!
    pids+=($gw_pid)
    for _ in $(seq 100); do
        curl -sf "http://127.0.0.1:$1/readyz" >/dev/null && return
        sleep 0.1
    done
    echo "the gateway did not become ready" >&2
    exit 1
}

# compare NAME JSON [NAME JSON ...]: each run's throughput and latency, with
# its throughput as a share of the first run's.
compare() {
    python3 - "$@" <<'PY'
import json, sys
args = sys.argv[1:]
runs = [(args[i], json.loads(args[i + 1])) for i in range(0, len(args), 2)]
base = runs[0][1]["requests_per_s"]
width = max(len(n) for n, _ in runs)
for name, r in runs:
    print(f"{name:{width}}: {r['requests_per_s']:7.0f} req/s ({r['requests_per_s'] / base:.2f} of {runs[0][0]}) "
          f"p50 {r['latency']['p50_ms']:.2f} ms p99 {r['latency']['p99_ms']:.2f} ms errors {r['errors']}")
PY
}

# admin PORT PATH JSON: an admin API call with the master key in $master.
admin() { curl -sf "http://127.0.0.1:$1$2" -H "Authorization: Bearer $master" -H 'content-type: application/json' -d "$3"; }
field() { python3 -c "import json,sys; print(json.load(sys.stdin)['$1'])"; }
# limited_key PORT: a key under hard org and team budgets and key rate limits.
limited_key() {
    local org team
    org=$(admin "$1" /admin/orgs '{"name": "load", "budget": {"limit_usd": 100000, "period": "monthly", "enforcement": "hard"}}' | field id)
    team=$(admin "$1" /admin/teams "{\"org_id\": \"$org\", \"name\": \"limited\", \"budget\": {\"limit_usd\": 100000, \"period\": \"daily\", \"enforcement\": \"hard\"}}" | field id)
    admin "$1" /admin/keys "{\"team_id\": \"$team\", \"limits\": {\"rpm\": 100000000, \"tpm\": 100000000000, \"max_concurrent\": 100000}}" | field key
}
