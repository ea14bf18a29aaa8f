#!/usr/bin/env bash
# Load soak (release check, not part of scripts/test.sh): starts
# target/release/berth serve on 127.0.0.1 port 0 with a fresh data directory
# and drives SOAK_SECONDS (default 600) of mixed push/pull/list/delete/GC
# traffic with SOAK_CONCURRENCY (default 8) workers, verifying every pull by
# digest; reports errors (must be zero), latency percentiles per operation
# and request, and the server's RSS over time; then `berth fsck` must be
# clean. Exit status 1 on any error. See scripts/soak.py for the knobs.
#
#   bash scripts/soak.sh                     # 10 minutes
#   SOAK_SECONDS=60 bash scripts/soak.sh     # a quick run
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -z "${BERTH_BIN:-}" ]; then
    cargo build --release --bin berth
    export BERTH_BIN="$PWD/target/release/berth"
fi
exec python3 scripts/soak.py
