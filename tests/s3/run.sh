#!/usr/bin/env bash
# Runs the store's test suites against object stores other than the local
# disk: object_store's in-memory store, and an S3-compatible server
# (s3s-fs, a small S3 server over a directory, built from crates.io into
# target/tools when missing). Then the conformance and OCI-client suites
# run against `berth serve` storing its blobs in that server.
#
#   bash tests/s3/run.sh
#
# The server listens on a free loopback port with a temporary directory,
# and is stopped by its PID when the script exits.
set -euo pipefail
cd "$(dirname "$0")/../.."

S3S_VERSION=0.14.1
tools="$PWD/target/tools"
s3s="$tools/bin/s3s-fs"

source tests/support/servers.sh

echo "store suites on the in-memory object store"
BERTH_TEST_OBJECTS=memory cargo test --release -p berth-store "${store_suites[@]}"

if [ ! -x "$s3s" ]; then
    echo "installing s3s-fs $S3S_VERSION into target/tools"
    cargo install s3s-fs --version "$S3S_VERSION" --features binary --locked --root "$tools"
fi

work="$(mktemp -d)"
pid=""
stop() {
    stop_pid "$pid"
    rm -rf "$work"
}
trap stop EXIT

bucket=berth-test
mkdir -p "$work/root/$bucket"
port="$(free_port)"
key=berth-test
secret="berth-test-secret-$RANDOM$RANDOM"
"$s3s" --host 127.0.0.1 --port "$port" --access-key "$key" --secret-key "$secret" "$work/root" \
    >"$work/s3s.log" 2>&1 &
pid=$!
endpoint="http://127.0.0.1:$port"
wait_ready s3s-fs "$pid" "$work/s3s.log" curl -s -o /dev/null "$endpoint/"
echo "s3s-fs $S3S_VERSION on $endpoint"

echo "store suites on S3 (s3s-fs)"
BERTH_TEST_OBJECTS=s3 BERTH_TEST_S3_ENDPOINT="$endpoint" BERTH_TEST_S3_BUCKET="$bucket" \
    BERTH_TEST_S3_ACCESS_KEY="$key" BERTH_TEST_S3_SECRET_KEY="$secret" \
    cargo test --release -p berth-store "${store_suites[@]}"

# `berth serve`, as the black-box suites start it, reads its storage from
# these variables; each suite gets a prefix of its own in the bucket.
export BERTH_STORAGE__BACKEND=s3 BERTH_STORAGE__BUCKET="$bucket" \
    BERTH_STORAGE__ENDPOINT="$endpoint" BERTH_STORAGE__ALLOW_HTTP=true \
    BERTH_STORAGE__ACCESS_KEY_ID="$key" BERTH_STORAGE__SECRET_ACCESS_KEY="$secret"
for suite in conformance oci_client; do
    echo "$suite suite against berth serve on S3 (s3s-fs)"
    BERTH_STORAGE__PREFIX="$suite" cargo test --release --test "$suite"
    # The suite passing says little unless the blobs really went to S3.
    stored="$(find "$work/root/$bucket/$suite/blobs" -type f 2>/dev/null | wc -l)"
    if [ "$stored" -eq 0 ]; then
        echo "the $suite suite left no blob in the bucket: berth did not use S3" >&2
        exit 1
    fi
    echo "$suite: $stored blob objects in the bucket"
done
