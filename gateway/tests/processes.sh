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
