# shellcheck shell=bash
# Berth as a replica set (Berth only): two `berth serve` processes on one
# PostgreSQL database and one S3 bucket (the servers of tests/support/servers.sh,
# started here); docker pushes through one and pulls through the other, whose
# blob GETs redirect to presigned URLs of the bucket (storage.redirect).
REPLICA_URLS=()
REPLICA_PIDS=()

step_replicas_start() {
    local i env
    # servers.sh builds s3s-fs into the project's target/tools.
    pushd "$ROOT" >/dev/null || return
    start_s3 >"$T/s3.out" 2>&1 || why "S3 server: $(oneline "$T/s3.out")" || { popd >/dev/null; return 1; }
    start_postgres >"$T/pg.out" 2>&1 || why "PostgreSQL: $(oneline "$T/pg.out")" || { popd >/dev/null; return 1; }
    popd >/dev/null || return
    psql "$pg_admin" -q -c "CREATE DATABASE replicas" >"$T/psql.out" 2>&1 ||
        why "CREATE DATABASE: $(oneline "$T/psql.out")" || return
    mapfile -t env < <(s3_serve_env clients-replicas)
    env+=(BERTH_METADATA__BACKEND=postgres "BERTH_METADATA__URL=$(pg_url replicas)")
    for i in 0 1; do
        mkdir -p "$T/replica$i"
        # The pulling replica redirects blob GETs to presigned URLs of the
        # bucket: docker follows them to s3s-fs.
        ((i == 1)) && env+=(BERTH_STORAGE__REDIRECT=true)
        env "${env[@]}" "$BERTH_BIN" serve --addr 127.0.0.1:0 --data-dir "$T/replica$i" \
            >"$T/replica$i.out" 2>"$T/replica$i.log" &
        REPLICA_PIDS+=($!)
        first_line "$!" "$T/replica$i.out" "$T/replica$i.log" "berth replica $i" || return
        [[ $LINE =~ ^berth\ listening\ on\ http://(127\.0\.0\.1:[0-9]+)$ ]] ||
            why "unexpected first stdout line of replica $i: '$LINE'" || return
        REPLICA_URLS+=("${BASH_REMATCH[1]}")
    done
}

# The image docker built, pushed through replica 0 and pulled through
# replica 1 (its layers from the bucket, by redirect): the same digest and
# image ID, and its blobs are in the bucket.
step_replicas_docker() {
    local a=${REPLICA_URLS[0]}/team/app:1 b=${REPLICA_URLS[1]}/team/app:1 n
    timeout 300 docker pull "$IMG" >"$T/r-pull0.out" 2>&1 || why "docker pull $IMG: $(oneline "$T/r-pull0.out")" || return
    docker tag "$IMG" "$a" || why "docker tag failed" || return
    timeout 300 docker push "$a" >"$T/r-push.out" 2>&1 ||
        why "docker push through replica 0: $(tail -n 3 "$T/r-push.out" | tr '\n' ' ')" || return
    grep -q "digest: $PUSH_DIGEST size: $PUSH_SIZE" "$T/r-push.out" ||
        why "replica 0 took another digest: $(oneline "$T/r-push.out")" || return
    remove_local_images || return
    docker rmi -f "$a" >/dev/null 2>&1
    timeout 300 docker pull "$b" >"$T/r-pull.out" 2>&1 ||
        why "docker pull through replica 1: $(oneline "$T/r-pull.out")" || return
    grep -q "^Digest: $PUSH_DIGEST\$" "$T/r-pull.out" ||
        why "replica 1 served another digest: $(oneline "$T/r-pull.out")" || return
    check_pulled "$b" || return
    n=$(s3_blob_count clients-replicas)
    [[ $n -ge 3 ]] || why "only $n blob objects in the bucket: the replicas did not store in S3" || return
}

stop_replicas() {
    local pid
    for pid in "${REPLICA_PIDS[@]}"; do kill_pid "$pid" 15; done
    [[ -n ${servers_dir:-} ]] && stop_servers
}
