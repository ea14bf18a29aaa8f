# shellcheck shell=bash
# podman and buildah steps (sourced by run.sh). Each tool has its own containers-storage
# (vfs driver) and configuration under the temp dir, nothing in /var/lib/containers.

MT_OCI_CONFIG=application/vnd.oci.image.config.v1+json

# containers_conf DIR: storage.conf (vfs under DIR) and containers.conf for one tool.
containers_conf() {
    local d=$1
    mkdir -p "$d/tmp" "$d/libpod-tmp" "$d/net"
    cat >"$d/storage.conf" <<EOF
[storage]
driver = "vfs"
graphroot = "$d/root"
runroot = "$d/run"
EOF
    # Ulimits: podman asks for RLIMIT_NOFILE/NPROC at their maxima when run as root, which
    # needs CAP_SYS_RESOURCE; ask for values below the current limits instead.
    # Runtime: pinned to runc, which the suite installs. Left to choose, podman prefers crun
    # where it is installed, and crun refuses hosts with cgroups in hybrid mode ("crun:
    # cgroups in hybrid mode not supported"), so the run would depend on the machine.
    cat >"$d/containers.conf" <<EOF
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "$d/events.log"
tmp_dir = "$d/libpod-tmp"
[network]
network_config_dir = "$d/net"
EOF
}

# commands as arrays, so that timeout can run them
PODMAN=(env "CONTAINERS_CONF=$T/podman/containers.conf" "CONTAINERS_STORAGE_CONF=$T/podman/storage.conf"
    "TMPDIR=$T/podman/tmp" podman)
BUILDAH=(env "CONTAINERS_CONF=$T/buildah/containers.conf" "CONTAINERS_STORAGE_CONF=$T/buildah/storage.conf"
    "TMPDIR=$T/buildah/tmp" buildah)

# ---------------------------------------------------------------- podman
step_podman_build() {
    containers_conf "$T/podman"
    PRAND=$(rand_hex)
    scratch_context "$T/ctx-podman" "$PRAND"
    PIMG=$REG/pod/app:1
    local rt
    rt=$("${PODMAN[@]}" info --format '{{.Host.OCIRuntime.Name}}' 2>"$T/pinfo.err") ||
        why "podman info: $(oneline "$T/pinfo.err")" || return
    [[ $rt == runc ]] || why "podman uses the OCI runtime $rt, not the pinned runc" || return
    timeout 300 "${PODMAN[@]}" build --format oci -t "$PIMG" -f "$T/ctx-podman/Containerfile" "$T/ctx-podman" >"$T/pbuild.out" 2>&1 ||
        why "podman build: $(tail -n 3 "$T/pbuild.out" | tr '\n' ' ')" || return
    PIMAGE_ID=sha256:$("${PODMAN[@]}" image inspect --format '{{.Id}}' "$PIMG") || why "built image not found" || return
}

step_podman_push() {
    timeout 300 "${PODMAN[@]}" push --tls-verify=false --digestfile "$T/pdigest" "$PIMG" >"$T/ppush.out" 2>&1 ||
        why "podman push: $(tail -n 3 "$T/ppush.out" | tr '\n' ' ')" || return
    PDIGEST=$(cat "$T/pdigest")
    echo "podman pushed $PIMG as $PDIGEST" >&2
    check_image pod/app 1 "$PDIGEST" "$PIMAGE_ID" "$MT_OCI_MANIFEST" "$PRAND" || return
    [[ $(jq -r .config.mediaType "$T/ci.manifest") == "$MT_OCI_CONFIG" ]] || why "config media type $(jq -r .config.mediaType "$T/ci.manifest")" || return
}

step_podman_rmi() {
    "${PODMAN[@]}" rmi -a -f >"$T/prmi.out" 2>&1 || why "podman rmi -a: $(oneline "$T/prmi.out")" || return
    [[ -z $("${PODMAN[@]}" images -q) ]] || why "images left: $("${PODMAN[@]}" images -q | xargs)" || return
}

# podman_pulled REF ID DIGEST: the local image REF has ID (config digest) and pulled DIGEST
podman_pulled() {
    local id dg
    id=sha256:$("${PODMAN[@]}" image inspect --format '{{.Id}}' "$1") || why "pulled image $1 not found" || return
    [[ $id == "$2" ]] || why "pulled image ID $id != pushed $2" || return
    dg=$("${PODMAN[@]}" image inspect --format '{{.Digest}}' "$1")
    [[ $dg == "$3" ]] || why "pulled image digest $dg != pushed $3" || return
}

step_podman_pull() {
    timeout 300 "${PODMAN[@]}" pull --tls-verify=false "$PIMG" >"$T/ppull.out" 2>&1 ||
        why "podman pull: $(tail -n 3 "$T/ppull.out" | tr '\n' ' ')" || return
    podman_pulled "$PIMG" "$PIMAGE_ID" "$PDIGEST"
}

step_podman_run() {
    local out
    out=$(timeout 120 "${PODMAN[@]}" run --rm --network none "$PIMG" 2>"$T/prun.err") ||
        why "podman run: $(oneline "$T/prun.err")" || return
    [[ $out == "$PRAND" ]] || why "container printed '$out', expected '$PRAND'" || return
}

# What docker pushed (Docker schema 2), pulled by podman, by tag and by digest.
step_podman_pull_docker_image() {
    timeout 300 "${PODMAN[@]}" pull --tls-verify=false "$IMG" >"$T/ppull2.out" 2>&1 ||
        why "podman pull $IMG: $(tail -n 3 "$T/ppull2.out" | tr '\n' ' ')" || return
    podman_pulled "$IMG" "$IMAGE_ID" "$PUSH_DIGEST" || return
    timeout 300 "${PODMAN[@]}" pull --tls-verify=false "$REG/other/app@$PUSH_DIGEST" >"$T/ppull3.out" 2>&1 ||
        why "podman pull other/app@$PUSH_DIGEST: $(tail -n 3 "$T/ppull3.out" | tr '\n' ' ')" || return
    podman_pulled "$REG/other/app@$PUSH_DIGEST" "$IMAGE_ID" "$PUSH_DIGEST"
}

# ---------------------------------------------------------------- buildah
step_buildah_build() {
    containers_conf "$T/buildah"
    BRAND=$(rand_hex)
    scratch_context "$T/ctx-buildah" "$BRAND"
    BIMG=$REG/bud/app:1
    # Docker schema 2 this time (podman pushed OCI)
    timeout 300 "${BUILDAH[@]}" bud --format docker -t "$BIMG" -f "$T/ctx-buildah/Containerfile" "$T/ctx-buildah" >"$T/bbuild.out" 2>&1 ||
        why "buildah bud: $(tail -n 3 "$T/bbuild.out" | tr '\n' ' ')" || return
    BIMAGE_ID=sha256:$("${BUILDAH[@]}" inspect --type image --format '{{.FromImageID}}' "$BIMG") || why "built image not found" || return
}

step_buildah_push() {
    timeout 300 "${BUILDAH[@]}" push --tls-verify=false --digestfile "$T/bdigest" "$BIMG" >"$T/bpush.out" 2>&1 ||
        why "buildah push: $(tail -n 3 "$T/bpush.out" | tr '\n' ' ')" || return
    BDIGEST=$(cat "$T/bdigest")
    echo "buildah pushed $BIMG as $BDIGEST" >&2
    check_image bud/app 1 "$BDIGEST" "$BIMAGE_ID" "$MT_DOCKER_MANIFEST" "$BRAND"
}

# Remove everything, pull again, and read the files back from a working container's mount.
step_buildah_pull() {
    local ctr mnt id
    "${BUILDAH[@]}" rmi -a -f >"$T/brmi.out" 2>&1 || why "buildah rmi -a: $(oneline "$T/brmi.out")" || return
    [[ -z $("${BUILDAH[@]}" images -q) ]] || why "images left: $("${BUILDAH[@]}" images -q | xargs)" || return
    timeout 300 "${BUILDAH[@]}" pull --tls-verify=false "$BIMG" >"$T/bpull.out" 2>&1 ||
        why "buildah pull: $(tail -n 3 "$T/bpull.out" | tr '\n' ' ')" || return
    id=sha256:$("${BUILDAH[@]}" inspect --type image --format '{{.FromImageID}}' "$BIMG")
    [[ $id == "$BIMAGE_ID" ]] || why "pulled image ID $id != pushed $BIMAGE_ID" || return
    [[ $("${BUILDAH[@]}" inspect --type image --format '{{.FromImageDigest}}' "$BIMG") == "$BDIGEST" ]] ||
        why "pulled image digest $("${BUILDAH[@]}" inspect --type image --format '{{.FromImageDigest}}' "$BIMG") != $BDIGEST" || return
    ctr=$("${BUILDAH[@]}" from --pull-never "$BIMG" 2>"$T/bfrom.err") || why "buildah from: $(oneline "$T/bfrom.err")" || return
    mnt=$("${BUILDAH[@]}" mount "$ctr" 2>"$T/bfrom.err") || why "buildah mount: $(oneline "$T/bfrom.err")" || return
    cmp -s "$mnt/bin/busybox" "$BUSYBOX" || why "pulled /bin/busybox differs" || return
    [[ $(cat "$mnt/rand.txt") == "$BRAND" ]] || why "pulled /rand.txt differs" || return
    "${BUILDAH[@]}" rm "$ctr" >/dev/null 2>&1 || true
}
