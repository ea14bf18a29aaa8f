# shellcheck shell=bash
# Shared by the real-client suite (sourced by run.sh): cleanup, reporting, HTTP helpers,
# tool installation, the registry under test and the dockerd/containerd pair.

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
    kill_pid "$RX_PID" 5
    kill_pid "$REG_PID" 15
    kill_pid "$TREG_PID" 15
    kill_pid "$TLSREG_PID" 15
    stop_replicas
    # Unmount whatever dockerd left mounted under our temp dir (deepest first).
    for m in $(awk -v t="$T/" 'index($2, t) == 1 { print $2 }' /proc/mounts | sort -r); do
        umount -l "$m" 2>/dev/null
    done
    if [[ -n ${CLIENT_LOGS_DIR:-} ]]; then
        mkdir -p "$CLIENT_LOGS_DIR" && cp -f "$T"/*.log "$CLIENT_LOGS_DIR"/ 2>/dev/null
    fi
    if [[ ${CLIENTS_KEEP:-} == 1 ]]; then echo "kept $T" >&2; else rm -rf "$T"; fi
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
TIMES=() # "seconds step" for each step run

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
    local rc=0 t0=$EPOCHREALTIME
    "$fn" || rc=$?
    TIMES+=("$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }') $name")
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
rand_hex() { head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n'; } # 48 random hex digits
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

# check_image REPO REF DIGEST CONFIG_DIGEST MEDIA_TYPE RAND: what a client pushed as
# REPO:REF is served byte for byte: the manifest hashes to DIGEST (body and header) with
# MEDIA_TYPE, its config is CONFIG_DIGEST, every gzip layer hashes to its descriptor and
# gunzips to its diff_id, and the layers unpack to /bin/busybox and /rand.txt == RAND.
check_image() {
    local repo=$1 ref=$2 want=$3 cfg=$4 mt=$5 rand=$6 mf=$T/ci.manifest x=$T/ci.rootfs code n i dg diffid
    code=$(http GET "http://$REG/v2/$repo/manifests/$ref" "$mf" "$T/ci.hdr" "${ACCEPT_ALL[@]}")
    [[ $code == 200 ]] || why "GET $repo/manifests/$ref -> $code $(oneline "$mf")" || return
    [[ sha256:$(sha "$mf") == "$want" ]] || why "$repo:$ref manifest hashes to sha256:$(sha "$mf"), the client pushed $want" || return
    [[ $(header Docker-Content-Digest "$T/ci.hdr") == "$want" ]] ||
        why "$repo:$ref Docker-Content-Digest '$(header Docker-Content-Digest "$T/ci.hdr")' != $want" || return
    [[ $(header Content-Type "$T/ci.hdr") == "$mt" && $(jq -r .mediaType "$mf") == "$mt" ]] ||
        why "$repo:$ref Content-Type '$(header Content-Type "$T/ci.hdr")', mediaType '$(jq -r .mediaType "$mf")', expected $mt" || return
    [[ $(jq -r .config.digest "$mf") == "$cfg" ]] || why "$repo:$ref config $(jq -r .config.digest "$mf") != image ID $cfg" || return
    fetch_blob "$repo" "$cfg" "$T/ci.config" || return
    n=$(jq '.layers | length' "$mf")
    [[ $n -ge 1 && $n == "$(jq '.rootfs.diff_ids | length' "$T/ci.config")" ]] || why "$repo:$ref has $n layers for $(jq '.rootfs.diff_ids | length' "$T/ci.config") diff_ids" || return
    rm -rf "$x"
    mkdir -p "$x"
    for ((i = 0; i < n; i++)); do
        dg=$(jq -r ".layers[$i].digest" "$mf")
        fetch_blob "$repo" "$dg" "$T/ci.layer" || return
        [[ $(fsize "$T/ci.layer") == "$(jq -r ".layers[$i].size" "$mf")" ]] || why "layer $dg size differs from its descriptor" || return
        diffid=sha256:$(gzip -dc "$T/ci.layer" | sha256sum | cut -d' ' -f1)
        [[ $diffid == "$(jq -r ".rootfs.diff_ids[$i]" "$T/ci.config")" ]] || why "layer $i gunzips to $diffid, not its diff_id" || return
        tar -xzf "$T/ci.layer" -C "$x" || why "layer $dg does not unpack" || return
    done
    cmp -s "$x/bin/busybox" "$BUSYBOX" || why "$repo:$ref /bin/busybox differs from $BUSYBOX" || return
    [[ $(cat "$x/rand.txt") == "$rand" ]] || why "$repo:$ref /rand.txt is '$(cat "$x/rand.txt")', expected '$rand'" || return
}

# scratch_context DIR RAND: a build context with busybox-static and rand.txt, whose
# Containerfile (and Dockerfile) prints rand.txt when run.
scratch_context() {
    mkdir -p "$1"
    cp "$BUSYBOX" "$1/busybox"
    printf '%s\n' "$2" >"$1/rand.txt"
    cat >"$1/Containerfile" <<'EOF2'
FROM scratch
COPY busybox /bin/busybox
COPY rand.txt /rand.txt
ENTRYPOINT ["/bin/busybox"]
CMD ["cat", "/rand.txt"]
EOF2
    cp "$1/Containerfile" "$1/Dockerfile"
}

# ---------------------------------------------------------------- tools
# command -> Debian package
declare -A PKG=([curl]=curl [jq]=jq [sha256sum]=coreutils [timeout]=coreutils [gzip]=gzip [tar]=tar
    [dockerd]=docker.io [docker]=docker.io [containerd]=containerd [runc]=runc [skopeo]=skopeo
    [ctr]=containerd [podman]=podman [buildah]=buildah [docker-registry]=docker-registry)
BASE_CMDS=(curl jq sha256sum timeout gzip tar)
DOCKER_CMDS=(dockerd docker containerd runc)
SKOPEO_CMDS=(skopeo)
CTR_CMDS=(ctr containerd runc)
PODMAN_CMDS=(podman runc)
BUILDAH_CMDS=(buildah)
BUSYBOX=/bin/busybox
# Python clients (PyPI): oras-py and helm's Go library (helm-sdkpy), in a venv kept under target/
VENV=${CLIENTS_VENV:-$ROOT/target/clients-venv}
REQUIREMENTS=$HERE/requirements.txt
PY=$VENV/bin/python

busybox_static_ok() { dpkg-query -W -f='${Status}' busybox-static 2>/dev/null | grep -q 'install ok installed' && [[ -x $BUSYBOX ]]; }

missing_cmds() { local c; for c in "$@"; do command -v "$c" >/dev/null 2>&1 || echo "$c"; done; }

install_missing() {
    local cmds=("${BASE_CMDS[@]}" "${DOCKER_CMDS[@]}" "${SKOPEO_CMDS[@]}" "${CTR_CMDS[@]}" "${PODMAN_CMDS[@]}" "${BUILDAH_CMDS[@]}")
    local pkgs=() c
    [[ $REGISTRY == distribution ]] && cmds+=(docker-registry)
    for c in $(missing_cmds "${cmds[@]}"); do pkgs+=("${PKG[$c]}"); done
    busybox_static_ok || pkgs+=(busybox-static)
    if ((${#pkgs[@]})); then
        mapfile -t pkgs < <(printf '%s\n' "${pkgs[@]}" | sort -u)
        echo "installing: ${pkgs[*]}" >&2
        if ! apt-get install -y --no-install-recommends "${pkgs[@]}" >"$T/apt.log" 2>&1; then
            apt-get update >>"$T/apt.log" 2>&1 || true
            apt-get install -y --no-install-recommends "${pkgs[@]}" >>"$T/apt.log" 2>&1 || {
                echo "apt-get install ${pkgs[*]} failed:" >&2
                tail -n 5 "$T/apt.log" >&2
            }
        fi
    fi
    install_python_clients
}

# The interpreter for the venv: helm-sdkpy declares Python >= 3.12, so the newest CPython
# >= 3.12 that has venv (on PATH or under pyenv); else python3 (the wheel is pure Python
# plus a prebuilt Go library and works on 3.11, so its Requires-Python is then ignored).
pick_python() {
    local c cands=(python3.13 python3.12)
    command -v pyenv >/dev/null 2>&1 && cands+=("$(pyenv root)"/versions/3.1[2-9]*/bin/python3)
    for c in "${cands[@]}"; do
        "$c" -c 'import sys, venv, ensurepip; sys.exit(sys.version_info < (3, 12))' >/dev/null 2>&1 && { echo "$c"; return; }
    done
    echo python3
}

# Creates or refreshes the venv when requirements.txt changed (a stamp file records it).
install_python_clients() {
    local py stamp want extra=()
    want="$(cat "$REQUIREMENTS")"
    stamp=$VENV/.berth-requirements
    if [[ -x $PY && -f $stamp && "$(cat "$stamp")" == "$want" ]] &&
        "$PY" -c 'import oras.provider, helm_sdkpy' >/dev/null 2>&1; then
        return 0
    fi
    py=$(pick_python)
    echo "installing the Python clients into $VENV ($py)" >&2
    if ! "$py" -c 'import venv, ensurepip' >/dev/null 2>&1; then
        apt-get install -y --no-install-recommends python3-venv >>"$T/apt.log" 2>&1 || true
    fi
    "$py" -c 'import sys; sys.exit(sys.version_info < (3, 12))' || extra=(--ignore-requires-python)
    rm -rf "$VENV"
    {
        "$py" -m venv "$VENV" &&
            "$PY" -m pip install --disable-pip-version-check -q "${extra[@]}" -r "$REQUIREMENTS"
    } >"$T/pip.log" 2>&1 || {
        echo "installing the Python clients failed:" >&2
        tail -n 5 "$T/pip.log" >&2
        return 0
    }
    printf '%s' "$want" >"$stamp"
}

tools_step() { # tools_step CMD...: a step that passes when every command exists
    local m
    m=$(missing_cmds "$@" | xargs)
    [[ -z $m ]] || why "missing: $m" || return
}
step_tools_base() { tools_step "${BASE_CMDS[@]}"; }
step_tools_docker() {
    tools_step "${DOCKER_CMDS[@]}" || return
    busybox_static_ok || why "missing: busybox-static" || return
}
step_tools_skopeo() { tools_step "${SKOPEO_CMDS[@]}"; }
step_tools_ctr() { tools_step "${CTR_CMDS[@]}"; }
step_tools_podman() {
    tools_step "${PODMAN_CMDS[@]}" "${BUILDAH_CMDS[@]}" || return
    busybox_static_ok || why "missing: busybox-static" || return
}
step_tools_python() {
    [[ -x $PY ]] || why "missing: the venv $VENV (see $T/pip.log)" || return
    "$PY" -c 'import oras.provider' >/dev/null 2>&1 || why "missing: the PyPI package oras in $VENV" || return
    "$PY" -c 'import helm_sdkpy' >/dev/null 2>&1 || why "missing: the PyPI package helm-sdkpy in $VENV" || return
    echo "python clients: $("$PY" -m pip list 2>/dev/null | grep -E '^(oras|helm-sdkpy) ' | xargs)" >&2
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

# first_line PID OUT LOG WHAT: waits up to 30 s for the first complete line
# that the berth started as PID writes to OUT (its "listening" line) and
# sets LINE to it; fails if the process exits first (LOG says why).
first_line() {
    local pid=$1 out=$2 log=$3 what=$4 i
    LINE=""
    for ((i = 0; i < 300; i++)); do
        # only a complete first line counts
        if [[ $(wc -l <"$out") -ge 1 ]]; then
            LINE=$(head -n1 "$out")
            return 0
        fi
        kill -0 "$pid" 2>/dev/null || why "$what exited before listening: $(tail -n 5 "$log" | tr '\n' ' ')" || return
        sleep 0.1
    done
    why "$what printed no line on stdout within 30 s"
}

start_berth() {
    local line=""
    [[ -x $BERTH_BIN ]] || why "berth binary $BERTH_BIN not found (cargo build --release)" || return
    mkdir -p "$T/berth-data"
    local env=()
    [[ -n ${BERTH_LOG:-} ]] && env=(RUST_LOG="$BERTH_LOG")
    env "${env[@]}" "$BERTH_BIN" serve --addr 127.0.0.1:0 --data-dir "$T/berth-data" >"$T/registry.out" 2>"$T/registry.log" &
    REG_PID=$!
    first_line "$REG_PID" "$T/registry.out" "$T/registry.log" berth || return
    line=$LINE
    [[ $line =~ ^berth\ listening\ on\ http://127\.0\.0\.1:([0-9]+)$ ]] ||
        why "unexpected first stdout line: '$line'" || return
    PORT=${BASH_REMATCH[1]}
    REG=127.0.0.1:$PORT
    wait_v2
}

# free_port comes from tests/support/servers.sh (sourced by run.sh).

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

