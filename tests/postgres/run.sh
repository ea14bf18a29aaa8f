#!/usr/bin/env bash
# Runs the metadata engine suite and the store's test suites on PostgreSQL,
# then the conformance and OCI-client suites against `berth serve` with
# its metadata in PostgreSQL.
#
#   bash tests/postgres/run.sh
#
# PostgreSQL comes from Debian's packages (installed when missing). The
# server is a throwaway cluster (initdb) in a temporary directory, on a free
# loopback port, with password authentication over TCP; it is stopped by
# its PID when the script exits.
set -euo pipefail
cd "$(dirname "$0")/../.."
source tests/support/servers.sh

pg_bin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1; }
bin="$(pg_bin)"
if [ -z "$bin" ] || ! id postgres >/dev/null 2>&1; then
    echo "installing PostgreSQL from Debian's packages"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y --no-install-recommends postgresql >/dev/null 2>&1 ||
        { apt-get update >/dev/null && apt-get install -y --no-install-recommends postgresql >/dev/null; }
    bin="$(pg_bin)"
fi
[ -x "$bin/initdb" ] || { echo "no initdb under /usr/lib/postgresql/*/bin" >&2; exit 1; }
command -v psql >/dev/null || { echo "psql is missing (postgresql-client)" >&2; exit 1; }

work="$(mktemp -d)"
pid=""
stop() {
    stop_pid "$pid"
    rm -rf "$work"
}
trap stop EXIT

# initdb and postgres refuse to run as root: the cluster belongs to the
# postgres user that Debian's package creates.
chown postgres "$work"
password="berth-test-$RANDOM$RANDOM"
printf '%s\n' "$password" >"$work/pw"
chown postgres "$work/pw"
as_pg() { runuser -u postgres -- "$@"; }
as_pg "$bin/initdb" -D "$work/data" -U berth --pwfile="$work/pw" \
    --auth-local=trust --auth-host=scram-sha-256 >"$work/initdb.log" 2>&1 ||
    { cat "$work/initdb.log"; exit 1; }
port="$(free_port)"
mkdir -p "$work/sock" && chown postgres "$work/sock"
as_pg "$bin/postgres" -D "$work/data" -p "$port" -c listen_addresses=127.0.0.1 \
    -k "$work/sock" >"$work/pg.log" 2>&1 &
pid=$!
admin="postgres://berth:$password@127.0.0.1:$port/postgres"
wait_ready postgres "$pid" "$work/pg.log" psql "$admin" -qAt -c 'SELECT 1'
echo "PostgreSQL $(psql "$admin" -qAt -c 'SHOW server_version') on 127.0.0.1:$port"
url() { printf 'postgres://berth:%s@127.0.0.1:%s/%s' "$password" "$port" "$1"; }
createdb_() { psql "$admin" -q -c "CREATE DATABASE $1"; }

echo "metadata engine suite on PostgreSQL"
createdb_ engine
BERTH_TEST_PG_URL="$(url engine)" cargo test --release -p berth-store --lib -- \
    --ignored --exact meta::pg_db::tests::postgres_passes_the_engine_suite

echo "store suites on PostgreSQL"
BERTH_TEST_META=postgres BERTH_TEST_PG_URL="$admin" \
    cargo test --release -p berth-store "${store_suites[@]}"

# The black-box suites start `berth serve` with its metadata in a
# database of its own per server (tests/common creates it from this URL).
rows_in_server_databases() {
    local total=0 db n
    for db in $(psql "$admin" -qAt -c "SELECT datname FROM pg_database WHERE datname LIKE 't\_tmp%'"); do
        n="$(psql "$(url "$db")" -qAt -c 'SELECT count(*) FROM berth_kv' 2>/dev/null || echo 0)"
        total=$((total + n))
    done
    echo "$total"
}
for suite in conformance oci_client; do
    echo "$suite suite against berth serve on PostgreSQL"
    before="$(rows_in_server_databases)"
    BERTH_TEST_PG_URL="$admin" cargo test --release --test "$suite"
    # The suite passing says little unless the metadata really went there.
    after="$(rows_in_server_databases)"
    if [ "$after" -le "$((before + 10))" ]; then
        echo "the $suite suite wrote $((after - before)) metadata rows: berth did not use PostgreSQL" >&2
        exit 1
    fi
    echo "$suite: $((after - before)) metadata rows in PostgreSQL"
done
