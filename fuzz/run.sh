#!/usr/bin/env bash
# Builds Tollgate's fuzz targets (cargo fuzz, libFuzzer, AddressSanitizer)
# and runs each for a bounded time, one after the other, then prints one
# line per target: executions, executions per second, findings.
#
#   fuzz/run.sh                     every target, FUZZ_SECONDS each
#   fuzz/run.sh relay_stream usage  only these
#
# Settings (environment):
#   FUZZ_SECONDS    seconds per target (default 60)
#   FUZZ_RUNS       executions per target; with it, a target stops at
#                   whichever of FUZZ_RUNS and FUZZ_SECONDS comes first
#   FUZZ_JOBS       cargo build jobs (default 2)
#   FUZZ_TOOLCHAIN  the nightly toolchain (default: the pinned one below)
#   FUZZ_SANITIZER  address (default) or none: without AddressSanitizer a
#                   target runs faster, still with debug assertions,
#                   panics, the 2 GB RSS limit
#                   and the timeout, but not the 512 MB allocation limit
#                   (libFuzzer hooks malloc through the sanitizer). None of
#                   Tollgate's crates has unsafe code; for long runs.
#   FUZZ_NO_BUILD=1 run what was built last
#
# Each target's corpus grows in fuzz/corpus/<target> (seeded from
# fuzz/seeds/<target>, see seed() below); what it finds lands in
# fuzz/artifacts/<target> (crash-*, oom-*, timeout-*, leak-*), and its log in
# fuzz/target/logs/<target>.log. An allocation over 512 MB, a process over
# 2 GB and an input that runs for more than 10 s are findings. Exits non-zero
# when any target found anything. Reproduce one with
#   fuzz/target/x86_64-unknown-linux-gnu/release/<target> <artifact>
set -euo pipefail
cd "$(dirname "$0")"

toolchain=${FUZZ_TOOLCHAIN:-nightly-2026-05-20}
seconds=${FUZZ_SECONDS:-60}
runs=${FUZZ_RUNS:-}
sanitizer=${FUZZ_SANITIZER:-address}
triple=x86_64-unknown-linux-gnu
bin=target/$triple/release
logs=target/logs

if [[ $# -gt 0 ]]; then
    targets=("$@")
else
    # Every [[bin]] of Cargo.toml, in order.
    mapfile -t targets < <(awk '/^\[\[bin\]\]/ { bin = 1; next }
        bin && /^name = / { gsub(/"/, "", $3); print $3; bin = 0 }' Cargo.toml)
fi

if [[ -z ${FUZZ_NO_BUILD:-} ]]; then
    echo "== building the fuzz targets with $toolchain, sanitizer $sanitizer"
    # From the repository root, where cargo fuzz looks for fuzz/; into
    # fuzz/target whatever CARGO_TARGET_DIR says.
    (cd .. && CARGO_BUILD_JOBS=${FUZZ_JOBS:-2} CARGO_TARGET_DIR="$PWD/fuzz/target" \
        cargo "+$toolchain" fuzz build --sanitizer "$sanitizer" --target "$triple")
fi

# The header the targets' inputs start with (see fuzz/src/lib.rs), in
# front of each seed file, for every selector a target reads.
seed() {
    local target=$1 corpus=$2 file name sel
    [[ -d seeds/$target ]] || return 0
    for file in seeds/"$target"/*; do
        name=$(basename "$file")
        case $target in
        sse_framer)
            # No cut, then cuts of 1, 7 and 2 bytes.
            { printf '\x00'; cat "$file"; } >"$corpus/seed-$name-whole"
            { printf '\x03\x01\x07\x02'; cat "$file"; } >"$corpus/seed-$name-cut"
            ;;
        upstream_body)
            # Chunked (selector 0) and until the close (2), whole and cut.
            for sel in 0 2; do
                { printf "\\x0$sel\\x00"; cat "$file"; } >"$corpus/seed-$name-$sel-whole"
                { printf "\\x0$sel\\x03\\x01\\x07\\x02"; cat "$file"; } >"$corpus/seed-$name-$sel-cut"
            done
            ;;
        relay_stream)
            # Every client and upstream pair, usage asked for; the second
            # copy (one cut) reads the Responses request with tools.
            for sel in 0 1 2 4 5 6 8 9 10; do
                { printf "\\x$(printf %02x $((sel | 16)))\\x00"; cat "$file"; } >"$corpus/seed-$name-$sel"
                { printf "\\x$(printf %02x $((sel | 16)))\\x01\\x40"; cat "$file"; } >"$corpus/seed-$name-$sel-req"
            done
            ;;
        relay_json)
            # Every pair, with the Responses request (bits 4-5 = 1).
            for sel in 0 1 2 4 5 6 8 9 10; do
                { printf "\\x$(printf %02x $((sel | 16)))"; cat "$file"; } >"$corpus/seed-$name-$sel"
            done
            ;;
        admin_bodies)
            # Organization, team, key and patch.
            for sel in 0 1 2 3; do
                { printf "\\x0$sel"; cat "$file"; } >"$corpus/seed-$name-$sel"
            done
            ;;
        *)
            cp "$file" "$corpus/seed-$name"
            ;;
        esac
    done
}

mkdir -p "$logs"
findings_total=0
results=()
for target in "${targets[@]}"; do
    if [[ ! -x $bin/$target ]]; then
        echo "no fuzz target $target at $bin/$target" >&2
        exit 2
    fi
    corpus=corpus/$target
    artifacts=artifacts/$target
    mkdir -p "$corpus" "$artifacts"
    seed "$target" "$corpus"

    args=(-max_total_time="$seconds" -rss_limit_mb=2048 -malloc_limit_mb=512 -timeout=10
          -print_final_stats=1 -artifact_prefix="$artifacts/")
    [[ -n $runs ]] && args+=(-runs="$runs")
    echo "== $target: ${runs:+$runs runs or }${seconds}s"
    before=$(find "$artifacts" -type f \( -name 'crash-*' -o -name 'oom-*' -o -name 'timeout-*' -o -name 'leak-*' \) | wc -l)
    set +e
    "$bin/$target" "${args[@]}" "$corpus" >"$logs/$target.log" 2>&1
    status=$?
    set -e
    after=$(find "$artifacts" -type f \( -name 'crash-*' -o -name 'oom-*' -o -name 'timeout-*' -o -name 'leak-*' \) | wc -l)
    found=$((after - before))
    # A run that stopped with an error but wrote no artifact still counts.
    if [[ $status -ne 0 && $found -eq 0 ]]; then
        found=1
    fi
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$logs/$target.log" | tail -n 1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$logs/$target.log" | tail -n 1)
    results+=("$(printf '%-30s %14s %10s %8s' "$target" "${execs:-?}" "${rate:-?}" "$found")")
    if [[ $found -gt 0 ]]; then
        findings_total=$((findings_total + found))
        echo "   $target: $found finding(s), exit $status; see $logs/$target.log and $artifacts/" >&2
        grep -m 5 -E '^(==[0-9]+==ERROR|thread .* panicked|.*panicked at)' "$logs/$target.log" >&2 || true
    fi
done

echo
printf '%-30s %14s %10s %8s\n' target executions exec/s findings
printf '%s\n' "${results[@]}"
if [[ $findings_total -gt 0 ]]; then
    echo "fuzz: $findings_total finding(s)" >&2
    exit 1
fi
