#!/usr/bin/env bash
# Runs every test of the project, from a fresh clone, on a fresh machine:
# formatting, lints, unit tests, black-box HTTP tests, the conformance suite
# and the real-client suite (which installs docker.io, podman, skopeo, ... when
# missing). `.ci/run` calls exactly this script.
#
# Everything runs on the release profile so that the project is compiled
# once (tests, the `berth` binary the black-box tests start, and the binary
# the client suite uses).
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (warnings are errors)"
cargo clippy --workspace --all-targets --release -- -D warnings
# The fuzz targets live outside the workspace; a change of the APIs they
# call should fail here, not after the whole test run.
RUSTC_BOOTSTRAP=1 cargo check --manifest-path fuzz/Cargo.toml --release --bins

step "tools the Rust tests call (skopeo for the HTTPS test)"
if ! command -v skopeo >/dev/null; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y --no-install-recommends skopeo >/dev/null 2>&1 ||
        { apt-get update >/dev/null && apt-get install -y --no-install-recommends skopeo >/dev/null; }
fi

step "cargo test (unit, black-box HTTP, conformance)"
cargo test --workspace --release --no-fail-fast

cargo build --release --bin berth
export BERTH_BIN="$PWD/target/release/berth"

step "fuzz targets (cargo fuzz on stable via RUSTC_BOOTSTRAP, 10 s each)"
FUZZ_SECONDS=${FUZZ_SECONDS:-10} bash scripts/fuzz.sh

step "benchmark smoke run (tiny sizes; the real benchmark is bash bench/run.sh)"
BENCH_SMOKE=1 bash bench/run.sh

step "schemathesis against the management API's OpenAPI document"
bash tests/api/schemathesis.sh

step "web console (Vitest, rebuild check, API types check, Playwright e2e in chromium)"
bash scripts/console.sh

step "deployment examples (systemd unit, Dockerfile, Kubernetes manifests)"
bash tests/deploy/check.sh

step "other backends: in-memory and S3 objects, PostgreSQL metadata, PostgreSQL with S3"
bash tests/backends/run.sh

step "real clients (docker, podman, buildah, skopeo, ctr, oras, helm)"
bash tests/clients/run.sh

step "all tests passed"
