# Helpers of the scripts that start a server for the tests (sourced by
# tests/s3/run.sh and tests/postgres/run.sh).

# A free TCP port on loopback.
free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# wait_ready NAME PID LOG COMMAND...: runs COMMAND until it succeeds; fails
# (printing LOG) when the server PID exits first or after 20 seconds.
wait_ready() {
    local name="$1" pid="$2" log="$3"
    shift 3
    for _ in $(seq 1 200); do
        if "$@" >/dev/null 2>&1; then
            return 0
        fi
        if ! kill -0 "$pid" 2>/dev/null; then
            cat "$log" >&2
            echo "$name exited at start" >&2
            return 1
        fi
        sleep 0.1
    done
    cat "$log" >&2
    echo "$name did not answer within 20 s" >&2
    return 1
}

# stop_pid PID: SIGTERM, then waits up to 10 seconds for it to exit.
stop_pid() {
    [ -n "$1" ] || return 0
    kill -TERM "$1" 2>/dev/null || true
    for _ in $(seq 1 100); do
        kill -0 "$1" 2>/dev/null || return 0
        sleep 0.1
    done
}

# The store's integration suites, as `cargo test` arguments.
store_suites=()
for f in crates/store/tests/*.rs; do
    store_suites+=(--test "$(basename "$f" .rs)")
done
