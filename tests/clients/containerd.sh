# shellcheck shell=bash
# containerd steps (sourced by run.sh): ctr against the containerd started for dockerd
# (step dockerd_start), in a namespace of its own, so docker's images ("moby") are not seen.

CTR_NS=berth-ctr
CTR=(ctr --address "$CONTAINERD_SOCK" --namespace "$CTR_NS")

# ctr_image_digest REF: the manifest digest the image record REF points at
ctr_image_digest() { "${CTR[@]}" images ls 2>/dev/null | awk -v r="$1" '$1 == r { print $3 }'; }

# ctr_content_ok DIGEST: containerd's content store holds DIGEST and its bytes hash to it
ctr_content_ok() {
    "${CTR[@]}" content get "$1" >"$T/ctr.blob" 2>"$T/ctr.err" || why "ctr content get $1: $(oneline "$T/ctr.err")" || return
    [[ sha256:$(sha "$T/ctr.blob") == "$1" ]] || why "content $1 hashes to sha256:$(sha "$T/ctr.blob")" || return
}

step_ctr_pull() {
    local dg
    timeout 300 "${CTR[@]}" images pull --plain-http "$IMG" >"$T/ctr-pull.out" 2>&1 ||
        why "ctr images pull: $(tail -n 3 "$T/ctr-pull.out" | tr '\n' ' ')" || return
    dg=$(ctr_image_digest "$IMG")
    [[ $dg == "$PUSH_DIGEST" ]] || why "ctr image $IMG is $dg, docker pushed $PUSH_DIGEST" || return
    ctr_content_ok "$PUSH_DIGEST" || return
    cp "$T/ctr.blob" "$T/ctr.manifest"
    dg=$(jq -r .config.digest "$T/ctr.manifest")
    [[ $dg == "$IMAGE_ID" ]] || why "config $dg != image ID $IMAGE_ID" || return
    ctr_content_ok "$dg" || return
    for dg in $(jq -r '.layers[].digest' "$T/ctr.manifest"); do
        ctr_content_ok "$dg" || return
    done
    "${CTR[@]}" images check >"$T/ctr-check.out" 2>&1 || why "ctr images check: $(oneline "$T/ctr-check.out")" || return
    grep -F "$IMG" "$T/ctr-check.out" | grep -q complete || why "ctr images check: $(oneline "$T/ctr-check.out")" || return
}

# The pulled image was unpacked into containerd's snapshotter: run it.
step_ctr_run() {
    local out
    out=$(timeout 120 "${CTR[@]}" run --rm "$IMG" "berth-ctr-run-$$" 2>"$T/ctr-run.err") ||
        why "ctr run: $(oneline "$T/ctr-run.err")" || return
    [[ $out == "$RAND" ]] || why "container printed '$out', expected '$RAND'" || return
}

# Push to another repository: containerd mounts the blobs (it remembers where they came
# from) and PUTs the same manifest bytes.
step_ctr_push() {
    local ref=$REG/ctr/app:1
    "${CTR[@]}" images tag "$IMG" "$ref" >/dev/null 2>"$T/ctr.err" || why "ctr images tag: $(oneline "$T/ctr.err")" || return
    timeout 300 "${CTR[@]}" images push --plain-http "$ref" >"$T/ctr-push.out" 2>&1 ||
        why "ctr images push: $(tail -n 3 "$T/ctr-push.out" | tr '\n' ' ')" || return
    check_image ctr/app 1 "$PUSH_DIGEST" "$IMAGE_ID" "$MT_DOCKER_MANIFEST" "$RAND"
}

# docker's two-platform list, every platform pulled, pushed elsewhere unchanged.
step_ctr_index() {
    local ref=$REG/ctr/multi:1 dg d code
    timeout 300 "${CTR[@]}" images pull --plain-http --all-platforms "$LIST" >"$T/ctr-pull2.out" 2>&1 ||
        why "ctr images pull --all-platforms $LIST: $(tail -n 3 "$T/ctr-pull2.out" | tr '\n' ' ')" || return
    [[ $(ctr_image_digest "$LIST") == "$LIST_DIGEST" ]] || why "ctr image $LIST is $(ctr_image_digest "$LIST"), expected $LIST_DIGEST" || return
    ctr_content_ok "$LIST_DIGEST" || return
    ctr_content_ok "$ARM_DIGEST" || return
    "${CTR[@]}" images tag "$LIST" "$ref" >/dev/null 2>"$T/ctr.err" || why "ctr images tag: $(oneline "$T/ctr.err")" || return
    timeout 300 "${CTR[@]}" images push --plain-http "$ref" >"$T/ctr-push2.out" 2>&1 ||
        why "ctr images push $ref: $(tail -n 3 "$T/ctr-push2.out" | tr '\n' ' ')" || return
    code=$(http GET "http://$REG/v2/ctr/multi/manifests/1" "$T/ctr-list" "$T/ctr-list.hdr" "${ACCEPT_ALL[@]}")
    [[ $code == 200 && sha256:$(sha "$T/ctr-list") == "$LIST_DIGEST" ]] ||
        why "GET ctr/multi/manifests/1 -> $code, hashes to sha256:$(sha "$T/ctr-list"), expected $LIST_DIGEST" || return
    for dg in "$PUSH_DIGEST" "$ARM_DIGEST"; do
        code=$(http GET "http://$REG/v2/ctr/multi/manifests/$dg" "$T/ctr-child" "$T/ctr-child.hdr" "${ACCEPT_ALL[@]}")
        [[ $code == 200 && sha256:$(sha "$T/ctr-child") == "$dg" ]] || why "GET ctr/multi/manifests/$dg -> $code" || return
        fetch_blob ctr/multi "$(jq -r .config.digest "$T/ctr-child")" "$T/ctr-child.config" || return
        for d in $(jq -r '.layers[].digest' "$T/ctr-child"); do
            fetch_blob ctr/multi "$d" "$T/ctr-child.layer" || return
        done
    done
}
