#!/usr/bin/env bash
# Online garbage collection, timed through the API (Berth only: distribution
# has no online collector). Populates one registry with N images (a config
# and four layers each, half of them untagged, as the offline GC scenario),
# then, for each binary given, 3 rounds: a copy of that data directory is
# served with a grace period of 0, `POST /api/v1/gc {"delete_untagged":true}`
# runs, and the run's report gives blobs deleted per minute.
#
#   bash bench/online_gc.sh target/release/berth                 # N=2000
#   BENCH_GC_IMAGES=10000 bash bench/online_gc.sh OLD_BIN NEW_BIN  # A/B
#
# Needs target/release/berth-bench (bash bench/run.sh builds it). Listens on
# 127.0.0.1:${BENCH_GC_PORT:-5791}; stops exactly the PIDs it started.
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 1 ] || { echo "usage: bash bench/online_gc.sh BERTH_BIN [BERTH_BIN...]" >&2; exit 2; }
n=${BENCH_GC_IMAGES:-2000}
port=${BENCH_GC_PORT:-5791}
url="http://127.0.0.1:$port"
work="$(mktemp -d "${TMPDIR:-/tmp}/berth-online-gc.XXXXXX")"
pid=""
cleanup() { if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; fi; rm -rf "$work"; }
trap cleanup EXIT

serve() { # BIN DIR
    BERTH_GC__GRACE_PERIOD_SECS=0 "$1" serve --addr "127.0.0.1:$port" --data-dir "$2" \
        >"$2.log" 2>&1 &
    pid=$!
    for _ in $(seq 100); do
        curl -sf "$url/healthz" >/dev/null && return 0
        sleep 0.1
    done
    echo "berth did not start; its log: $2.log" >&2
    exit 1
}
stop() { kill "$pid"; wait "$pid" || true; pid=""; }

echo "==> populating $n images (load $(cut -d' ' -f1-3 /proc/loadavg))" >&2
serve "$1" "$work/seed"
target/release/berth-bench one --url "$url" --scenario populate-gc --count "$n" >&2
stop
for round in 1 2 3; do
    for bin in "$@"; do
        rm -rf "$work/run"
        cp -a "$work/seed" "$work/run"
        sync
        serve "$bin" "$work/run"
        id=$(curl -sf -X POST -H 'content-type: application/json' \
            -d '{"delete_untagged":true}' "$url/api/v1/gc" |
            python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
        while :; do
            run=$(curl -sf "$url/api/v1/gc/runs/$id")
            status=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["status"])' <<<"$run")
            [ "$status" = running ] || break
            sleep 0.1
        done
        python3 - "$round" "$bin" "$n" <<PY
import json, sys
run = json.loads('''$run''')
rep = run.get("report") or {}
ms, blobs = rep.get("duration_ms", 0), rep.get("blobs_deleted", 0)
manifests = len(rep.get("manifests_deleted", []))
round_, binary, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
assert run["status"] == "succeeded", run
assert manifests == n // 2, f"{manifests} manifests deleted, expected {n // 2}"
assert blobs >= 5 * (n // 2), f"{blobs} blobs deleted, expected at least {5 * (n // 2)}"
print(f"round {round_} {binary}: {manifests} manifests, {blobs} blobs in {ms} ms = "
      f"{blobs / ms * 60000:,.0f} blobs/min")
PY
        stop
    done
done
