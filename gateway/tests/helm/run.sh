#!/usr/bin/env bash
# The Helm chart and the container image, without a cluster or a container
# engine: lints and renders helm/tollgate with Helm's own engine (the
# helm-python-sdk package) over the values files in values/, validates every
# object against the Kubernetes 1.37 schemas, compares golden renders, checks
# the Dockerfile against the chart, and starts the real `tollgate` binary
# with the rendered config and the environment the pods get, against the
# local Postgres and Redis.
#
#   gateway/tests/helm/run.sh [--bless] [PYTEST ARGS...]
#
# --bless rewrites the golden renders in golden/ (review the diff).
# HELM_SKIP_BUILD=1 uses target/debug/tollgate as it is.
# DATABASE_URL (a Postgres server URL; default postgres://postgres@127.0.0.1:5432/postgres)
# and REDIS_URL (default redis://127.0.0.1:6379) name the servers; the
# suite makes a database and a key prefix of its own and removes them.
# Under CI a missing Postgres or Redis fails; elsewhere those tests skip.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)
SUITE=gateway/tests/helm
VENV=target/helm-venv
cd "$ROOT"

if [[ ${1:-} == --bless ]]; then
    export HELM_BLESS=1
    shift
fi

# 1. The binary the chart's pods run.
if [[ ${HELM_SKIP_BUILD:-0} != 1 ]]; then
    cargo build -j2 --locked -p tollgate --bin tollgate
fi
[[ -x target/debug/tollgate ]] || { echo "target/debug/tollgate is missing: build it or unset HELM_SKIP_BUILD" >&2; exit 1; }

# 2. Helm's engine and the schemas, in a venv reinstalled only when the
# requirements change.
STAMP=$VENV/.requirements-stamp
WANT=$( { python3 --version; cat "$SUITE/requirements.txt"; } | sha256sum | cut -d' ' -f1)
if [[ ! -x $VENV/bin/python || ! -f $STAMP || $(cat "$STAMP") != "$WANT" ]]; then
    echo "helm: installing helm-python-sdk and kubernetes-validate into $VENV" >&2
    rm -rf "$VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q --disable-pip-version-check -r "$SUITE/requirements.txt"
    echo "$WANT" >"$STAMP"
fi

# Loopback only, whatever the environment says about proxies.
export NO_PROXY=127.0.0.1,localhost no_proxy=127.0.0.1,localhost
unset HTTP_PROXY HTTPS_PROXY ALL_PROXY http_proxy https_proxy all_proxy
export PYTHONDONTWRITEBYTECODE=1
export TOLLGATE_BIN=$ROOT/target/debug/tollgate
timeout 600 "$VENV/bin/python" -m pytest -q -p no:cacheprovider "$SUITE" "$@"
