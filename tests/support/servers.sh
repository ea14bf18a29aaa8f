# Servers for the tests of the non-default backends (sourced by
# tests/backends/run.sh): an S3-compatible server and a PostgreSQL cluster,
# each on a free loopback port with a temporary directory, stopped by PID
# when the script exits.

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

servers_dir="$(mktemp -d)"
s3_pid=""
pg_pid=""
stop_servers() {
    stop_pid "$s3_pid"
    stop_pid "$pg_pid"
    rm -rf "$servers_dir"
}
trap stop_servers EXIT

# start_s3: s3s-fs (a small S3 server over a directory), built from
# crates.io into target/tools when missing. Sets s3_endpoint, s3_bucket,
# s3_key, s3_secret, s3_root (the bucket's directory).
S3S_VERSION=0.14.1
start_s3() {
    local tools="$PWD/target/tools"
    local bin="$tools/bin/s3s-fs"
    if [ ! -x "$bin" ]; then
        echo "installing s3s-fs $S3S_VERSION into target/tools"
        cargo install s3s-fs --version "$S3S_VERSION" --features binary --locked --root "$tools"
    fi
    s3_bucket=berth-test
    s3_root="$servers_dir/s3/$s3_bucket"
    mkdir -p "$s3_root"
    s3_key=berth-test
    s3_secret="berth-test-secret-$RANDOM$RANDOM"
    local port
    port="$(free_port)"
    "$bin" --host 127.0.0.1 --port "$port" --access-key "$s3_key" --secret-key "$s3_secret" \
        "$servers_dir/s3" >"$servers_dir/s3s.log" 2>&1 &
    s3_pid=$!
    s3_endpoint="http://127.0.0.1:$port"
    wait_ready s3s-fs "$s3_pid" "$servers_dir/s3s.log" curl -s -o /dev/null "$s3_endpoint/"
    echo "s3s-fs $S3S_VERSION on $s3_endpoint"
}

# The variables `berth serve` reads to keep its blobs in the bucket under
# PREFIX, as `env` arguments.
s3_serve_env() {
    printf '%s\n' BERTH_STORAGE__BACKEND=s3 "BERTH_STORAGE__BUCKET=$s3_bucket" \
        "BERTH_STORAGE__PREFIX=$1" "BERTH_STORAGE__ENDPOINT=$s3_endpoint" \
        BERTH_STORAGE__ALLOW_HTTP=true "BERTH_STORAGE__ACCESS_KEY_ID=$s3_key" \
        "BERTH_STORAGE__SECRET_ACCESS_KEY=$s3_secret"
}

# Blob objects under PREFIX in the bucket.
s3_blob_count() {
    find "$s3_root/$1/blobs" -type f 2>/dev/null | wc -l
}

# start_postgres: a throwaway cluster from Debian's packages (installed
# when missing), password authentication over TCP. Sets pg_admin (a URL of
# the `postgres` database) and pg_url NAME (the URL of database NAME).
start_postgres() {
    pg_bin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1; }
    local bin
    bin="$(pg_bin)"
    if [ -z "$bin" ] || ! id postgres >/dev/null 2>&1; then
        echo "installing PostgreSQL from Debian's packages"
        export DEBIAN_FRONTEND=noninteractive
        apt-get install -y --no-install-recommends postgresql >/dev/null 2>&1 ||
            { apt-get update >/dev/null && apt-get install -y --no-install-recommends postgresql >/dev/null; }
        bin="$(pg_bin)"
    fi
    [ -x "$bin/initdb" ] || { echo "no initdb under /usr/lib/postgresql/*/bin" >&2; return 1; }
    command -v psql >/dev/null || { echo "psql is missing (postgresql-client)" >&2; return 1; }
    # initdb and postgres refuse to run as root: the cluster belongs to
    # the postgres user that Debian's package creates.
    local dir="$servers_dir/pg"
    mkdir -p "$dir/sock"
    # The postgres user must reach its directory inside ours.
    chmod 711 "$servers_dir"
    pg_password="berth-test-$RANDOM$RANDOM"
    printf '%s\n' "$pg_password" >"$dir/pw"
    chown -R postgres "$dir"
    runuser -u postgres -- "$bin/initdb" -D "$dir/data" -U berth --pwfile="$dir/pw" \
        --auth-local=trust --auth-host=scram-sha-256 >"$dir/initdb.log" 2>&1 ||
        { cat "$dir/initdb.log" >&2; return 1; }
    pg_port="$(free_port)"
    runuser -u postgres -- "$bin/postgres" -D "$dir/data" -p "$pg_port" \
        -c listen_addresses=127.0.0.1 -k "$dir/sock" >"$servers_dir/pg.log" 2>&1 &
    pg_pid=$!
    pg_admin="$(pg_url postgres)"
    wait_ready postgres "$pg_pid" "$servers_dir/pg.log" psql "$pg_admin" -qAt -c 'SELECT 1'
    echo "PostgreSQL $(psql "$pg_admin" -qAt -c 'SHOW server_version') on 127.0.0.1:$pg_port"
}

pg_url() { printf 'postgres://berth:%s@127.0.0.1:%s/%s' "$pg_password" "$pg_port" "$1"; }

# Metadata rows in every database the test helpers created (one per data
# directory, named t_tmp...).
pg_row_count() {
    local total=0 db n
    for db in $(psql "$pg_admin" -qAt -c "SELECT datname FROM pg_database WHERE datname LIKE 't\_tmp%'"); do
        n="$(psql "$(pg_url "$db")" -qAt -c 'SELECT count(*) FROM berth_kv' 2>/dev/null || echo 0)"
        total=$((total + n))
    done
    echo "$total"
}

# The store's integration suites, as `cargo test` arguments.
store_suites=()
for f in crates/store/tests/*.rs; do
    store_suites+=(--test "$(basename "$f" .rs)")
done
