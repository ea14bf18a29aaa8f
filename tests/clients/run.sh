#!/usr/bin/env bash
# Real-client test: pushes and pulls through Berth with docker (dockerd + classic
# builder) and skopeo, and checks every byte by digest.
#
#   bash tests/clients/run.sh            # against target/release/berth
#   BERTH_BIN=/path/to/berth bash tests/clients/run.sh
#   REGISTRY=distribution bash tests/clients/run.sh   # against CNCF distribution (reference)
#
# Environment:
#   BERTH_BIN              berth binary (default: target/release/berth)
#   REGISTRY               berth (default) | distribution
#   DOCKER_STORAGE_DRIVER  passed to dockerd as --storage-driver (default: dockerd's choice)
#   CLIENT_LOGS_DIR        if set, registry/dockerd logs are copied there at exit
#   CI=true                a tool that is missing and cannot be installed is a FAIL, not a SKIP
#
# Output: one line per step, "PASS name" / "FAIL name: why" / "SKIP name: why",
# then "N passed, N failed". Exit status 1 if anything failed.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
REGISTRY=${REGISTRY:-berth}
BERTH_BIN=${BERTH_BIN:-$ROOT/target/release/berth}
CI=${CI:-false}
export DEBIAN_FRONTEND=noninteractive
export DOCKER_BUILDKIT=0

# Short path on purpose: containerd's sockets live under it (unix socket paths <= 107 bytes).
T=$(mktemp -d /tmp/berth-clients.XXXXXX)
chmod 755 "$T"
export DOCKER_CONFIG=$T/docker-client # keep docker's client config away from ~/.docker
export DOCKER_HOST=unix://$T/docker/docker.sock
export REGISTRY_AUTH_FILE=$T/skopeo-auth.json
mkdir -p "$DOCKER_CONFIG"

REG_PID=""
TREG_PID="" # the second berth, in auth mode token
TLSREG_PID="" # the third, in token mode over HTTPS
DOCKERD_PID=""
CONTAINERD_PID=""
STARTED=$(date +%s)

# ---------------------------------------------------------------- cleanup
kill_pid() { # kill_pid PID [seconds]: SIGTERM, wait, then SIGKILL
    local pid=$1 secs=${2:-20} i
    [[ -n $pid ]] || return 0
    kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < secs * 10; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null || true; fi
    wait "$pid" 2>/dev/null || true
}

cleanup() {
    local rc=$? pid m
    set +e
    kill_pid "$DOCKERD_PID" 30
    kill_pid "$CONTAINERD_PID" 15
    # Leftovers of the dockerd we started (its managed containerd, shims): found by our
    # unique temp dir in their command line, killed by PID.
    for pid in $(grep -lsF "$T/" /proc/[0-9]*/cmdline 2>/dev/null | cut -d/ -f3); do
        [[ $pid == "$$" || $pid == "$BASHPID" ]] && continue
        kill_pid "$pid" 5
    done
    kill_pid "$REG_PID" 15
    kill_pid "$TREG_PID" 15
    kill_pid "$TLSREG_PID" 15
    # Unmount whatever dockerd left mounted under our temp dir (deepest first).
    for m in $(awk -v t="$T/" 'index($2, t) == 1 { print $2 }' /proc/mounts | sort -r); do
        umount -l "$m" 2>/dev/null
    done
    if [[ -n ${CLIENT_LOGS_DIR:-} ]]; then
        mkdir -p "$CLIENT_LOGS_DIR" && cp -f "$T"/*.log "$CLIENT_LOGS_DIR"/ 2>/dev/null
    fi
    rm -rf "$T"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------- reporting
PASSED=0
FAILED=0
SKIPPED=0
declare -A STATUS=()
REASON=""

pass() { echo "PASS $1"; PASSED=$((PASSED + 1)); STATUS[$1]=pass; }
fail() { echo "FAIL $1: $2"; FAILED=$((FAILED + 1)); STATUS[$1]=fail; }
skip() { # a skip is a failure under CI
    if [[ $CI == true ]]; then fail "$1" "$2"; return; fi
    echo "SKIP $1: $2"
    SKIPPED=$((SKIPPED + 1))
    STATUS[$1]=skip
}
# why MSG: record why the current step fails; returns 1 so that `cmd || why ... || return`
why() { REASON="$*"; return 1; }

# run NAME "DEP1 DEP2" FUNC: run FUNC as step NAME if every dependency passed.
run() {
    local name=$1 deps=$2 fn=$3 d
    for d in $deps; do
        case ${STATUS[$d]:-none} in
        pass) ;;
        skip) skip "$name" "needs $d, which was skipped"; return 0 ;;
        *) fail "$name" "needs $d, which failed"; return 0 ;;
        esac
    done
    REASON=""
    local rc=0
    "$fn" || rc=$?
    if ((rc == 0)); then
        pass "$name"
    elif [[ $REASON == missing:* ]]; then
        skip "$name" "$REASON" # a FAIL under CI=true
    else
        fail "$name" "${REASON:-exit status $rc}"
    fi
}

# ---------------------------------------------------------------- helpers
sha() { sha256sum "$1" | cut -d' ' -f1; }       # hex sha256 of a file
fsize() { stat -c %s "$1"; }
oneline() { tr '\n' ' ' <"$1" | cut -c1-400; }  # a file's text, for a FAIL line

# http METHOD URL BODYFILE HEADERFILE [curl args...]: prints the status code
http() {
    local method=$1 url=$2 body=$3 hdr=$4
    shift 4
    local m=(-X "$method")
    [[ $method == HEAD ]] && m=(--head)
    curl -sS "${m[@]}" -o "$body" -D "$hdr" -w '%{http_code}' --max-time 60 "$@" "$url" \
        2>"$T/curl.err" || echo "curl-error:$(oneline "$T/curl.err")"
}
# header NAME FILE: value of a response header (last one), without CR
header() { grep -i "^$1:" "$2" | tail -n1 | cut -d: -f2- | sed 's/^ *//' | tr -d '\r'; }

MT_DOCKER_MANIFEST=application/vnd.docker.distribution.manifest.v2+json
MT_OCI_MANIFEST=application/vnd.oci.image.manifest.v1+json
ACCEPT_ALL=(-H "Accept: $MT_DOCKER_MANIFEST" -H "Accept: $MT_OCI_MANIFEST"
    -H "Accept: application/vnd.docker.distribution.manifest.list.v2+json"
    -H "Accept: application/vnd.oci.image.index.v1+json")

# fetch_blob REPO DIGEST OUT: GET a blob and check its digest, size header and Docker-Content-Digest
fetch_blob() {
    local repo=$1 dg=$2 out=$3 code
    code=$(http GET "http://$REG/v2/$repo/blobs/$dg" "$out" "$T/blob.hdr" -L)
    [[ $code == 200 ]] || why "GET /v2/$repo/blobs/$dg -> $code $(oneline "$out")" || return
    [[ sha256:$(sha "$out") == "$dg" ]] || why "blob $dg from $repo hashes to sha256:$(sha "$out")" || return
}

# ---------------------------------------------------------------- tools
# command -> Debian package
declare -A PKG=([curl]=curl [jq]=jq [sha256sum]=coreutils [timeout]=coreutils [gzip]=gzip [tar]=tar
    [dockerd]=docker.io [docker]=docker.io [containerd]=containerd [runc]=runc [skopeo]=skopeo
    [docker-registry]=docker-registry)
BASE_CMDS=(curl jq sha256sum timeout gzip tar)
DOCKER_CMDS=(dockerd docker containerd runc)
SKOPEO_CMDS=(skopeo)
BUSYBOX=/bin/busybox

busybox_static_ok() { dpkg-query -W -f='${Status}' busybox-static 2>/dev/null | grep -q 'install ok installed' && [[ -x $BUSYBOX ]]; }

missing_cmds() { local c; for c in "$@"; do command -v "$c" >/dev/null 2>&1 || echo "$c"; done; }

install_missing() {
    local cmds=("${BASE_CMDS[@]}" "${DOCKER_CMDS[@]}" "${SKOPEO_CMDS[@]}") pkgs=() c
    [[ $REGISTRY == distribution ]] && cmds+=(docker-registry)
    for c in $(missing_cmds "${cmds[@]}"); do pkgs+=("${PKG[$c]}"); done
    busybox_static_ok || pkgs+=(busybox-static)
    ((${#pkgs[@]})) || return 0
    mapfile -t pkgs < <(printf '%s\n' "${pkgs[@]}" | sort -u)
    echo "installing: ${pkgs[*]}" >&2
    if ! apt-get install -y --no-install-recommends "${pkgs[@]}" >"$T/apt.log" 2>&1; then
        apt-get update >>"$T/apt.log" 2>&1 || true
        apt-get install -y --no-install-recommends "${pkgs[@]}" >>"$T/apt.log" 2>&1 || {
            echo "apt-get install ${pkgs[*]} failed:" >&2
            tail -n 5 "$T/apt.log" >&2
        }
    fi
}

step_tools_base() {
    local m
    m=$(missing_cmds "${BASE_CMDS[@]}" | xargs)
    [[ -z $m ]] || why "missing: $m" || return
}
step_tools_docker() {
    local m
    m=$(missing_cmds "${DOCKER_CMDS[@]}" | xargs)
    busybox_static_ok || m="$m busybox-static"
    [[ -z $m ]] || why "missing: $m" || return
}
step_tools_skopeo() {
    local m
    m=$(missing_cmds "${SKOPEO_CMDS[@]}" | xargs)
    [[ -z $m ]] || why "missing: $m" || return
}

# ---------------------------------------------------------------- registry
wait_v2() { # wait until GET /v2/ answers 200
    local i code
    for ((i = 0; i < 100; i++)); do
        code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://$REG/v2/" 2>/dev/null || true)
        [[ $code == 200 ]] && return 0
        kill -0 "$REG_PID" 2>/dev/null || why "registry exited: $(tail -n 5 "$T/registry.log" | tr '\n' ' ')" || return
        sleep 0.2
    done
    why "GET http://$REG/v2/ did not answer 200 within 20 s (last: $code)"
}

start_berth() {
    local i line=""
    [[ -x $BERTH_BIN ]] || why "berth binary $BERTH_BIN not found (cargo build --release)" || return
    mkdir -p "$T/berth-data"
    "$BERTH_BIN" serve --addr 127.0.0.1:0 --data-dir "$T/berth-data" >"$T/registry.out" 2>"$T/registry.log" &
    REG_PID=$!
    for ((i = 0; i < 300; i++)); do
        # only a complete first line counts
        if [[ $(wc -l <"$T/registry.out") -ge 1 ]]; then
            line=$(head -n1 "$T/registry.out")
            break
        fi
        kill -0 "$REG_PID" 2>/dev/null || why "berth exited before listening: $(tail -n 5 "$T/registry.log" | tr '\n' ' ')" || return
        sleep 0.1
    done
    [[ -n $line ]] || why "berth printed no line on stdout within 30 s" || return
    [[ $line =~ ^berth\ listening\ on\ http://127\.0\.0\.1:([0-9]+)$ ]] ||
        why "unexpected first stdout line: '$line'" || return
    PORT=${BASH_REMATCH[1]}
    REG=127.0.0.1:$PORT
    wait_v2
}

free_port() { # a port nobody answers on
    local p i
    for ((i = 0; i < 50; i++)); do
        p=$((20000 + RANDOM % 40000))
        (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return 0; }
    done
    return 1
}

start_distribution() {
    command -v docker-registry >/dev/null || why "docker-registry not installed" || return
    PORT=$(free_port) || why "no free port" || return
    REG=127.0.0.1:$PORT
    mkdir -p "$T/distribution"
    cat >"$T/distribution/config.yml" <<EOF
version: 0.1
log:
  level: info
storage:
  filesystem:
    rootdirectory: $T/distribution/data
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: 127.0.0.1:$PORT
EOF
    # distribution reads REGISTRY_* variables as configuration: give it none
    local unset=()
    mapfile -t unset < <(env | sed -n 's/^\(REGISTRY_[A-Za-z0-9_]*\)=.*/--unset=\1/p')
    env "${unset[@]}" docker-registry serve "$T/distribution/config.yml" >"$T/registry.out" 2>"$T/registry.log" &
    REG_PID=$!
    wait_v2
}

step_registry() {
    : >"$T/registry.out"
    : >"$T/registry.log"
    case $REGISTRY in
    berth) start_berth ;;
    distribution) start_distribution ;;
    *) why "unknown REGISTRY=$REGISTRY (berth|distribution)" ;;
    esac
}

# ---------------------------------------------------------------- dockerd
step_dockerd() {
    local d=$T/docker i ver extra=()
    mkdir -p "$d/data" "$d/exec"
    ver=$(dockerd --version | sed -n 's/^Docker version \([0-9]*\)\..*/\1/p')
    # dockerd < 23 writes its trust key to /etc/docker/key.json unless told otherwise
    if [[ -n $ver && $ver -lt 23 ]]; then
        jq -n --arg k "$d/key.json" '{"deprecated-key-path": $k}' >"$d/daemon.json"
    else
        echo '{}' >"$d/daemon.json"
    fi
    [[ -n ${DOCKER_STORAGE_DRIVER:-} ]] && extra+=(--storage-driver "$DOCKER_STORAGE_DRIVER")
    # Our own containerd, everything under $d (dockerd would otherwise use a system
    # containerd at /run/containerd/containerd.sock if one runs). Only the shims' sockets
    # go to /run/containerd/s/ (fixed in containerd 1.x), and go away with the containers.
    mkdir -p "$d/containerd"
    cat >"$d/containerd/config.toml" <<CONF
version = 2
root = "$d/containerd/root"
state = "$d/containerd/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$d/containerd/containerd.sock"
[plugins."io.containerd.internal.v1.opt"]
  path = "$d/containerd/opt"
CONF
    containerd --config "$d/containerd/config.toml" --log-level info >"$T/containerd.log" 2>&1 &
    CONTAINERD_PID=$!
    for ((i = 0; i < 150; i++)); do
        [[ -S $d/containerd/containerd.sock ]] && break
        kill -0 "$CONTAINERD_PID" 2>/dev/null || why "containerd exited: $(tail -n 3 "$T/containerd.log" | tr '\n' ' ')" || return
        sleep 0.2
    done
    [[ -S $d/containerd/containerd.sock ]] || why "containerd did not create its socket within 30 s" || return
    dockerd --debug --containerd "$d/containerd/containerd.sock" --config-file "$d/daemon.json" \
        --iptables=false --ip6tables=false --ip-forward=false --ip-masq=false \
        --bridge=none --userland-proxy=false \
        --data-root "$d/data" --exec-root "$d/exec" \
        --host "unix://$d/docker.sock" --pidfile "$d/docker.pid" \
        "${extra[@]}" >"$T/dockerd.log" 2>&1 &
    DOCKERD_PID=$!
    for ((i = 0; i < 300; i++)); do
        docker version >/dev/null 2>&1 && break
        kill -0 "$DOCKERD_PID" 2>/dev/null ||
            why "dockerd exited: $(grep -E 'level=(error|fatal)|failed' "$T/dockerd.log" | tail -n 3 | tr '\n' ' ')" || return
        sleep 0.2
    done
    docker version >/dev/null 2>&1 || why "dockerd did not answer within 60 s" || return
    echo "dockerd $(docker version -f '{{.Server.Version}}'), storage driver $(docker info -f '{{.Driver}}')" >&2
}

# ---------------------------------------------------------------- docker steps
step_docker_build() {
    local ctx=$T/ctx
    mkdir -p "$ctx"
    cp "$BUSYBOX" "$ctx/busybox"
    RAND=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
    printf '%s\n' "$RAND" >"$ctx/rand.txt"
    cat >"$ctx/Dockerfile" <<'EOF'
FROM scratch
COPY busybox /bin/busybox
COPY rand.txt /rand.txt
ENTRYPOINT ["/bin/busybox"]
CMD ["cat", "/rand.txt"]
EOF
    IMG=$REG/team/app:1
    timeout 300 docker build -t "$IMG" "$ctx" >"$T/build.out" 2>&1 ||
        why "docker build: $(tail -n 3 "$T/build.out" | tr '\n' ' ')" || return
    IMAGE_ID=$(docker image inspect -f '{{.Id}}' "$IMG") || why "built image not found" || return
}

step_docker_push() {
    timeout 300 docker push "$IMG" >"$T/push.out" 2>&1 ||
        why "docker push $IMG: $(tail -n 3 "$T/push.out" | tr '\n' ' ')" || return
    local re='digest: (sha256:[0-9a-f]{64}) size: ([0-9]+)'
    [[ $(cat "$T/push.out") =~ $re ]] || why "no digest in docker push output: $(oneline "$T/push.out")" || return
    PUSH_DIGEST=${BASH_REMATCH[1]}
    PUSH_SIZE=${BASH_REMATCH[2]}
    echo "docker pushed $IMG as $PUSH_DIGEST (image ID $IMAGE_ID)" >&2
}

# What docker pushed is in the registry byte for byte: the manifest, the config (whose
# digest is the image ID) and each layer (whose gunzipped digest is the config's diff_id).
step_docker_registry_content() {
    local code ct i n dg diffid m=$T/app.manifest
    code=$(http GET "http://$REG/v2/team/app/manifests/1" "$m" "$T/m.hdr" "${ACCEPT_ALL[@]}")
    [[ $code == 200 ]] || why "GET manifests/1 -> $code $(oneline "$m")" || return
    [[ sha256:$(sha "$m") == "$PUSH_DIGEST" ]] || why "manifest bytes hash to sha256:$(sha "$m"), docker pushed $PUSH_DIGEST" || return
    [[ $(fsize "$m") == "$PUSH_SIZE" ]] || why "manifest size $(fsize "$m") != pushed size $PUSH_SIZE" || return
    [[ $(header Docker-Content-Digest "$T/m.hdr") == "$PUSH_DIGEST" ]] ||
        why "Docker-Content-Digest '$(header Docker-Content-Digest "$T/m.hdr")' != $PUSH_DIGEST" || return
    ct=$(header Content-Type "$T/m.hdr")
    [[ $ct == "$(jq -r .mediaType "$m")" && $ct == "$MT_DOCKER_MANIFEST" ]] ||
        why "Content-Type '$ct', manifest mediaType '$(jq -r .mediaType "$m")'" || return
    # by digest, and HEAD
    code=$(http GET "http://$REG/v2/team/app/manifests/$PUSH_DIGEST" "$T/m2" "$T/m2.hdr" "${ACCEPT_ALL[@]}")
    [[ $code == 200 ]] && cmp -s "$m" "$T/m2" || why "GET manifests/$PUSH_DIGEST -> $code, bytes differ from by-tag" || return
    code=$(http HEAD "http://$REG/v2/team/app/manifests/1" /dev/null "$T/m3.hdr" "${ACCEPT_ALL[@]}")
    [[ $code == 200 && $(header Content-Length "$T/m3.hdr") == "$PUSH_SIZE" &&
        $(header Docker-Content-Digest "$T/m3.hdr") == "$PUSH_DIGEST" ]] ||
        why "HEAD manifests/1 -> $code, Content-Length '$(header Content-Length "$T/m3.hdr")', digest '$(header Docker-Content-Digest "$T/m3.hdr")'" || return
    # config = image ID
    dg=$(jq -r .config.digest "$m")
    [[ $dg == "$IMAGE_ID" ]] || why "manifest config $dg != local image ID $IMAGE_ID" || return
    fetch_blob team/app "$dg" "$T/app.config" || return
    [[ $(fsize "$T/app.config") == "$(jq -r .config.size "$m")" ]] || why "config size differs from descriptor" || return
    # layers
    n=$(jq '.layers | length' "$m")
    [[ $n == 2 && $(jq '.rootfs.diff_ids | length' "$T/app.config") == 2 ]] || why "expected 2 layers, manifest has $n" || return
    for ((i = 0; i < n; i++)); do
        dg=$(jq -r ".layers[$i].digest" "$m")
        fetch_blob team/app "$dg" "$T/layer$i" || return
        [[ $(fsize "$T/layer$i") == "$(jq -r ".layers[$i].size" "$m")" ]] || why "layer $dg size differs from descriptor" || return
        [[ $(header Content-Length "$T/blob.hdr") == "$(fsize "$T/layer$i")" ]] || why "layer $dg Content-Length header wrong" || return
        diffid=sha256:$(gzip -dc "$T/layer$i" | sha256sum | cut -d' ' -f1)
        [[ $diffid == "$(jq -r ".rootfs.diff_ids[$i]" "$T/app.config")" ]] || why "layer $i uncompressed $diffid != diff_id" || return
    done
    # the layers hold exactly our files
    gzip -dc "$T/layer0" | tar -xOf - bin/busybox | cmp -s - "$BUSYBOX" || why "layer 0 busybox differs" || return
    [[ $(gzip -dc "$T/layer1" | tar -xOf - rand.txt) == "$RAND" ]] || why "layer 1 rand.txt differs" || return
}

step_docker_tags() {
    local code
    code=$(http GET "http://$REG/v2/team/app/tags/list" "$T/tags.json" "$T/tags.hdr")
    [[ $code == 200 ]] || why "GET tags/list -> $code $(oneline "$T/tags.json")" || return
    [[ $(jq -c . "$T/tags.json") == '{"name":"team/app","tags":["1"]}' ]] || why "tags/list: $(oneline "$T/tags.json")" || return
    code=$(http GET "http://$REG/v2/_catalog" "$T/cat.json" "$T/cat.hdr")
    [[ $code == 200 ]] || why "GET _catalog -> $code" || return
    jq -e '.repositories | index("team/app")' "$T/cat.json" >/dev/null || why "_catalog lacks team/app: $(oneline "$T/cat.json")" || return
}

# Pushing the same image to another repository: docker mounts the blobs from team/app.
step_docker_push_mount() {
    docker tag "$IMG" "$REG/other/app:2" || why "docker tag failed" || return
    timeout 300 docker push "$REG/other/app:2" >"$T/push2.out" 2>&1 ||
        why "docker push other/app:2: $(tail -n 3 "$T/push2.out" | tr '\n' ' ')" || return
    grep -q "digest: $PUSH_DIGEST size: $PUSH_SIZE" "$T/push2.out" || why "other/app:2 pushed with another digest: $(oneline "$T/push2.out")" || return
    [[ $(grep -c 'Mounted from team/app' "$T/push2.out") == 2 ]] || why "layers not mounted from team/app: $(oneline "$T/push2.out")" || return
}

remove_local_images() {
    docker rmi -f "$IMG" "$REG/other/app:2" >/dev/null 2>&1 || true
    docker rmi -f "$IMAGE_ID" >/dev/null 2>&1 || true
    docker image prune -af >/dev/null 2>&1 || true
    ! docker image inspect "$IMAGE_ID" >/dev/null 2>&1 || why "image $IMAGE_ID still present after rmi/prune" || return
    [[ -z $(docker images -qa) ]] || why "images left after prune: $(docker images -qa | xargs)" || return
}

step_docker_rmi() { remove_local_images; }

check_pulled() { # check_pulled REF: ID and RepoDigests of the local image REF
    local id rd repo=$1
    if [[ $repo == *@* ]]; then repo=${repo%@*}; else repo=${repo%:*}; fi
    id=$(docker image inspect -f '{{.Id}}' "$1") || why "pulled image $1 not found" || return
    [[ $id == "$IMAGE_ID" ]] || why "pulled image ID $id != pushed $IMAGE_ID" || return
    rd=$(docker image inspect -f '{{json .RepoDigests}}' "$1")
    jq -e --arg d "$repo@$PUSH_DIGEST" 'index($d)' <<<"$rd" >/dev/null ||
        why "RepoDigests $rd lack @$PUSH_DIGEST" || return
}

step_docker_pull() {
    timeout 300 docker pull "$IMG" >"$T/pull.out" 2>&1 || why "docker pull: $(tail -n 3 "$T/pull.out" | tr '\n' ' ')" || return
    grep -q "^Digest: $PUSH_DIGEST\$" "$T/pull.out" || why "docker pull printed another digest: $(oneline "$T/pull.out")" || return
    check_pulled "$IMG"
}

step_docker_run() {
    local out
    out=$(timeout 120 docker run --rm --network none "$IMG" 2>"$T/run.err") ||
        why "docker run: $(oneline "$T/run.err")" || return
    [[ $out == "$RAND" ]] || why "container printed '$out', expected '$RAND'" || return
}

# Pull by digest from the repository the layers were mounted into.
step_docker_pull_digest() {
    remove_local_images || return
    local ref=$REG/other/app@$PUSH_DIGEST
    timeout 300 docker pull "$ref" >"$T/pull2.out" 2>&1 || why "docker pull $ref: $(tail -n 3 "$T/pull2.out" | tr '\n' ' ')" || return
    check_pulled "$ref"
}

# ---------------------------------------------------------------- skopeo steps
SKOPEO=(skopeo --insecure-policy)

# An OCI image layout made by hand: one gzip layer, a config, a manifest.
step_oci_layout() {
    local L=$T/oci r=$T/rootfs
    mkdir -p "$L/blobs/sha256" "$r/etc"
    RAND2=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
    printf 'hello from berth client test %s\n' "$RAND2" >"$r/hello.txt"
    head -c 300000 /dev/urandom >"$r/etc/random.bin" # incompressible, so the layer spans several reads
    tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 -C "$r" -cf "$T/layer.tar" . || why "tar failed" || return
    gzip -n -c "$T/layer.tar" >"$T/layer.tar.gz"
    DIFF_ID=sha256:$(sha "$T/layer.tar")
    LAYER_DIGEST=sha256:$(sha "$T/layer.tar.gz")
    cp "$T/layer.tar.gz" "$L/blobs/sha256/${LAYER_DIGEST#sha256:}"
    jq -cn --arg d "$DIFF_ID" '{architecture:"amd64",os:"linux",config:{Cmd:["/hello.txt"]},
        rootfs:{type:"layers",diff_ids:[$d]},history:[{created_by:"berth client test"}]}' | tr -d '\n' >"$T/oci.config"
    CONFIG_DIGEST=sha256:$(sha "$T/oci.config")
    cp "$T/oci.config" "$L/blobs/sha256/${CONFIG_DIGEST#sha256:}"
    jq -cn --arg cd "$CONFIG_DIGEST" --argjson cs "$(fsize "$T/oci.config")" \
        --arg ld "$LAYER_DIGEST" --argjson ls "$(fsize "$T/layer.tar.gz")" --arg r "$RAND2" \
        '{schemaVersion:2,mediaType:"application/vnd.oci.image.manifest.v1+json",
          config:{mediaType:"application/vnd.oci.image.config.v1+json",digest:$cd,size:$cs},
          layers:[{mediaType:"application/vnd.oci.image.layer.v1.tar+gzip",digest:$ld,size:$ls}],
          annotations:{"org.example.berth.test":$r}}' | tr -d '\n' >"$T/oci.manifest"
    OCI_DIGEST=sha256:$(sha "$T/oci.manifest")
    cp "$T/oci.manifest" "$L/blobs/sha256/${OCI_DIGEST#sha256:}"
    jq -cn --arg d "$OCI_DIGEST" --argjson s "$(fsize "$T/oci.manifest")" \
        '{schemaVersion:2,manifests:[{mediaType:"application/vnd.oci.image.manifest.v1+json",digest:$d,size:$s,
          annotations:{"org.opencontainers.image.ref.name":"v1"}}]}' >"$L/index.json"
    echo '{"imageLayoutVersion":"1.0.0"}' >"$L/oci-layout"
    # skopeo itself must read it back
    "${SKOPEO[@]}" inspect --raw "oci:$L:v1" >"$T/oci.check" 2>"$T/skopeo.err" || why "skopeo cannot read the layout: $(oneline "$T/skopeo.err")" || return
    cmp -s "$T/oci.check" "$T/oci.manifest" || why "skopeo reads another manifest from the layout" || return
}

step_skopeo_push() {
    local t
    for t in 1 2; do
        timeout 300 "${SKOPEO[@]}" copy --dest-tls-verify=false --digestfile "$T/digest.$t" \
            "oci:$T/oci:v1" "docker://$REG/team/skopeo:$t" >"$T/copy.out" 2>&1 ||
            why "skopeo copy to team/skopeo:$t: $(tail -n 3 "$T/copy.out" | tr '\n' ' ')" || return
        [[ $(cat "$T/digest.$t") == "$OCI_DIGEST" ]] || why "team/skopeo:$t pushed as $(cat "$T/digest.$t"), local manifest is $OCI_DIGEST" || return
    done
    # what the registry serves, byte for byte
    local code
    code=$(http GET "http://$REG/v2/team/skopeo/manifests/1" "$T/s.manifest" "$T/s.hdr" "${ACCEPT_ALL[@]}")
    [[ $code == 200 ]] || why "GET team/skopeo/manifests/1 -> $code $(oneline "$T/s.manifest")" || return
    cmp -s "$T/s.manifest" "$T/oci.manifest" || why "served manifest bytes differ from the pushed ones" || return
    [[ $(header Content-Type "$T/s.hdr") == "$MT_OCI_MANIFEST" ]] || why "Content-Type '$(header Content-Type "$T/s.hdr")'" || return
    [[ $(header Docker-Content-Digest "$T/s.hdr") == "$OCI_DIGEST" ]] || why "Docker-Content-Digest '$(header Docker-Content-Digest "$T/s.hdr")'" || return
    fetch_blob team/skopeo "$CONFIG_DIGEST" "$T/s.config" || return
    cmp -s "$T/s.config" "$T/oci.config" || why "config bytes differ" || return
    fetch_blob team/skopeo "$LAYER_DIGEST" "$T/s.layer" || return
    cmp -s "$T/s.layer" "$T/layer.tar.gz" || why "layer bytes differ" || return
}

step_skopeo_inspect() {
    local u=docker://$REG/team/skopeo:1
    "${SKOPEO[@]}" inspect --tls-verify=false "$u" >"$T/inspect.json" 2>"$T/skopeo.err" || why "skopeo inspect: $(oneline "$T/skopeo.err")" || return
    jq -e --arg d "$OCI_DIGEST" --arg l "$LAYER_DIGEST" --arg r "$RAND2" \
        '.Digest == $d and .Layers == [$l] and .Os == "linux" and .Architecture == "amd64"' "$T/inspect.json" >/dev/null ||
        why "skopeo inspect: $(oneline "$T/inspect.json")" || return
    "${SKOPEO[@]}" inspect --tls-verify=false --raw "$u" >"$T/inspect.raw" 2>"$T/skopeo.err" || why "skopeo inspect --raw: $(oneline "$T/skopeo.err")" || return
    cmp -s "$T/inspect.raw" "$T/oci.manifest" || why "skopeo inspect --raw bytes differ from the pushed manifest" || return
    "${SKOPEO[@]}" inspect --tls-verify=false --config --raw "$u" >"$T/inspect.config" 2>"$T/skopeo.err" || why "skopeo inspect --config: $(oneline "$T/skopeo.err")" || return
    cmp -s "$T/inspect.config" "$T/oci.config" || why "skopeo inspect --config --raw bytes differ from the pushed config" || return
}

step_skopeo_inspect_docker_image() {
    "${SKOPEO[@]}" inspect --tls-verify=false "docker://$REG/team/app:1" >"$T/inspect2.json" 2>"$T/skopeo.err" ||
        why "skopeo inspect team/app:1: $(oneline "$T/skopeo.err")" || return
    jq -e --arg d "$PUSH_DIGEST" '.Digest == $d' "$T/inspect2.json" >/dev/null || why "skopeo sees digest $(jq -r .Digest "$T/inspect2.json"), docker pushed $PUSH_DIGEST" || return
}

step_skopeo_list_tags() {
    "${SKOPEO[@]}" list-tags --tls-verify=false "docker://$REG/team/skopeo" >"$T/lt.json" 2>"$T/skopeo.err" ||
        why "skopeo list-tags: $(oneline "$T/skopeo.err")" || return
    jq -e --arg r "$REG/team/skopeo" '.Repository == $r and (.Tags | sort) == ["1","2"]' "$T/lt.json" >/dev/null ||
        why "list-tags: $(oneline "$T/lt.json")" || return
    # Berth promises lexical order (distribution lists in storage order)
    if [[ $REGISTRY == berth ]]; then
        jq -e '.Tags == ["1","2"]' "$T/lt.json" >/dev/null || why "tags not in lexical order: $(oneline "$T/lt.json")" || return
    fi
}

step_skopeo_copy_repos() {
    timeout 300 "${SKOPEO[@]}" copy --src-tls-verify=false --dest-tls-verify=false --digestfile "$T/digest.copy" \
        "docker://$REG/team/skopeo:1" "docker://$REG/other/copy:1" >"$T/copy2.out" 2>&1 ||
        why "skopeo copy team/skopeo:1 -> other/copy:1: $(tail -n 3 "$T/copy2.out" | tr '\n' ' ')" || return
    [[ $(cat "$T/digest.copy") == "$OCI_DIGEST" ]] || why "copied as $(cat "$T/digest.copy"), expected $OCI_DIGEST" || return
    "${SKOPEO[@]}" inspect --tls-verify=false --raw "docker://$REG/other/copy:1" >"$T/copy.raw" 2>"$T/skopeo.err" ||
        why "skopeo inspect other/copy:1: $(oneline "$T/skopeo.err")" || return
    cmp -s "$T/copy.raw" "$T/oci.manifest" || why "other/copy:1 manifest bytes differ" || return
    fetch_blob other/copy "$LAYER_DIGEST" "$T/c.layer" || return
    fetch_blob other/copy "$CONFIG_DIGEST" "$T/c.config" || return
}

step_skopeo_copy_dir() {
    local D=$T/dirout f b seen=0
    timeout 300 "${SKOPEO[@]}" copy --src-tls-verify=false "docker://$REG/other/copy:1" "dir:$D" >"$T/copy3.out" 2>&1 ||
        why "skopeo copy other/copy:1 -> dir: $(tail -n 3 "$T/copy3.out" | tr '\n' ' ')" || return
    cmp -s "$D/manifest.json" "$T/oci.manifest" || why "dir: manifest.json differs from the pushed manifest" || return
    for f in "$D"/*; do
        b=$(basename "$f")
        case $b in manifest.json | version) continue ;; esac
        [[ $(sha "$f") == "$b" ]] || why "dir: file $b hashes to $(sha "$f")" || return
        [[ sha256:$b == "$CONFIG_DIGEST" || sha256:$b == "$LAYER_DIGEST" ]] || why "dir: unexpected blob $b" || return
        seen=$((seen + 1))
    done
    [[ $seen == 2 ]] || why "dir: expected 2 blobs, found $seen: $(cd "$D" && echo *)" || return
}

step_skopeo_delete() {
    local code
    "${SKOPEO[@]}" delete --tls-verify=false "docker://$REG/team/skopeo:1" >"$T/del.out" 2>&1 ||
        why "skopeo delete: $(oneline "$T/del.out")" || return
    # skopeo deletes the manifest by digest: it and every tag on it are gone
    code=$(http HEAD "http://$REG/v2/team/skopeo/manifests/$OCI_DIGEST" /dev/null "$T/d.hdr" "${ACCEPT_ALL[@]}")
    [[ $code == 404 ]] || why "HEAD team/skopeo/manifests/$OCI_DIGEST after delete -> $code" || return
    for t in 1 2; do
        code=$(http GET "http://$REG/v2/team/skopeo/manifests/$t" "$T/d.body" "$T/d.hdr" "${ACCEPT_ALL[@]}")
        [[ $code == 404 ]] || why "GET team/skopeo/manifests/$t after delete -> $code" || return
        jq -e '.errors[0].code == "MANIFEST_UNKNOWN"' "$T/d.body" >/dev/null || why "GET deleted tag $t: $(oneline "$T/d.body")" || return
        ! "${SKOPEO[@]}" inspect --tls-verify=false --raw "docker://$REG/team/skopeo:$t" >/dev/null 2>&1 ||
            why "skopeo inspect team/skopeo:$t still works after delete" || return
    done
    if "${SKOPEO[@]}" list-tags --tls-verify=false "docker://$REG/team/skopeo" >"$T/lt2.json" 2>/dev/null; then
        jq -e '(.Tags // []) | length == 0' "$T/lt2.json" >/dev/null || why "tags left after delete: $(oneline "$T/lt2.json")" || return
    fi
    # the other repository is untouched
    "${SKOPEO[@]}" inspect --tls-verify=false --raw "docker://$REG/other/copy:1" >"$T/copy.raw2" 2>"$T/skopeo.err" ||
        why "other/copy:1 gone after deleting team/skopeo:1: $(oneline "$T/skopeo.err")" || return
    cmp -s "$T/copy.raw2" "$T/oci.manifest" || why "other/copy:1 changed" || return
}


# ---------------------------------------------------------------- token mode (berth only)
# A second berth with [auth] mode = "token"; its first administrator comes from
# BERTH_ADMIN_PASSWORD. docker and skopeo log in, push and pull; anonymous
# callers and wrong passwords are refused; a pull-only scoped token pulls but
# cannot push.
TOKEN_ADMIN_PW=$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')
TREG=""

step_token_registry() {
    local i line="" code
    mkdir -p "$T/berth-token"
    printf '[auth]\nmode = "token"\n' >"$T/berth-token.toml"
    BERTH_ADMIN_PASSWORD=$TOKEN_ADMIN_PW "$BERTH_BIN" serve --config "$T/berth-token.toml" \
        --addr 127.0.0.1:0 --data-dir "$T/berth-token" >"$T/token-registry.out" 2>"$T/token-registry.log" &
    TREG_PID=$!
    for ((i = 0; i < 300; i++)); do
        if [[ $(wc -l <"$T/token-registry.out") -ge 1 ]]; then
            line=$(head -n1 "$T/token-registry.out")
            break
        fi
        kill -0 "$TREG_PID" 2>/dev/null || why "berth (token) exited: $(tail -n 5 "$T/token-registry.log" | tr '\n' ' ')" || return
        sleep 0.1
    done
    [[ $line =~ ^berth\ listening\ on\ http://(127\.0\.0\.1:[0-9]+)$ ]] || why "unexpected first stdout line: '$line'" || return
    TREG=${BASH_REMATCH[1]}
    code=$(http GET "http://$TREG/v2/" "$T/t.body" "$T/t.hdr")
    [[ $code == 401 ]] || why "GET /v2/ without credentials -> $code, expected 401" || return
    [[ $(header WWW-Authenticate "$T/t.hdr") == "Bearer realm=\"http://$TREG/auth/token\",service=\"berth\"" ]] ||
        why "challenge: '$(header WWW-Authenticate "$T/t.hdr")'" || return
}

step_token_docker() {
    local img=$TREG/team/app:1 out
    # the image built earlier, from the auth-less registry
    timeout 300 docker pull "$IMG" >"$T/t-pull0.out" 2>&1 || why "docker pull $IMG: $(oneline "$T/t-pull0.out")" || return
    docker tag "$IMG" "$img" || why "docker tag failed" || return
    if timeout 120 docker push "$img" >"$T/t-push0.out" 2>&1; then why "anonymous docker push succeeded"; return; fi
    if echo "wrong-$TOKEN_ADMIN_PW" | timeout 60 docker login -u admin --password-stdin "$TREG" >"$T/t-login0.out" 2>&1; then
        why "docker login with a wrong password succeeded"
        return
    fi
    echo "$TOKEN_ADMIN_PW" | timeout 60 docker login -u admin --password-stdin "$TREG" >"$T/t-login.out" 2>&1 ||
        why "docker login: $(oneline "$T/t-login.out")" || return
    grep -q "Login Succeeded" "$T/t-login.out" || why "docker login said: $(oneline "$T/t-login.out")" || return
    timeout 300 docker push "$img" >"$T/t-push.out" 2>&1 || why "docker push after login: $(tail -n 3 "$T/t-push.out" | tr '\n' ' ')" || return
    grep -q "digest: $PUSH_DIGEST size: $PUSH_SIZE" "$T/t-push.out" || why "pushed another digest: $(oneline "$T/t-push.out")" || return
    docker image prune -af >/dev/null 2>&1; docker rmi -f "$img" "$IMG" "$IMAGE_ID" >/dev/null 2>&1
    timeout 300 docker pull "$img" >"$T/t-pull.out" 2>&1 || why "docker pull after login: $(oneline "$T/t-pull.out")" || return
    grep -q "^Digest: $PUSH_DIGEST\$" "$T/t-pull.out" || why "docker pull printed another digest: $(oneline "$T/t-pull.out")" || return
    out=$(timeout 120 docker run --rm --network none "$img" 2>"$T/t-run.err") || why "docker run: $(oneline "$T/t-run.err")" || return
    [[ $out == "$RAND" ]] || why "container printed '$out', expected '$RAND'" || return
    docker logout "$TREG" >/dev/null 2>&1
    docker rmi -f "$img" "$IMAGE_ID" >/dev/null 2>&1
    if timeout 120 docker pull "$img" >"$T/t-pull1.out" 2>&1; then why "anonymous pull of a private namespace succeeded"; return; fi
}

step_token_docker_scoped() {
    local img=$TREG/team/app:1 secret
    secret=$(curl -sS -u "admin:$TOKEN_ADMIN_PW" -H 'content-type: application/json' \
        -d '{"name":"ci","scopes":[{"repository":"team/*","actions":["pull"]}]}' "http://$TREG/api/v1/tokens" | jq -r .secret)
    [[ $secret == berth_* ]] || why "token creation answered '$secret'" || return
    echo "$secret" | timeout 60 docker login -u ci --password-stdin "$TREG" >"$T/t-login2.out" 2>&1 ||
        why "docker login with a scoped token: $(oneline "$T/t-login2.out")" || return
    timeout 300 docker pull "$img" >"$T/t-pull2.out" 2>&1 || why "pull with a pull-only token: $(oneline "$T/t-pull2.out")" || return
    docker tag "$img" "$TREG/team/app:2" || why "docker tag failed" || return
    if timeout 120 docker push "$TREG/team/app:2" >"$T/t-push2.out" 2>&1; then why "push with a pull-only token succeeded"; return; fi
    docker logout "$TREG" >/dev/null 2>&1
    docker rmi -f "$img" "$TREG/team/app:2" "$IMAGE_ID" >/dev/null 2>&1
    return 0
}

step_token_skopeo() {
    local dest=docker://$TREG/team/skopeo:1
    if timeout 120 "${SKOPEO[@]}" copy --dest-tls-verify=false "oci:$T/oci:v1" "$dest" >"$T/t-copy0.out" 2>&1; then
        why "anonymous skopeo copy succeeded"
        return
    fi
    timeout 300 "${SKOPEO[@]}" copy --dest-tls-verify=false --dest-creds "admin:$TOKEN_ADMIN_PW" --digestfile "$T/t-digest" \
        "oci:$T/oci:v1" "$dest" >"$T/t-copy.out" 2>&1 || why "skopeo copy --dest-creds: $(tail -n 3 "$T/t-copy.out" | tr '\n' ' ')" || return
    [[ $(cat "$T/t-digest") == "$OCI_DIGEST" ]] || why "pushed as $(cat "$T/t-digest"), expected $OCI_DIGEST" || return
    if "${SKOPEO[@]}" inspect --tls-verify=false --raw "$dest" >/dev/null 2>&1; then why "anonymous skopeo inspect succeeded"; return; fi
    "${SKOPEO[@]}" inspect --tls-verify=false --creds "admin:$TOKEN_ADMIN_PW" --raw "$dest" >"$T/t-raw" 2>"$T/skopeo.err" ||
        why "skopeo inspect --creds: $(oneline "$T/skopeo.err")" || return
    cmp -s "$T/t-raw" "$T/oci.manifest" || why "served manifest differs from the pushed one" || return
    # nothing secret in the server's logs
    ! grep -qF "$TOKEN_ADMIN_PW" "$T/token-registry.log" || why "the admin password appears in the server log" || return
}

# HTTPS with a private CA (openssl), token mode: skopeo verifies the server
# against the CA and logs in; without the CA it refuses the certificate.
step_token_tls() {
    local d=$T/tls i line="" reg code
    command -v openssl >/dev/null || why "missing: openssl" || return
    mkdir -p "$d/certs"
    (
        cd "$d" &&
            openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key -out ca.crt \
                -days 2 -subj /CN=berth-test-ca &&
            openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout tls.key -out tls.csr -subj /CN=localhost &&
            printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n' >ext &&
            openssl x509 -req -in tls.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out tls.crt -days 2 -extfile ext
    ) >"$T/openssl.log" 2>&1 || why "openssl: $(tail -n 3 "$T/openssl.log" | tr '\n' ' ')" || return
    cp "$d/ca.crt" "$d/certs/ca.crt"
    BERTH_ADMIN_PASSWORD=$TOKEN_ADMIN_PW "$BERTH_BIN" serve --config "$T/berth-token.toml" --addr 127.0.0.1:0 \
        --data-dir "$d/data" --tls-cert "$d/tls.crt" --tls-key "$d/tls.key" >"$T/tls-registry.out" 2>"$T/tls-registry.log" &
    TLSREG_PID=$!
    for ((i = 0; i < 300; i++)); do
        if [[ $(wc -l <"$T/tls-registry.out") -ge 1 ]]; then
            line=$(head -n1 "$T/tls-registry.out")
            break
        fi
        kill -0 "$TLSREG_PID" 2>/dev/null || why "berth (TLS) exited: $(tail -n 5 "$T/tls-registry.log" | tr '\n' ' ')" || return
        sleep 0.1
    done
    [[ $line =~ ^berth\ listening\ on\ https://127\.0\.0\.1:([0-9]+)$ ]] || why "unexpected first stdout line: '$line'" || return
    reg=localhost:${BASH_REMATCH[1]}
    code=$(http GET "https://$reg/v2/" "$T/tls.body" "$T/tls.hdr" --cacert "$d/ca.crt")
    [[ $code == 401 ]] || why "GET https://$reg/v2/ -> $code, expected 401" || return
    if timeout 120 "${SKOPEO[@]}" copy --dest-creds "admin:$TOKEN_ADMIN_PW" "oci:$T/oci:v1" "docker://$reg/team/tls:1" \
        >"$T/tls-copy0.out" 2>&1; then
        why "skopeo trusted a certificate from an unknown CA"
        return
    fi
    timeout 300 "${SKOPEO[@]}" copy --dest-cert-dir "$d/certs" --dest-creds "admin:$TOKEN_ADMIN_PW" \
        "oci:$T/oci:v1" "docker://$reg/team/tls:1" >"$T/tls-copy.out" 2>&1 ||
        why "skopeo copy over HTTPS: $(tail -n 3 "$T/tls-copy.out" | tr '\n' ' ')" || return
    "${SKOPEO[@]}" inspect --cert-dir "$d/certs" --creds "admin:$TOKEN_ADMIN_PW" --raw "docker://$reg/team/tls:1" \
        >"$T/tls-raw" 2>"$T/skopeo.err" || why "skopeo inspect over HTTPS: $(oneline "$T/skopeo.err")" || return
    cmp -s "$T/tls-raw" "$T/oci.manifest" || why "manifest served over HTTPS differs from the pushed one" || return
}

# ---------------------------------------------------------------- main
if [[ $REGISTRY == berth ]]; then echo "registry: berth ($BERTH_BIN)" >&2; else echo "registry: $REGISTRY" >&2; fi
install_missing
run tools_base "" step_tools_base
run tools_docker "" step_tools_docker
run tools_skopeo "" step_tools_skopeo
run registry_start "tools_base" step_registry
run dockerd_start "tools_docker" step_dockerd

run docker_build "registry_start dockerd_start" step_docker_build
run docker_push "docker_build" step_docker_push
run docker_registry_content "docker_push" step_docker_registry_content
run docker_tags_catalog "docker_push" step_docker_tags
run docker_push_mount "docker_push" step_docker_push_mount
run docker_rmi "docker_build" step_docker_rmi
run docker_pull "docker_push docker_rmi" step_docker_pull
run docker_run "docker_pull" step_docker_run
run docker_pull_by_digest "docker_push_mount docker_pull" step_docker_pull_digest

run oci_layout "tools_base tools_skopeo" step_oci_layout
run skopeo_push "registry_start oci_layout" step_skopeo_push
run skopeo_inspect "skopeo_push" step_skopeo_inspect
run skopeo_inspect_docker_image "tools_skopeo docker_push" step_skopeo_inspect_docker_image
run skopeo_list_tags "skopeo_push" step_skopeo_list_tags
run skopeo_copy_repos "skopeo_push" step_skopeo_copy_repos
run skopeo_copy_dir "skopeo_copy_repos" step_skopeo_copy_dir
run skopeo_delete "skopeo_copy_repos" step_skopeo_delete

if [[ $REGISTRY == berth ]]; then
    run token_registry_start "tools_base" step_token_registry
    run token_docker_login_push_pull "token_registry_start docker_push" step_token_docker
    run token_docker_scoped_token "token_docker_login_push_pull" step_token_docker_scoped
    run token_skopeo_creds "token_registry_start oci_layout" step_token_skopeo
    run token_skopeo_https "token_registry_start oci_layout" step_token_tls
fi

if ((FAILED)); then
    {
        echo "---- registry log (last 30 lines) ----"
        tail -n 30 "$T/registry.log" 2>/dev/null
        if [[ -f $T/dockerd.log ]]; then
            echo "---- dockerd errors (last 20) ----"
            grep -E 'level=(error|warning)' "$T/dockerd.log" | grep -v -E 'blkio|cgroup' | tail -n 20
        fi
    } >&2 || true
fi
echo "time: $(($(date +%s) - STARTED)) s; skipped: $SKIPPED" >&2
echo "$PASSED passed, $FAILED failed"
((FAILED == 0))
