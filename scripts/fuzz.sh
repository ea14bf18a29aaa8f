#!/usr/bin/env bash
# Runs every fuzz target in fuzz/ (cargo fuzz, libFuzzer) for a bounded time
# and fails on any crash, panic, timeout or out-of-memory.
#
#   bash scripts/fuzz.sh                      # every target, 20 s each (CI)
#   FUZZ_SECONDS=600 bash scripts/fuzz.sh     # release check
#   bash scripts/fuzz.sh router digest        # some targets
#
# Environment:
#   FUZZ_SECONDS    time per target (default 20)
#   FUZZ_JOBS       targets run at once (default: the number of CPUs)
#   FUZZ_SANITIZER  none (default), address, ... (cargo fuzz -s); Berth is
#                   safe Rust, so the sanitizer mostly costs build time
#
# Only a stable toolchain is needed: libFuzzer's instrumentation flags are
# nightly-only, and RUSTC_BOOTSTRAP=1 lets stable rustc accept them.
# cargo-fuzz is installed from crates.io when missing. Targets build into
# fuzz/target (not the workspace's target/). New interesting inputs collect
# in fuzz/corpus/<target> (ignored by git; the committed seeds are in
# fuzz/seeds/<target>); a crashing input is written to
# fuzz/artifacts/<target>/ and the line printed for it says how to replay it.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${FUZZ_SECONDS:-20}"
jobs="${FUZZ_JOBS:-$(nproc)}"
sanitizer="${FUZZ_SANITIZER:-none}"
export RUSTC_BOOTSTRAP=1
# Faster builds of the instrumented dependencies (cargo fuzz's default is
# one codegen unit), at a small cost in executions per second.
build_flags=(-s "$sanitizer" --codegen-units 16)

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "installing cargo-fuzz"
    cargo install cargo-fuzz --locked --version 0.13.2
fi

if [ "$#" -gt 0 ]; then
    targets=("$@")
else
    mapfile -t targets < <(cargo fuzz list)
fi

start=$(date +%s)
cargo fuzz build "${build_flags[@]}"
echo "fuzz targets built in $(($(date +%s) - start)) s"

host="$(rustc -vV | sed -n 's/^host: //p')"
bindir="fuzz/target/$host/release"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
# The auth target keeps a small registry under $TMPDIR.
mkdir -p "$work/tmp"
export TMPDIR="$work/tmp"

# Runs one target; writes its report line to $work/<target>.result and
# exits non-zero when it failed.
run_target() {
    local t="$1" log="$work/$1.log" status=0 done_line runs cov artifact why
    mkdir -p "fuzz/corpus/$t" "fuzz/artifacts/$t"
    "$bindir/$t" "fuzz/corpus/$t" "fuzz/seeds/$t" \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
        -artifact_prefix="fuzz/artifacts/$t/" >"$log" 2>&1 || status=$?
    done_line="$(grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -n1 || true)"
    runs="$(sed -n 's/^Done \([0-9]*\) runs in \([0-9]*\) second.*/\1 runs in \2 s/p' "$log" | tail -n1)"
    cov="$(sed -n 's/.* cov: \([0-9]*\) .*/\1/p' <<<"$done_line")"
    if [ "$status" -eq 0 ] && [ -n "$runs" ]; then
        echo "PASS $t: $runs, coverage ${cov:-?}, corpus $(find "fuzz/corpus/$t" -type f | wc -l) inputs" >"$work/$t.result"
        return 0
    fi
    artifact="$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -n1)"
    why="$(grep -m1 -A1 'panicked at' "$log" | tail -n1 || true)"
    [ -n "$why" ] || why="$(grep -m1 -E 'ERROR: libFuzzer|SUMMARY' "$log" || echo "exit status $status")"
    {
        echo "FAIL $t: $why; reproducer ${artifact:-none}; replay: RUSTC_BOOTSTRAP=1 cargo fuzz run -s $sanitizer $t ${artifact:-}"
        tail -n 40 "$log" | sed 's/^/    /'
    } >"$work/$t.result"
    return 1
}

running=0
for t in "${targets[@]}"; do
    if [ "$running" -ge "$jobs" ]; then
        wait -n || true
        running=$((running - 1))
    fi
    run_target "$t" &
    running=$((running + 1))
done
wait || true

passed=0
failed=0
for t in "${targets[@]}"; do
    cat "$work/$t.result"
    if grep -q '^PASS' "$work/$t.result"; then
        passed=$((passed + 1))
    else
        failed=$((failed + 1))
    fi
done
echo "fuzzing: $passed passed, $failed failed (${seconds} s each, $jobs at a time, $(($(date +%s) - start)) s in all with the build)"
[ "$failed" -eq 0 ]
