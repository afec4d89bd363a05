#!/usr/bin/env bash
# Proves the Grafana dashboards in dashboards/ on live data: a real gateway on
# a fresh PostgreSQL ledger (and Redis, when it answers), mock upstreams (one
# that fails, for fallbacks), a real Prometheus scraping the gateway every
# second, and a bounded mixed load (several organizations, teams, keys and
# models, streams, a fallback, a budget refusal, a client that hangs up).
# Then check.py evaluates every panel's query: Prometheus panels through
# Prometheus's HTTP API, SQL panels against the ledger with Grafana's macros
# substituted, exact figures against GET /admin/spend, and every metric name
# a dashboard uses against the gateway's /metrics.
#
#   gateway/tests/dashboards/run.sh
#
# DASHBOARDS_SKIP_BUILD=1 uses the binaries already in target/debug.
# PGHOST/PGPORT/PGUSER (or DATABASE_URL) pick the PostgreSQL server (default
# postgres@127.0.0.1:5432, trust auth), where the test creates a database of
# its own; REDIS_URL the Redis (default redis://127.0.0.1:6379);
# PROMETHEUS the Prometheus binary (default: prometheus on PATH).
# Without CI set, a missing PostgreSQL or Prometheus skips the test with a
# message; a missing Redis skips only the Redis panels. With CI set, each fails.
# DASHBOARDS_KEEP=1 leaves the work directory (logs, configs) for a look;
# DASHBOARDS_SHOW=1 prints what each Prometheus target returned.
# DASHBOARDS_DIR checks the dashboards in another directory (for example
# JSON exported from Grafana before it is folded into generate.py).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)
SUITE=$ROOT/gateway/tests/dashboards
cd "$ROOT"
# shellcheck source=../processes.sh
source gateway/tests/processes.sh
SUITE_NAME=dashboards

# The PostgreSQL server: PG* variables, else DATABASE_URL's (as for
# `cargo test`), else postgres@127.0.0.1:5432.
if [[ -n ${DATABASE_URL:-} && -z ${PGHOST:-} ]]; then
    eval "$(python3 - "$DATABASE_URL" <<'PY'
import shlex, sys, urllib.parse
u = urllib.parse.urlsplit(sys.argv[1])
for var, value in (("PGHOST", u.hostname), ("PGPORT", u.port), ("PGUSER", u.username),
                   ("PGPASSWORD", urllib.parse.unquote(u.password or ""))):
    if value:
        print(f"export {var}={shlex.quote(str(value))}")
PY
)"
fi
export PGHOST=${PGHOST:-127.0.0.1} PGPORT=${PGPORT:-5432} PGUSER=${PGUSER:-postgres}
REDIS_URL=${REDIS_URL:-redis://127.0.0.1:6379}
PROMETHEUS=${PROMETHEUS:-$(command -v prometheus || echo /usr/bin/prometheus)}

say() { echo "dashboards: $*" >&2; }

# A missing service fails under CI and skips (successfully) elsewhere.
missing() {
    if [[ -n ${CI:-} ]]; then
        say "FAILED: $*"
        exit 1
    fi
    say "SKIPPED: $* (set CI=1 to make this a failure)"
    exit 0
}

command -v python3 >/dev/null 2>&1 || { say "python3 is needed"; exit 1; }
command -v curl >/dev/null 2>&1 || { say "curl is needed"; exit 1; }
command -v psql >/dev/null 2>&1 || missing "psql (PostgreSQL client) is not installed"
[[ -x $PROMETHEUS ]] || missing "Prometheus is not installed (Debian: apt-get install prometheus)"
pg_ok() { psql -X -q -d postgres -c 'SELECT 1' >/dev/null 2>&1; }
pg_ok || missing "PostgreSQL does not answer at $PGUSER@$PGHOST:$PGPORT"

# Everything started here; the trap ends it all and removes what it made.
PIDS=()
WORK=
DB=
REDIS_PREFIX=

cleanup() {
    local status=$?
    trap - EXIT INT TERM
    stop_all "${PIDS[@]}"
    if [[ -n $DB ]]; then
        psql -X -q -d postgres -c "DROP DATABASE IF EXISTS \"$DB\" WITH (FORCE)" >/dev/null 2>&1 ||
            say "could not drop database $DB"
    fi
    if [[ -n $REDIS_PREFIX ]]; then
        redis-cli -u "$REDIS_URL" --scan --pattern "$REDIS_PREFIX*" 2>/dev/null |
            xargs -r -n 100 redis-cli -u "$REDIS_URL" del >/dev/null 2>&1 || true
    fi
    if [[ $status -ne 0 && -n $WORK ]]; then
        show_logs "$WORK" 30
    fi
    if [[ -n $WORK ]]; then
        if [[ ${DASHBOARDS_KEEP:-0} == 1 ]]; then
            say "work directory kept: $WORK"
        else
            rm -rf "$WORK"
        fi
    fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# 1. The checker imitates Grafana faithfully, and the dashboards are what
# generate.py writes.
export PYTHONDONTWRITEBYTECODE=1
if ! out=$(cd "$SUITE" && python3 -m unittest -q test_panels 2>&1); then
    echo "$out" >&2
    say "the checker's imitation of Grafana fails its own tests (test_panels.py)"
    exit 1
fi
DASHBOARDS_DIR=${DASHBOARDS_DIR:-}
if [[ -z $DASHBOARDS_DIR ]]; then
    python3 dashboards/generate.py --check
    DASHBOARDS_DIR=dashboards
fi

# 2. The binaries.
if [[ ${DASHBOARDS_SKIP_BUILD:-0} != 1 ]]; then
    cargo build -j2 --locked --bins
fi
for bin in target/debug/tollgate target/debug/loadtest; do
    [[ -x $bin ]] || { say "$bin is missing: build it or unset DASHBOARDS_SKIP_BUILD"; exit 1; }
done
BUILT=$SECONDS

# Loopback only, whatever the environment says about proxies.
export NO_PROXY=127.0.0.1,localhost no_proxy=127.0.0.1,localhost
unset HTTP_PROXY HTTPS_PROXY ALL_PROXY http_proxy https_proxy all_proxy
unset TOLLGATE_MASTER_KEY TOLLGATE_CONFIG DATABASE_URL

WORK=$(mktemp -d)

# 3. A fresh ledger database, and Redis under a prefix of our own.
DB=tollgate_dashboards_$$_$RANDOM
psql -X -q -d postgres -c "CREATE DATABASE \"$DB\"" >/dev/null
LEDGER_URL=$(python3 - "$PGUSER" "${PGPASSWORD:-}" "$PGHOST" "$PGPORT" "$DB" <<'PY'
import sys, urllib.parse
user, password, host, port, db = sys.argv[1:]
secret = ":" + urllib.parse.quote(password, safe="") if password else ""
print(f"postgres://{urllib.parse.quote(user, safe='')}{secret}@{host}:{port}/{db}")
PY
)
REDIS_TOML=
if command -v redis-cli >/dev/null 2>&1 && redis-cli -u "$REDIS_URL" ping 2>/dev/null | grep -q PONG; then
    REDIS_PREFIX=tollgate-dashboards-$$-$RANDOM:
    REDIS_TOML="[redis]
url = \"$REDIS_URL\"
prefix = \"$REDIS_PREFIX\"
on_failure = \"open\""
    REDIS_FLAG=--redis
elif [[ -n ${CI:-} ]]; then
    say "FAILED: Redis does not answer at $REDIS_URL"
    exit 1
else
    say "Redis does not answer at $REDIS_URL: the Redis panels are skipped"
    REDIS_FLAG=--no-redis
fi

# 4. Each server binds port 0 and logs the address it got: no port races
# with anything else running on this machine.
bound_port() { # NAME PID LOG: the port in the log's "listening addr=127.0.0.1:PORT"
    local name=$1 pid=$2 log=$3 port deadline=$((SECONDS + 30))
    while :; do
        port=$(sed -n 's/.*listening addr=127\.0\.0\.1:\([0-9]*\).*/\1/p' "$log" 2>/dev/null | head -n 1)
        [[ -n $port ]] && { echo "$port"; return 0; }
        kill -0 "$pid" 2>/dev/null || { say "$name exited before listening"; return 1; }
        ((SECONDS < deadline)) || { say "$name did not listen within 30s"; return 1; }
        sleep 0.05
    done
}

# 5. Mock upstreams: a healthy one (chat, Messages and Responses on one port),
# one that answers 500 (fallbacks, breaker, upstream errors), one that reports
# no usage (estimated usage), one whose streams drop, one that streams slowly
# (for the client that hangs up).
mock() { # NAME ARGS...: sets P_<NAME>
    local name=$1
    shift
    target/debug/loadtest mock --listen 127.0.0.1:0 "$@" >"$WORK/mock-$name.log" 2>&1 &
    PIDS+=($!)
    local port
    port=$(bound_port "mock $name" $! "$WORK/mock-$name.log")
    printf -v "P_${name^^}" '%s' "$port"
}
mock ok --ttft 20ms --tokens-per-second 400 --output-tokens 16 --reasoning-tokens 4 --cached-tokens 8
mock fail --fail-status 500
mock nousage --ttft 10ms --tokens-per-second 0 --usage-shape none
mock drop --ttft 10ms --tokens-per-second 200 --disconnect-after 3
mock slow --ttft 10ms --tokens-per-second 10 --output-tokens 400

# 6. The gateway: several models on several providers, a route with a
# reference model whose first candidate fails, the ledger in PostgreSQL,
# [metrics] left at its defaults.
MASTER_KEY=dashboards-master-key
cat >"$WORK/tollgate.toml" <<EOF
[server]
listen = "127.0.0.1:0"
master_key = "$MASTER_KEY"

[database]
url = "$LEDGER_URL"

[ledger]
spool_dir = "$WORK/spool"
flush_interval = "100ms"

[providers.openai]
kind = "openai"
base_url = "http://127.0.0.1:$P_OK/v1"

[providers.anthropic]
kind = "anthropic"
base_url = "http://127.0.0.1:$P_OK"
api_key = "sk-ant-dashboards"

[providers.broken]
kind = "openai"
base_url = "http://127.0.0.1:$P_FAIL/v1"

[providers.quiet]
kind = "openai"
base_url = "http://127.0.0.1:$P_NOUSAGE/v1"

[providers.flaky]
kind = "openai"
base_url = "http://127.0.0.1:$P_DROP/v1"

[providers.slow]
kind = "openai"
base_url = "http://127.0.0.1:$P_SLOW/v1"

[models."gpt-small"]
provider = "openai"
input_per_mtok = 0.15
cached_input_per_mtok = 0.075
output_per_mtok = 0.60

[models."gpt-large"]
provider = "openai"
input_per_mtok = 2.50
cached_input_per_mtok = 1.25
output_per_mtok = 10.00

[models."claude-mid"]
provider = "anthropic"
input_per_mtok = 3.00
cached_input_per_mtok = 0.30
cache_write_per_mtok = 3.75
output_per_mtok = 15.00

[models."broken-model"]
provider = "broken"
input_per_mtok = 1.00
output_per_mtok = 4.00

[models."estimated"]
provider = "quiet"
input_per_mtok = 0.50
output_per_mtok = 1.50

[models."dropper"]
provider = "flaky"
input_per_mtok = 0.50
output_per_mtok = 1.50

[models."slow-model"]
provider = "slow"
input_per_mtok = 0.50
output_per_mtok = 1.50

# No price: charged the default price, counted as unpriced.
[models."unpriced"]
provider = "openai"

[billing.default_price]
input_per_mtok = 1.00
output_per_mtok = 2.00

[routes."smart"]
candidates = ["broken-model", "gpt-small"]
strategy = "ordered"
reference_model = "gpt-large"

# The cheapest of two: cache affinity is on, sessions stay on their model.
[routes."agents"]
candidates = ["gpt-small", "claude-mid"]
strategy = "cheapest"

# Breakers open after 3 failures and probe again after a second, so the
# failing candidate keeps failing over in the load's second phase.
[router]
breaker_failures = 3
breaker_cooldown = "1s"

$REDIS_TOML
EOF
start_gateway() { # LOG: sets GATEWAY_PID and URL
    target/debug/tollgate serve --config "$WORK/tollgate.toml" >"$WORK/$1" 2>&1 &
    GATEWAY_PID=$!
    PIDS+=($GATEWAY_PID)
    local port
    port=$(bound_port tollgate "$GATEWAY_PID" "$WORK/$1")
    URL=http://127.0.0.1:$port
    wait_http tollgate "$GATEWAY_PID" "$URL/readyz" 200
}

# 7. Tenancy through the admin API; then, with the gateway stopped, rows of
# the past in its spool, which the restarted gateway replays into the
# ledger and the hourly rollup (so the rollup half of every SQL panel is
# proven too, not only the current hour's rows).
STATE=$WORK/state.json
start_gateway tollgate-setup.log
timeout 60 python3 "$SUITE/drive.py" setup --gateway "$URL" --master-key "$MASTER_KEY" --state "$STATE"
kill -TERM "$GATEWAY_PID"
for _ in $(seq 100); do kill -0 "$GATEWAY_PID" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$GATEWAY_PID" 2>/dev/null; then say "the gateway did not stop within 10s"; exit 1; fi
timeout 60 python3 "$SUITE/drive.py" history --spool "$WORK/spool" --state "$STATE"
start_gateway tollgate.log

# 8. Prometheus, scraping the gateway every second into a temporary TSDB.
cat >"$WORK/prometheus.yml" <<EOF
global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: tollgate
    metrics_path: /metrics
    static_configs:
      - targets: ["${URL#http://}"]
EOF
# Prometheus cannot bind port 0 and say which port it got: pick a free one,
# and pick again if something else takes it first.
for attempt in 1 2 3; do
    P_PROM=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    "$PROMETHEUS" --config.file="$WORK/prometheus.yml" --storage.tsdb.path="$WORK/tsdb" \
        --web.listen-address="127.0.0.1:$P_PROM" --storage.tsdb.retention.time=1h \
        --log.level=warn >"$WORK/prometheus.log" 2>&1 &
    PROM_PID=$!
    PIDS+=($PROM_PID)
    PROM_URL=http://127.0.0.1:$P_PROM
    if wait_http prometheus "$PROM_PID" "$PROM_URL/-/ready" 200 2>/dev/null; then
        break
    fi
    grep -q "address already in use" "$WORK/prometheus.log" && ((attempt < 3)) || {
        say "Prometheus did not start"
        exit 1
    }
done
# Ready is not scraping: wait for the first successful scrape of the gateway.
python3 - "$PROM_URL" <<'PY'
import json, sys, time, urllib.parse, urllib.request
url, deadline = sys.argv[1], time.time() + 30
while time.time() < deadline:
    q = urllib.parse.urlencode({"query": 'up{job="tollgate"} == 1'})
    with urllib.request.urlopen(f"{url}/api/v1/query?{q}", timeout=5) as resp:
        if json.load(resp)["data"]["result"]:
            sys.exit(0)
    time.sleep(0.2)
sys.exit("dashboards: Prometheus did not scrape the gateway within 30s")
PY

# 9. The load, then the checks.
timeout 120 python3 "$SUITE/drive.py" load --gateway "$URL" --master-key "$MASTER_KEY" \
    --loadtest target/debug/loadtest --state "$STATE" --prometheus "$PROM_URL"
timeout 120 python3 "$SUITE/check.py" --gateway "$URL" --master-key "$MASTER_KEY" \
    --prometheus "$PROM_URL" --database "$DB" --state "$STATE" --dashboards "$DASHBOARDS_DIR" "$REDIS_FLAG"
say "passed in $((SECONDS - BUILT))s after the build"
