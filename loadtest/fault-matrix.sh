#!/usr/bin/env bash
# A fault matrix under load. Two gateways share one Postgres ledger (a
# database of the run's own): one counts budgets in process, the other in
# Redis (under a key prefix of the run's own). Both serve a mixed open-loop
# load (chat streamed, chat whole, Anthropic Messages streamed and
# translated) on a route that falls back from mock upstream A to mock B,
# while, one phase after another:
#   baseline        nothing goes wrong
#   upstream-error  A answers every request with 500
#   upstream-stall  A's streams stall after a few events (whole answers never come)
#   upstream-drop   A drops its connections mid-stream
#   postgres-cut    the ledger database is cut off (a cut proxy in between)
#   redis-cut       Redis is cut off (a cut proxy in between)
#   kill-9          both gateways are killed with SIGKILL and restarted
# Each phase has its own organization, teams and keys per gateway, under
# hard budgets sized to run out during the phase. Afterwards it checks:
#   - every request the load driver saw complete is in the ledger exactly
#     once, no request id twice, and the hourly rollup counts every row once;
#   - no hard budget spent past its limit (plus STEP_USD);
#   - each budget's counters, as the gateway shows them (Redis, or the
#     process), equal the ledger's sums (/admin/spend) once settled.
# One line per phase and per check, PASS or FAIL with figures; exits 1 on
# any FAIL. Loopback only; stops everything it started, drops its database
# and deletes its Redis keys on exit. The shared Postgres and Redis servers
# are never stopped: cuts happen in the proxies.
#   [PHASE_SECONDS=5] [RATE=25] [STEP_USD=0] [PHASES="baseline kill-9 ..."] \
#   [PG_ADDR=127.0.0.1:5432] [PG_USER=postgres] [REDIS_ADDR=127.0.0.1:6379] \
#   [BASE_PORT=19400] [PROFILE=release|debug] [FAULTS_SKIP_BUILD=1] [KEEP_WORK=1] \
#   loadtest/fault-matrix.sh
# RATE is each driver's requests a second (six drivers, open loop); STEP_USD
# is how far past its limit a hard budget may end (for upstreams that
# overrun max_tokens; the mocks here honour it, so 0 by default).
set -euo pipefail
phase_secs=${PHASE_SECONDS:-5}
rate=${RATE:-25}
step_usd=${STEP_USD:-0}
phases=${PHASES:-baseline upstream-error upstream-stall upstream-drop postgres-cut redis-cut kill-9}
pg_addr=${PG_ADDR:-127.0.0.1:5432}
pg_user=${PG_USER:-postgres}
redis_addr=${REDIS_ADDR:-127.0.0.1:6379}
base_port=${BASE_PORT:-19400}
[ "$phase_secs" -ge 3 ] || { echo "PHASE_SECONDS must be at least 3" >&2; exit 2; }

cd "$(dirname "${BASH_SOURCE[0]}")/.."
# Release binaries by default; PROFILE=debug uses (and builds) the debug
# ones `cargo test` leaves, FAULTS_SKIP_BUILD=1 uses them as they are.
profile=${PROFILE:-release}
if [ -z "${FAULTS_SKIP_BUILD:-}" ]; then
    build=(cargo build --locked -p tollgate -p tollgate-loadtest)
    [ "$profile" = release ] && build+=(--release)
    "${build[@]}" >&2
fi
bin=${CARGO_TARGET_DIR:-target}/$profile
master=fault-matrix-master-key-0123456789
mock_a=$base_port mock_b=$((base_port + 1))
pg_proxy=$((base_port + 2)) redis_proxy=$((base_port + 3))
gateways=(local redis)
declare -A gw_port=([local]=$((base_port + 4)) [redis]=$((base_port + 5)))
db=tollgate_faults_$$
prefix=tollgate-faults-$$
work=$(mktemp -d)
mkdir -p "$work/ids" "$work/reports"
declare -A pid=()
drivers=()

psql_admin() { psql -h "${pg_addr%:*}" -p "${pg_addr#*:}" -U "$pg_user" -d postgres -qAtX "$@"; }
psql_run() { psql -h "${pg_addr%:*}" -p "${pg_addr#*:}" -U "$pg_user" -d "$db" -qAtX "$@"; }
redis_run() { redis-cli -h "${redis_addr%:*}" -p "${redis_addr#*:}" "$@"; }

cleanup() {
    set +e
    for p in "${drivers[@]}" "${pid[@]}"; do kill -KILL "$p" 2>/dev/null; done
    for p in "${drivers[@]}" "${pid[@]}"; do wait "$p" 2>/dev/null; done
    psql_admin -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null
    redis_run --scan --pattern "$prefix:*" | xargs -r -n 500 redis-cli -h "${redis_addr%:*}" -p "${redis_addr#*:}" del >/dev/null
    if [ -n "${KEEP_WORK:-}" ]; then echo "work directory kept: $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT

# wait_http URL: until anything answers there (10 s at most).
wait_http() {
    for _ in $(seq 100); do
        curl -s -o /dev/null "$1" && return
        sleep 0.1
    done
    echo "nothing answered at $1" >&2
    exit 1
}

# start_mock NAME PORT [FAULT FLAGS...]: a mock upstream, 40 tokens at 400 a second.
start_mock() {
    local name=$1 port=$2
    shift 2
    RUST_LOG=warn "$bin/loadtest" mock --listen "127.0.0.1:$port" --ttft 10ms \
        --tokens-per-second 400 --output-tokens 40 "$@" 2>>"$work/mock-$name.log" &
    pid[mock_$name]=$!
    wait_http "http://127.0.0.1:$port/"
}

# restart_mock_a [FAULT FLAGS...]: mock A killed (its streams cut) and started again.
restart_mock_a() {
    kill -KILL "${pid[mock_a]}"
    wait "${pid[mock_a]}" 2>/dev/null || true
    start_mock a "$mock_a" "$@"
}

start_proxy() {
    RUST_LOG=info "$bin/loadtest" cut-proxy --listen "127.0.0.1:$2" --target "$3" 2>>"$work/proxy-$1.log" &
    pid[proxy_$1]=$!
    for _ in $(seq 100); do
        grep -q "cut proxy relaying" "$work/proxy-$1.log" 2>/dev/null && return
        sleep 0.1
    done
    echo "the $1 cut proxy did not start" >&2
    exit 1
}

# cut_off NAME / restore NAME: the proxy's signals; each waits for its log line.
signal_proxy() {
    local before
    before=$(grep -c "$3" "$work/proxy-$1.log" || true)
    kill "-$2" "${pid[proxy_$1]}"
    for _ in $(seq 100); do
        [ "$(grep -c "$3" "$work/proxy-$1.log" || true)" -gt "$before" ] && return
        sleep 0.05
    done
    echo "the $1 proxy did not say '$3'" >&2
    exit 1
}
cut_off() { signal_proxy "$1" USR1 "cut:"; }
restore() { signal_proxy "$1" USR2 "restored"; }

write_config() {
    local name=$1 redis_section=""
    if [ "$name" = redis ]; then
        redis_section="[redis]
url = \"redis://127.0.0.1:$redis_proxy\"
prefix = \"$prefix\"
on_failure = \"open\"
timeout = \"250ms\"
lease = \"3s\""
    fi
    cat > "$work/$name.toml" <<TOML
[server]
listen = "127.0.0.1:${gw_port[$name]}"
master_key = "$master"
shutdown_grace = "2s"
[database]
url = "postgres://$pg_user@127.0.0.1:$pg_proxy/$db"
[ledger]
spool_dir = "$work/$name-spool"
flush_interval = "50ms"
[providers.a]
kind = "openai"
base_url = "http://127.0.0.1:$mock_a/v1"
[providers.a.timeouts]
connect = "1s"
first_byte = "2s"
idle = "1s"
[providers.b]
kind = "openai"
base_url = "http://127.0.0.1:$mock_b/v1"
[models.m-a]
provider = "a"
upstream_model = "demo"
input_per_mtok = 1.0
output_per_mtok = 2.0
[models.m-b]
provider = "b"
upstream_model = "demo"
input_per_mtok = 1.5
output_per_mtok = 3.0
[routes.auto]
candidates = ["m-a", "m-b"]
strategy = "ordered"
max_attempts = 2
[router]
breaker_failures = 3
breaker_cooldown = "1s"
$redis_section
TOML
}

start_gateway() {
    RUST_LOG=warn "$bin/tollgate" serve --config "$work/$1.toml" 2>>"$work/gateway-$1.log" &
    pid[gw_$1]=$!
    for _ in $(seq 150); do
        curl -sf "http://127.0.0.1:${gw_port[$1]}/readyz" >/dev/null && return
        sleep 0.1
    done
    echo "the $1 gateway did not become ready (log: $work/gateway-$1.log)" >&2
    exit 1
}

admin() {
    curl -sf "http://127.0.0.1:${gw_port[$1]}$2" -H "Authorization: Bearer $master" \
        -H 'content-type: application/json' -d "$3"
}
field() { python3 -c "import json,sys; print(json.load(sys.stdin)['$1'])"; }
budget() { printf '{"limit_usd": %s, "period": "%s", "enforcement": "hard"}' "$1" "$2"; }

psql_admin -c "CREATE DATABASE $db" >/dev/null
start_proxy pg "$pg_proxy" "$pg_addr"
start_proxy redis "$redis_proxy" "$redis_addr"
start_mock a "$mock_a"
start_mock b "$mock_b"
for g in "${gateways[@]}"; do
    write_config "$g"
    # One at a time: the first one migrates the database.
    start_gateway "$g"
done

# What one request costs on A, from the ledger: a few master-key requests
# (which no budget counts) like the load's.
drive() {
    "$bin/loadtest" drive --quiet --model auto --prompt-words 64 --max-tokens 64 "$@"
}
drive --base-url "http://127.0.0.1:${gw_port[local]}/v1" --api-key "$master" --requests 3 --concurrency 1 >/dev/null
cost=""
for _ in $(seq 100); do
    cost=$(psql_run -c "SELECT max(cost_picousd) FROM ledger WHERE org_id IS NULL")
    [ -n "$cost" ] && break
    sleep 0.1
done
[ -n "$cost" ] || { echo "the calibration requests never reached the ledger" >&2; exit 1; }
# A driver's spend in a phase if nothing stopped it, USD.
expected=$(python3 -c "print(f'{$rate * $phase_secs * $cost / 1e12:.6f}')")
echo "a request costs about \$$(python3 -c "print(f'{$cost / 1e12:.6f}')"); a driver spends about \$$expected a phase ($rate req/s, ${phase_secs}s)"

# Per phase and gateway: an org under a hard monthly budget, team "capped"
# under a hard monthly budget (its key streams chat), team "open" with a
# key under a hard lifetime budget (whole chat answers) and a key under
# nothing but the org (streamed Messages). Each runs out during the phase.
limit() { python3 -c "print(f'{$expected * $1:.6f}')"; }
: > "$work/budgets.tsv"
declare -A key=()
for p in $phases; do
    for g in "${gateways[@]}"; do
        org=$(admin "$g" /admin/orgs "{\"name\": \"$p-$g\", \"budget\": $(budget "$(limit 2.2)" monthly)}" | field id)
        capped=$(admin "$g" /admin/teams "{\"org_id\": \"$org\", \"name\": \"capped\", \"budget\": $(budget "$(limit 0.7)" monthly)}" | field id)
        open=$(admin "$g" /admin/teams "{\"org_id\": \"$org\", \"name\": \"open\"}" | field id)
        key[$p-$g-chat-stream]=$(admin "$g" /admin/keys "{\"team_id\": \"$capped\", \"name\": \"chat-stream\"}" | field key)
        whole=$(admin "$g" /admin/keys "{\"team_id\": \"$open\", \"name\": \"chat-whole\", \"budget\": $(budget "$(limit 0.7)" lifetime)}")
        key[$p-$g-chat-whole]=$(field key <<<"$whole")
        key[$p-$g-messages-stream]=$(admin "$g" /admin/keys "{\"team_id\": \"$open\", \"name\": \"messages-stream\"}" | field key)
        printf '%s\t%s\t%s\t%s\t%s\n' "$p" "$g" "$org" "$capped" "$open" >> "$work/budgets.tsv"
    done
done

# run_drivers PHASE: the phase's load on both gateways, in the background.
run_drivers() {
    drivers=()
    local g kind args
    for g in "${gateways[@]}"; do
        for kind in chat-stream chat-whole messages-stream; do
            case $kind in
                chat-stream) args=(--stream) ;;
                chat-whole) args=() ;;
                messages-stream) args=(--api messages --stream) ;;
            esac
            drive --base-url "http://127.0.0.1:${gw_port[$g]}/v1" --api-key "${key[$1-$g-$kind]}" \
                --rate "$rate" --duration "${phase_secs}s" "${args[@]}" \
                --ids "$work/ids/$1-$g-$kind" > "$work/reports/$1-$g-$kind.json" &
            drivers+=($!)
        done
    done
}

# The fault's window: from 1 s into the phase to 1 s before its end.
window=$((phase_secs - 2))
failed=0
for p in $phases; do
    run_drivers "$p"
    sleep 1
    case $p in
        baseline) sleep "$window" ;;
        upstream-error) restart_mock_a --fail-status 500; sleep "$window"; restart_mock_a ;;
        upstream-stall) restart_mock_a --stall-after 3; sleep "$window"; restart_mock_a ;;
        upstream-drop) restart_mock_a --disconnect-after 3; sleep "$window"; restart_mock_a ;;
        postgres-cut) cut_off pg; sleep "$window"; restore pg ;;
        redis-cut) cut_off redis; sleep "$window"; restore redis ;;
        kill-9)
            sleep "$(python3 -c "print($window / 2)")"
            for g in "${gateways[@]}"; do kill -KILL "${pid[gw_$g]}"; done
            for g in "${gateways[@]}"; do wait "${pid[gw_$g]}" 2>/dev/null || true; done
            for g in "${gateways[@]}"; do start_gateway "$g"; done
            ;;
        *) echo "unknown phase '$p'" >&2; exit 2 ;;
    esac
    for d in "${drivers[@]}"; do wait "$d"; done
    drivers=()
    python3 - "$work/reports" "$p" <<'PY' || failed=1
import json, sys, os
d, phase = sys.argv[1], sys.argv[2]
parts, ok_all = [], True
for g in ("local", "redis"):
    ok = err = 0
    kinds = {}
    for kind in ("chat-stream", "chat-whole", "messages-stream"):
        r = json.load(open(os.path.join(d, f"{phase}-{g}-{kind}.json")))
        ok += r["ok"]; err += r["errors"]
        for k, n in r["error_kinds"].items():
            kinds[k] = kinds.get(k, 0) + n
    ok_all &= ok > 0
    shown = ", ".join(f"{k} {n}" for k, n in sorted(kinds.items()))
    parts.append(f"{g}: {ok} completed, {err} failed" + (f" ({shown})" if shown else ""))
print(f"{'PASS' if ok_all else 'FAIL'} phase {phase:14} " + "; ".join(parts))
sys.exit(0 if ok_all else 1)
PY
done

# Everything completed must reach the ledger: the spools drain (Postgres
# is back), then the gateways' budgets are read.
cat "$work"/ids/* | sort > "$work/completed"
deadline=$((SECONDS + 30))
while :; do
    psql_run -c "SELECT client_request_id FROM ledger WHERE outcome = 'complete'" | sort -u > "$work/billed"
    missing=$(comm -23 "$work/completed" "$work/billed" | wc -l)
    [ "$missing" -eq 0 ] && break
    [ $SECONDS -lt $deadline ] || break
    sleep 0.5
done
sleep 1
psql_run -c "\\copy (SELECT request_id, client_request_id, coalesce(org_id, ''), coalesce(team_id, ''), coalesce(key_id, ''), outcome, status, cost_picousd, started_at FROM ledger) TO '$work/ledger.csv' CSV"
psql_run -c "SELECT coalesce(sum(requests), 0) FROM spend_hourly" > "$work/rollup"
# The engines' view of every budget (the process's counters, or Redis's)
# once every reservation is settled, and the ledger's report sums.
for g in "${gateways[@]}"; do
    for level in org team key; do
        curl -sf "http://127.0.0.1:${gw_port[$g]}/admin/spend?group_by=$level&from=2000-01-01T00:00:00Z&to=2100-01-01T00:00:00Z" \
            -H "Authorization: Bearer $master" > "$work/spend-$g-$level.json"
    done
done
fetch_views() {
    while IFS=$'\t' read -r p g org capped open; do
        for team in "$capped" "$open"; do
            printf '%s\t%s\t%s\n' "$p" "$g" \
                "$(curl -sf "http://127.0.0.1:${gw_port[$g]}/v1/spend/teams/$team" -H "Authorization: Bearer $master" || echo '{"budgets": []}')"
        done
    done < "$work/budgets.tsv" > "$work/views.tsv"
}
deadline=$((SECONDS + 15))
while :; do
    fetch_views
    held=$(cut -f3 "$work/views.tsv" | python3 -c "
import json, sys
print(sum(float(b['reserved_usd']) != 0 for l in sys.stdin for b in json.loads(l)['budgets']))")
    [ "$held" -eq 0 ] && break
    [ $SECONDS -lt $deadline ] || break
    sleep 0.5
done

python3 - "$work" "$step_usd" "$phases" <<'PY' || failed=1
import csv, json, os, sys
from decimal import Decimal
work, step, phases = sys.argv[1], Decimal(sys.argv[2]), sys.argv[3].split()
PICO = Decimal(10) ** 12
ok = True

def line(passed, what):
    global ok
    ok &= passed
    print(f"{'PASS' if passed else 'FAIL'} {what}")

rows = list(csv.reader(open(f"{work}/ledger.csv")))
budgets = [l.rstrip("\n").split("\t") for l in open(f"{work}/budgets.tsv")]
org_gw = {b[2]: b[1] for b in budgets}

# 1. Exactly once: every request a driver saw complete has one complete
# row (among its attempts' rows), and no row is there twice.
ids = {}
for p, g, *_ in budgets:
    for kind in ("chat-stream", "chat-whole", "messages-stream"):
        ids.setdefault(g, []).extend(open(f"{work}/ids/{p}-{g}-{kind}").read().split())
complete = {}
for r in rows:
    if r[5] == "complete":
        complete[r[1]] = complete.get(r[1], 0) + 1
for g in ("local", "redis"):
    seen = ids.get(g, [])
    missing = [i for i in seen if complete.get(i, 0) == 0]
    twice = [i for i in seen if complete.get(i, 0) > 1]
    line(not missing and not twice and len(set(seen)) == len(seen),
         f"exactly once ({g}): {len(seen)} completed requests, {len(seen) - len(missing) - len(twice)} "
         f"billed once, {len(missing)} missing, {len(twice)} billed twice"
         + (f" (e.g. {(missing or twice)[0]})" if missing or twice else ""))
request_ids = [r[0] for r in rows]
rollup = int(open(f"{work}/rollup").read().strip() or 0)
doubled = sum(1 for n in complete.values() if n > 1)
line(len(set(request_ids)) == len(rows) and rollup == len(rows) and doubled == 0,
     f"ledger: {len(rows)} rows, {len(set(request_ids))} request ids, the rollup counts {rollup}, "
     f"{doubled} client requests complete twice")

# 2. No hard budget over its limit; 3. each budget's counters (as its
# gateway shows them, settled) equal the ledger's rows and its report.
spent_rows = {}
for r in rows:
    for level, i in (("org", 2), ("team", 3), ("key", 4)):
        if r[i]:
            spent_rows[(level, r[i])] = spent_rows.get((level, r[i]), 0) + int(r[7])
report = {}
for g in ("local", "redis"):
    for level in ("org", "team", "key"):
        for row in json.load(open(f"{work}/spend-{g}-{level}.json"))["data"]:
            if row["group"]:
                report[(level, row["group"])] = int(row["cost_picousd"])
views = {}
for l in open(f"{work}/views.tsv"):
    p, g, text = l.rstrip("\n").split("\t", 2)
    for b in json.loads(text)["budgets"]:
        views[(g, b["level"], b["id"])] = (p, b)
usd = lambda pico: f"${Decimal(pico) / PICO:.6f}"
table = {}
for g in ("local", "redis"):
    over, mismatched, held, worst, reached, n = [], [], 0, 0, 0, 0
    for (vg, level, bid), (p, b) in sorted(views.items()):
        if vg != g:
            continue
        n += 1
        limit = Decimal(b["limit_usd"]) * PICO
        ledger_sum = spent_rows.get((level, bid), 0)
        engine = Decimal(b["spent_usd"]) * PICO
        ratio = float(ledger_sum / limit)
        worst = max(worst, ratio)
        reached += ratio >= 0.9
        table.setdefault((p, g), {})[level] = ratio
        if ledger_sum > limit + step * PICO:
            over.append(f"{level} {bid} of {p}: {usd(ledger_sum)} of {usd(limit)}")
        if engine != ledger_sum or report.get((level, bid), 0) != ledger_sum:
            mismatched.append(f"{level} of {p}: counters {usd(engine)}, ledger rows {usd(ledger_sum)}, "
                              f"report {usd(report.get((level, bid), 0))}")
        held += Decimal(b["reserved_usd"]) != 0
    line(not over, f"budgets hold ({g}): {n} hard budgets, {reached} reached 90% or more, "
         f"the fullest at {worst:.4f} of its limit (tolerance {usd(step * PICO)})"
         + "".join(f"; OVER {o}" for o in over))
    line(not mismatched, f"counters = ledger ({g}): {n - len(mismatched)} of {n} budgets equal to the picodollar"
         + (f", {held} still holding reservations" if held else "")
         + "".join(f"; {m}" for m in mismatched))
print("spent/limit per phase (from the ledger):  org  team  key")
for p in phases:
    for g in ("local", "redis"):
        t = table.get((p, g), {})
        print(f"  {p:14} {g:5}  " + "  ".join(f"{t.get(l, 0):.3f}" for l in ("org", "team", "key")))
sys.exit(0 if ok else 1)
PY
[ "$failed" -eq 0 ] || echo "FAIL: the fault matrix found problems (KEEP_WORK=1 keeps the logs and reports)" >&2
exit $failed
