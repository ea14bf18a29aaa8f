#!/usr/bin/env bash
# Runs the tests on the backends other than the embedded default:
#   - the store's suites on object_store's in-memory store;
#   - the store's suites on an S3-compatible server (s3s-fs), then the
#     conformance and OCI-client suites against `berth serve` storing its
#     blobs there;
#   - the metadata engine suite and the store's suites on PostgreSQL, then
#     the conformance and OCI-client suites against `berth serve` with its
#     metadata there;
#   - the conformance and OCI-client suites on PostgreSQL and S3 together;
#   - three replicas on one database and one bucket (tests/replicas.rs);
#   - `berth migrate` from sled to PostgreSQL and S3 and back (tests/migrate.rs);
#   - `berth serve` with the Kubernetes example's environment on both;
#   - `berth migrate-schema` and the schema checks of `berth serve`.
#
#   bash tests/backends/run.sh
#
# Each check that a suite passed is followed by one that the backend was
# really used (objects in the bucket, rows in the database).
set -euo pipefail
cd "$(dirname "$0")/../.."
source tests/support/servers.sh

black_box=(conformance oci_client)
cargo build --release --bin berth
berth="${BERTH_BIN:-$PWD/target/release/berth}"

echo "store suites on the in-memory object store"
BERTH_TEST_OBJECTS=memory cargo test --release -p berth-store "${store_suites[@]}"

start_s3
echo "store suites on S3 (s3s-fs)"
BERTH_TEST_OBJECTS=s3 BERTH_TEST_S3_ENDPOINT="$s3_endpoint" BERTH_TEST_S3_BUCKET="$s3_bucket" \
    BERTH_TEST_S3_ACCESS_KEY="$s3_key" BERTH_TEST_S3_SECRET_KEY="$s3_secret" \
    cargo test --release -p berth-store "${store_suites[@]}"
for suite in "${black_box[@]}"; do
    echo "$suite suite against berth serve on S3"
    mapfile -t vars < <(s3_serve_env "s3-$suite")
    env "${vars[@]}" cargo test --release --test "$suite"
    n="$(s3_blob_count "s3-$suite")"
    [ "$n" -gt 0 ] || { echo "the $suite suite left no blob in the bucket: berth did not use S3" >&2; exit 1; }
    echo "$suite: $n blob objects in the bucket"
done

start_postgres
echo "metadata engine suite on PostgreSQL"
psql "$pg_admin" -q -c "CREATE DATABASE engine"
BERTH_TEST_PG_URL="$(pg_url engine)" cargo test --release -p berth-store --lib -- \
    --ignored --exact meta::pg_db::tests::postgres_passes_the_engine_suite
echo "store suites on PostgreSQL"
BERTH_TEST_META=postgres BERTH_TEST_PG_URL="$pg_admin" \
    cargo test --release -p berth-store "${store_suites[@]}"
# The black-box suites start `berth serve` with its metadata in a database
# of its own per server (tests/common creates it from BERTH_TEST_PG_URL).
for with_s3 in no yes; do
    for suite in "${black_box[@]}"; do
        vars=()
        where="PostgreSQL"
        if [ "$with_s3" = yes ]; then
            mapfile -t vars < <(s3_serve_env "pg-$suite")
            where="PostgreSQL and S3"
        fi
        echo "$suite suite against berth serve on $where"
        before="$(pg_row_count)"
        env "${vars[@]}" BERTH_TEST_PG_URL="$pg_admin" cargo test --release --test "$suite"
        after="$(pg_row_count)"
        [ "$after" -gt "$((before + 10))" ] ||
            { echo "the $suite suite wrote $((after - before)) rows: berth did not use PostgreSQL" >&2; exit 1; }
        echo "$suite: $((after - before)) metadata rows in PostgreSQL"
        if [ "$with_s3" = yes ]; then
            n="$(s3_blob_count "pg-$suite")"
            [ "$n" -gt 0 ] || { echo "the $suite suite left no blob in the bucket" >&2; exit 1; }
            echo "$suite: $n blob objects in the bucket"
        fi
    done
done

# Several replicas on one database and one bucket (tests/replicas.rs):
# pushes through one pull through the others, uploads move between them,
# changes reach every replica within 2 s, GC runs on one at a time under
# pushes on all, a replica killed mid-upload loses nothing acknowledged,
# and the conformance suite passes with each request sent to the next
# replica. Each test takes a database and a bucket prefix of its own.
echo "three replicas on one PostgreSQL database and one S3 bucket"
mapfile -t vars < <(s3_serve_env replicas)
before="$(pg_row_count)"
env "${vars[@]}" BERTH_TEST_PG_URL="$pg_admin" cargo test --release --test replicas -- --ignored
after="$(pg_row_count)"
[ "$after" -gt "$((before + 100))" ] ||
    { echo "the replica tests wrote $((after - before)) rows: they did not use PostgreSQL" >&2; exit 1; }

# `berth migrate` between the two backend pairs, there and back
# (tests/migrate.rs), and blob pulls redirected to presigned URLs
# (tests/s3_redirect.rs); the backends are in the tests' config files.
echo "berth migrate: sled and the disk -> PostgreSQL and S3 -> sled and the disk; storage.redirect"
BERTH_TEST_PG_URL="$pg_admin" BERTH_TEST_S3_ENDPOINT="$s3_endpoint" BERTH_TEST_S3_BUCKET="$s3_bucket" \
    BERTH_TEST_S3_ACCESS_KEY="$s3_key" BERTH_TEST_S3_SECRET_KEY="$s3_secret" \
    cargo test --release --test migrate --test s3_redirect -- --ignored

# The benchmark's small-image push (8 clients, 500 images into one
# repository) on PostgreSQL and S3: its transactions all write the same
# rows, and under SERIALIZABLE one that keeps losing must still commit
# (it ended in a 500 after 64 quick retries before transactions that
# conflict repeatedly ran alone). Every push must be acknowledged.
echo "berth-bench small-image push on PostgreSQL and S3"
cargo build --release -p berth-bench --bin berth-bench
psql "$pg_admin" -q -c "CREATE DATABASE contended"
hot_dir="$(mktemp -d)"
mapfile -t vars < <(s3_serve_env contended)
port="$(free_port)"
env "${vars[@]}" BERTH_METADATA__BACKEND=postgres BERTH_METADATA__URL="$(pg_url contended)" \
    "$berth" serve --addr "127.0.0.1:$port" --data-dir "$hot_dir/data" >"$hot_dir/serve.log" 2>&1 &
hot_pid=$!
trap 'stop_pid "$hot_pid"; stop_servers' EXIT
wait_ready berth "$hot_pid" "$hot_dir/serve.log" curl -sf "http://127.0.0.1:$port/readyz"
target/release/berth-bench one --url "http://127.0.0.1:$port" --scenario small ||
    { tail -n 20 "$hot_dir/serve.log" >&2; exit 1; }
stop_pid "$hot_pid"
rm -rf "$hot_dir"

# The Kubernetes example's environment, with the cluster's addresses
# replaced by the test servers': Berth starts, is ready, and its first
# administrator (from the example's Secret) can sign in.
echo "berth serve with examples/kubernetes/deployment.yaml's environment"
python3 -c 'import yaml' 2>/dev/null || python3 -m pip install --quiet pyyaml
psql "$pg_admin" -q -c "CREATE DATABASE k8s"
k8s_dir="$(mktemp -d)"
mapfile -t k8s_env < <(python3 tests/deploy/examples.py env)
mapfile -t k8s_s3 < <(s3_serve_env k8s)
port="$(free_port)"
env -i PATH="$PATH" HOME="$k8s_dir" "${k8s_env[@]}" "${k8s_s3[@]}" \
    BERTH_SERVER__ADDR="127.0.0.1:$port" BERTH_METADATA__URL="$(pg_url k8s)" \
    BERTH_STORAGE__DATA_DIR="$k8s_dir/data" "$berth" serve >"$k8s_dir/serve.log" 2>&1 &
k8s_pid=$!
trap 'stop_pid "$k8s_pid"; stop_servers' EXIT
wait_ready berth "$k8s_pid" "$k8s_dir/serve.log" curl -sf "http://127.0.0.1:$port/readyz"
admin_password="$(sed -n 's/^BERTH_ADMIN_PASSWORD=//p' <<<"$(printf '%s\n' "${k8s_env[@]}")")"
code="$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/v2/")"
[ "$code" = 401 ] || { echo "anonymous /v2/ answered $code, expected 401 (auth.mode = token)" >&2; exit 1; }
code="$(curl -s -o /dev/null -w '%{http_code}' -u "admin:$admin_password" \
    "http://127.0.0.1:$port/api/v1/namespaces")"
[ "$code" = 200 ] || { echo "the example's administrator got $code from /api/v1/namespaces" >&2; exit 1; }
grep -q '"level":"INFO"' "$k8s_dir/serve.log" ||
    { echo "the example asks for JSON logs; the log is not JSON" >&2; exit 1; }
stop_pid "$k8s_pid"
rm -rf "$k8s_dir"
echo "kubernetes example: ready on PostgreSQL and S3, administrator signs in, JSON logs"

# Operators who run migrations themselves: `metadata.migrate = false`, and
# `berth migrate-schema` before the first start and after upgrades.
echo "berth migrate-schema and the schema checks of berth serve"
psql "$pg_admin" -q -c "CREATE DATABASE migrated"
schema_dir="$(mktemp -d)"
export BERTH_METADATA__BACKEND=postgres BERTH_METADATA__URL="$(pg_url migrated)"
export BERTH_METADATA__MIGRATE=false
expect_refusal() { # WHAT PATTERN COMMAND...: COMMAND must fail and print PATTERN
    local what="$1" pattern="$2" out
    shift 2
    if out="$("$@" 2>&1)"; then
        echo "$what: expected a refusal, got success: $out" >&2
        exit 1
    fi
    grep -q -- "$pattern" <<<"$out" ||
        { echo "$what: expected \"$pattern\" in: $out" >&2; exit 1; }
}
port="$(free_port)"
expect_refusal "serve on an empty database" "run \`berth migrate-schema\`" \
    timeout 30 "$berth" serve --addr "127.0.0.1:$port" --data-dir "$schema_dir/data"
"$berth" migrate-schema | grep -q "up to date"
"$berth" migrate-schema | grep -q "up to date" # again: nothing to do
[ "$(psql "$(pg_url migrated)" -qAt -c 'SELECT max(version) FROM berth_schema')" = 1 ] ||
    { echo "berth migrate-schema did not record schema version 1" >&2; exit 1; }
"$berth" serve --addr "127.0.0.1:$port" --data-dir "$schema_dir/data" >"$schema_dir/serve.log" 2>&1 &
serve_pid=$!
trap 'stop_pid "$serve_pid"; stop_servers' EXIT
wait_ready berth "$serve_pid" "$schema_dir/serve.log" curl -sf "http://127.0.0.1:$port/readyz"
# Offline maintenance takes the database's lock exclusively: refused while
# a server holds it shared, and it works once the server is gone.
expect_refusal "offline fsck beside a server" "stop every \`berth serve\` first" \
    "$berth" fsck --data-dir "$schema_dir/fsck"
stop_pid "$serve_pid"
"$berth" fsck --data-dir "$schema_dir/fsck" >/dev/null
psql "$(pg_url migrated)" -q -c 'UPDATE berth_schema SET version = 99'
expect_refusal "serve on a newer schema" "written by a newer Berth" \
    timeout 30 "$berth" serve --addr "127.0.0.1:$port" --data-dir "$schema_dir/data"
expect_refusal "migrate-schema on a newer schema" "written by a newer Berth" "$berth" migrate-schema
unset BERTH_METADATA__BACKEND BERTH_METADATA__URL BERTH_METADATA__MIGRATE
rm -rf "$schema_dir"
echo "migrate-schema: schema created once, serve refuses a missing and a newer schema; fsck refused beside a server"
