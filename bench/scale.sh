#!/usr/bin/env bash
# The scale scenarios (Berth only): page latency and time to first answer
# with 1,000 vs 100,000 tags in one repository and repositories (ten per
# namespace), written through the store's API by `berth-bench load`.
#
#   bash bench/scale.sh                                   # 1,000 vs 100,000, 3 rounds
#   BENCH_SCALE_LARGE=10000 bash bench/scale.sh           # a quicker look
#
# The table goes to stdout and bench/results/scale.md; progress to stderr.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "==> cargo build --release (berth, berth-bench)" >&2
cargo build --release -p berth --bin berth -p berth-bench --bin berth-bench >&2

base="${BENCH_WORK:-${TMPDIR:-/tmp}}"
mkdir -p "$base" bench/results
work="$(mktemp -d "$base/berth-scale.XXXXXX")"
trap 'rm -rf "$work"' EXIT

echo "==> load $(cut -d' ' -f1-3 /proc/loadavg)" >&2
target/release/berth-bench scale \
  --berth target/release/berth \
  --work "$work" \
  --small "${BENCH_SCALE_SMALL:-1000}" \
  --large "${BENCH_SCALE_LARGE:-100000}" \
  --out bench/results/scale.md
echo "==> load $(cut -d' ' -f1-3 /proc/loadavg)" >&2
