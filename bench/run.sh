#!/usr/bin/env bash
# Berth side by side with CNCF distribution: one command prints the table.
#
#   bash bench/run.sh                  # the full run (about 40 minutes on 2 cores)
#   BENCH_SMOKE=1 bash bench/run.sh    # tiny sizes, well under a minute
#
# Builds Berth and the load generator (release), installs distribution
# (Debian's docker-registry) when missing, then `berth-bench run`: it starts
# `berth serve --addr 127.0.0.1:0` and `docker-registry serve` (filesystem
# storage, delete enabled, loopback port), each with a fresh data directory
# under BENCH_WORK, runs every scenario against both in interleaved order,
# BENCH_REPS times (default 3), and stops exactly the PIDs it started.
# The table goes to stdout and to bench/results/latest.md (or
# smoke.md); progress and per-run figures go to stderr.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -x /usr/bin/docker-registry ]; then
  echo "==> installing docker-registry (CNCF distribution) from Debian" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq --no-install-recommends docker-registry >&2
  # The package enables a service on :5000; this benchmark starts its own.
  if command -v systemctl >/dev/null 2>&1; then
    systemctl disable --now docker-registry >/dev/null 2>&1 || true
  fi
fi

echo "==> cargo build --release (berth, berth-bench)" >&2
cargo build --release -p berth --bin berth -p berth-bench --bin berth-bench >&2

smoke="${BENCH_SMOKE:-0}"
base="${BENCH_WORK:-${TMPDIR:-/tmp}}"
mkdir -p "$base"
work="$(mktemp -d "$base/berth-bench.XXXXXX")"
trap 'rm -rf "$work"' EXIT

out=bench/results/latest.md
if [ "$smoke" != "0" ]; then out=bench/results/smoke.md; fi

echo "==> machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(free -g | awk '/^Mem:/{print $2}') GiB; load $(cut -d' ' -f1-3 /proc/loadavg)" >&2
BENCH_SMOKE="$smoke" target/release/berth-bench run \
  --berth target/release/berth \
  --registry /usr/bin/docker-registry \
  --work "$work" \
  --out "$out"

if [ "$smoke" != "0" ]; then
  # The scale scenarios at tiny sizes, so that the loader and the
  # measurements keep working; the real run is bash bench/scale.sh.
  echo "==> scale scenarios, smoke sizes" >&2
  target/release/berth-bench scale \
    --berth target/release/berth \
    --work "$work" \
    --small 200 \
    --large 400 \
    --reps 1
fi
