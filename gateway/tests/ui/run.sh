#!/usr/bin/env bash
# The spend page (/ui) in a real browser: builds (or reuses) the binaries,
# starts a mock upstream and a gateway on free loopback ports (SQLite in a
# temporary directory), fills the ledger with real traffic from two teams
# (seed.mjs), then drives Debian's headless Chromium with Playwright
# (playwright-core, pinned in package-lock.json; it never downloads a
# browser) through spend-page.test.mjs. Screenshots land in
# target/ui-screenshots/.
#
#   gateway/tests/ui/run.sh
#
# Needs Node.js 20+ with npm, and Debian's chromium (CHROMIUM overrides
# /usr/bin/chromium). UI_SKIP_BUILD=1 uses the binaries already in
# target/debug. Everything listens on 127.0.0.1 and is stopped on exit.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)
SUITE=gateway/tests/ui
cd "$ROOT"
# shellcheck source=../processes.sh
source gateway/tests/processes.sh

export CHROMIUM=${CHROMIUM:-/usr/bin/chromium}
if [[ ! -x $CHROMIUM ]]; then
    if [[ -n ${CI:-} ]]; then
        echo "ui: $CHROMIUM not found: install Debian's chromium (apt-get install chromium)" >&2
        exit 1
    fi
    echo "ui: skipped: $CHROMIUM not found (apt-get install chromium)" >&2
    exit 0
fi
command -v node >/dev/null || { echo "ui: node not found (install Node.js 20+ and npm)" >&2; exit 1; }

# Everything started here; the trap below ends it and removes $WORK.
PIDS=()
WORK=

SUITE_NAME=ui
cleanup() {
    local status=$?
    trap - EXIT INT TERM
    stop_suite "$status" 40
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# 1. Playwright, exactly as the lock file pins it (reinstalled when it changes).
STAMP=$SUITE/node_modules/.lock-stamp
WANT=$( { node --version; cat "$SUITE/package-lock.json"; } | sha256sum | cut -d' ' -f1)
if [[ ! -f $STAMP || $(cat "$STAMP") != "$WANT" ]]; then
    command -v npm >/dev/null || { echo "ui: npm not found" >&2; exit 1; }
    echo "ui: installing playwright-core (npm ci)" >&2
    (cd "$SUITE" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --ignore-scripts --no-audit --no-fund --loglevel=error)
    echo "$WANT" >"$STAMP"
fi

# 2. The binaries.
if [[ ${UI_SKIP_BUILD:-0} != 1 ]]; then
    cargo build -j2 --locked --bins
fi
for bin in target/debug/tollgate target/debug/loadtest; do
    [[ -x $bin ]] || { echo "$bin is missing: build it or unset UI_SKIP_BUILD" >&2; exit 1; }
done

# Loopback only, whatever the environment says about proxies.
export NO_PROXY=127.0.0.1,localhost no_proxy=127.0.0.1,localhost
unset HTTP_PROXY HTTPS_PROXY ALL_PROXY http_proxy https_proxy all_proxy
unset TOLLGATE_MASTER_KEY TOLLGATE_CONFIG DATABASE_URL

# 3. Free ports (held together while chosen, so they differ) and the mock.
read -r PM PG < <(node -e '
const net = require("net");
const socks = [net.createServer(), net.createServer()];
let n = 0;
for (const s of socks) s.listen(0, "127.0.0.1", () => {
  if (++n === socks.length) {
    console.log(socks.map((x) => x.address().port).join(" "));
    socks.forEach((x) => x.close());
  }
});
')
[[ -n ${PG:-} ]] || { echo "ui: could not pick free ports" >&2; exit 1; }
WORK=$(mktemp -d)

target/debug/loadtest mock --listen "127.0.0.1:$PM" --tokens-per-second 0 --ttft 0s \
    --output-tokens 600 --cached-tokens 4 >"$WORK/mock.log" 2>&1 &
PIDS+=($!)
MOCK_PID=$!

# 4. The gateway: real model names (so built-in prices apply) served by the
# mock, and a route that counts savings against a dearer reference model.
MASTER_KEY=ui-test-master-key-$RANDOM$RANDOM
cat >"$WORK/tollgate.toml" <<EOF
[server]
listen = "127.0.0.1:$PG"
master_key = "$MASTER_KEY"

[database]
url = "sqlite://$WORK/tollgate.db"

[ledger]
spool_dir = "$WORK/spool"
flush_interval = "50ms"

[providers.mock]
kind = "openai"
base_url = "http://127.0.0.1:$PM/v1"

[models."glm-4.6"]
provider = "mock"

[models."kimi-k2.5"]
provider = "mock"

[models."claude-sonnet-4-5"]
provider = "mock"

[routes.auto]
candidates = ["kimi-k2.5", "glm-4.6"]
strategy = "cheapest"
reference_model = "claude-sonnet-4-5"
EOF
target/debug/tollgate serve --config "$WORK/tollgate.toml" >"$WORK/tollgate.log" 2>&1 &
PIDS+=($!)
GATEWAY_PID=$!
URL=http://127.0.0.1:$PG

wait_http "mock upstream" "$MOCK_PID" "http://127.0.0.1:$PM/"
wait_http tollgate "$GATEWAY_PID" "$URL/healthz"

# 5. Two organizations, teams and keys, and traffic from each, in the ledger.
timeout 60 node "$SUITE/seed.mjs" "$URL" "$MASTER_KEY" >"$WORK/seed.json"

# 6. The browser.
SHOTS=$ROOT/target/ui-screenshots
rm -rf "$SHOTS"
TOLLGATE_URL=$URL MASTER_KEY=$MASTER_KEY SEED=$WORK/seed.json SHOTS=$SHOTS \
    timeout 120 node --test --test-concurrency=1 "$SUITE/format.test.mjs" "$SUITE/spend-page.test.mjs"
echo "ui: screenshots in ${SHOTS#"$ROOT"/}: $(cd "$SHOTS" && echo *.png)"
