# Shared by the suites' run.sh scripts (sourced, not run): stopping what a
# suite started, and showing the logs of a run that failed.

# stop_all PID...: asks each process to stop, waits up to 5 s for it, then
# kills what is left.
stop_all() {
    local pid
    for pid in "$@"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "$@"; do
        for _ in $(seq 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -9 "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
}

# show_logs DIR LINES: the last LINES lines of every non-empty DIR/*.log.
show_logs() {
    local log
    for log in "$1"/*.log; do
        [[ -s $log ]] || continue
        echo "---- last lines of $(basename "$log") ----" >&2
        tail -n "$2" "$log" >&2
    done
}

# wait_http NAME PID URL [STATUS]: polls URL until it answers with STATUS
# (default `any`: any HTTP answer at all), failing when PID exits first or
# after 30 s. Messages start with $SUITE_NAME.
wait_http() {
    local name=$1 pid=$2 url=$3 want=${4:-any} got deadline=$((SECONDS + 30))
    while :; do
        got=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$url" || true)
        if [[ $got == "$want" || ($want == any && $got != 000) ]]; then
            return 0
        fi
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "$SUITE_NAME: $name exited before answering" >&2
            return 1
        fi
        if ((SECONDS >= deadline)); then
            echo "$SUITE_NAME: $name did not answer $url within 30s (last status $got)" >&2
            return 1
        fi
        sleep 0.1
    done
}

# stop_suite STATUS LINES: what a suite's EXIT trap does: stops $PIDS, shows
# the last LINES of $WORK's logs when STATUS is a failure, removes $WORK.
stop_suite() {
    stop_all "${PIDS[@]}"
    if [[ $1 -ne 0 && -n $WORK ]]; then
        show_logs "$WORK" "$2"
    fi
    if [[ -n $WORK ]]; then
        rm -rf "$WORK"
    fi
}
