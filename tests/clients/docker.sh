# shellcheck shell=bash
# docker steps (sourced by run.sh).

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

# The management plane shows what docker pushed (Berth only): namespace team
# and repository team/app exist, the artifact is the pushed digest, and the
# sizes equal the manifest plus the config and layer sizes docker sent.
step_docker_push_in_management_api() {
    local code m=$T/app.manifest.api want
    code=$(http GET "http://$REG/v2/team/app/manifests/$PUSH_DIGEST" "$m" "$T/mm.hdr" "${ACCEPT_ALL[@]}")
    [[ $code == 200 ]] || why "GET manifest -> $code" || return
    want=$(($(fsize "$m") + $(jq '[.config.size] + [.layers[].size] | add' "$m")))
    code=$(http GET "http://$REG/api/v1/namespaces/team" "$T/ns.json" "$T/ns.hdr")
    [[ $code == 200 ]] || why "GET /api/v1/namespaces/team -> $code $(oneline "$T/ns.json")" || return
    [[ $(jq -r .status "$T/ns.json") == ready && $(jq -r .is_public "$T/ns.json") == false ]] ||
        why "namespace: $(oneline "$T/ns.json")" || return
    code=$(http GET "http://$REG/api/v1/namespaces/team/repositories/app" "$T/repo.json" "$T/repo.hdr")
    [[ $code == 200 ]] || why "GET repositories/app -> $code $(oneline "$T/repo.json")" || return
    jq -e --arg d "$PUSH_DIGEST" '.artifacts | map(.digest) | index($d) != null' "$T/repo.json" >/dev/null ||
        why "artifact $PUSH_DIGEST not listed: $(oneline "$T/repo.json")" || return
    [[ $(jq -r --arg d "$PUSH_DIGEST" '.artifacts[] | select(.digest == $d) | .size' "$T/repo.json") == "$want" ]] ||
        why "artifact size $(jq -r --arg d "$PUSH_DIGEST" '.artifacts[] | select(.digest == $d) | .size' "$T/repo.json"), expected $want" || return
    [[ $(jq -r .repository.last_push "$T/repo.json") =~ ^20[0-9]{2}-[0-9]{2}-[0-9]{2}T ]] ||
        why "last_push: $(jq -r .repository.last_push "$T/repo.json")" || return
    (($(jq -r .repository.size "$T/repo.json") >= want)) || why "repository size below the image's size $want" || return
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


# ---------------------------------------------------------------- docker manifest (lists)
MT_DOCKER_LIST=application/vnd.docker.distribution.manifest.list.v2+json

# A second image, different bytes, labelled linux/arm64 (busybox inside stays amd64:
# nothing runs it), pushed next to the first one.
step_docker_build_arm64() {
    local ctx=$T/ctx-arm64
    RAND_ARM=$(rand_hex)
    scratch_context "$ctx" "$RAND_ARM"
    IMG_ARM=$REG/team/app:arm64
    timeout 300 docker build --platform linux/arm64 -t "$IMG_ARM" "$ctx" >"$T/build-arm.out" 2>&1 ||
        why "docker build --platform linux/arm64: $(tail -n 3 "$T/build-arm.out" | tr '\n' ' ')" || return
    ARM_IMAGE_ID=$(docker image inspect -f '{{.Id}}' "$IMG_ARM") || why "built image not found" || return
    [[ $(docker image inspect -f '{{.Os}}/{{.Architecture}}' "$IMG_ARM") == linux/arm64 ]] ||
        why "image is $(docker image inspect -f '{{.Os}}/{{.Architecture}}' "$IMG_ARM"), expected linux/arm64" || return
    timeout 300 docker push "$IMG_ARM" >"$T/push-arm.out" 2>&1 ||
        why "docker push $IMG_ARM: $(tail -n 3 "$T/push-arm.out" | tr '\n' ' ')" || return
    local re='digest: (sha256:[0-9a-f]{64}) size: ([0-9]+)'
    [[ $(cat "$T/push-arm.out") =~ $re ]] || why "no digest in docker push output: $(oneline "$T/push-arm.out")" || return
    ARM_DIGEST=${BASH_REMATCH[1]}
    ARM_SIZE=${BASH_REMATCH[2]}
}

# docker manifest create/annotate/push into another repository: docker mounts the children's
# blobs from team/app, PUTs the children by digest, then the list by tag.
step_docker_manifest_push() {
    LIST=$REG/team/multi:1
    docker manifest create --insecure "$LIST" "$IMG" "$IMG_ARM" >"$T/mc.out" 2>&1 ||
        why "docker manifest create: $(oneline "$T/mc.out")" || return
    docker manifest annotate "$LIST" "$IMG_ARM" --os linux --arch arm64 --variant v8 >"$T/ma.out" 2>&1 ||
        why "docker manifest annotate: $(oneline "$T/ma.out")" || return
    timeout 300 docker manifest push --insecure "$LIST" >"$T/mp.out" 2>&1 ||
        why "docker manifest push: $(oneline "$T/mp.out")" || return
    LIST_DIGEST=$(grep -oE '^sha256:[0-9a-f]{64}$' "$T/mp.out" | tail -n1)
    [[ -n $LIST_DIGEST ]] || why "no digest in docker manifest push output: $(oneline "$T/mp.out")" || return
    echo "docker manifest pushed $LIST as $LIST_DIGEST" >&2
}

# The list and both children, byte for byte, in the list's repository.
step_docker_manifest_content() {
    local code l=$T/list.json i dg size arch cm ct
    code=$(http GET "http://$REG/v2/team/multi/manifests/1" "$l" "$T/l.hdr" "${ACCEPT_ALL[@]}")
    [[ $code == 200 ]] || why "GET team/multi/manifests/1 -> $code $(oneline "$l")" || return
    [[ sha256:$(sha "$l") == "$LIST_DIGEST" ]] || why "list bytes hash to sha256:$(sha "$l"), docker pushed $LIST_DIGEST" || return
    ct=$(header Content-Type "$T/l.hdr")
    [[ $ct == "$MT_DOCKER_LIST" && $(jq -r .mediaType "$l") == "$MT_DOCKER_LIST" ]] ||
        why "Content-Type '$ct', mediaType '$(jq -r .mediaType "$l")'" || return
    [[ $(header Docker-Content-Digest "$T/l.hdr") == "$LIST_DIGEST" ]] || why "Docker-Content-Digest '$(header Docker-Content-Digest "$T/l.hdr")'" || return
    jq -e --arg a "$PUSH_DIGEST" --argjson asz "$PUSH_SIZE" --arg b "$ARM_DIGEST" --argjson bsz "$ARM_SIZE" \
        '(.manifests | length) == 2 and
         ([.manifests[] | select(.digest == $a and .size == $asz and .platform.architecture == "amd64"
            and .platform.os == "linux")] | length) == 1 and
         ([.manifests[] | select(.digest == $b and .size == $bsz and .platform.architecture == "arm64"
            and .platform.os == "linux" and .platform.variant == "v8")] | length) == 1' "$l" >/dev/null ||
        why "list entries: $(jq -c '[.manifests[] | {digest, size, platform}]' "$l")" || return
    # HEAD by digest
    code=$(http HEAD "http://$REG/v2/team/multi/manifests/$LIST_DIGEST" /dev/null "$T/l2.hdr" "${ACCEPT_ALL[@]}")
    [[ $code == 200 && $(header Content-Length "$T/l2.hdr") == "$(fsize "$l")" ]] ||
        why "HEAD team/multi/manifests/$LIST_DIGEST -> $code, Content-Length '$(header Content-Length "$T/l2.hdr")'" || return
    # each child manifest and every blob it names, from team/multi
    for ((i = 0; i < 2; i++)); do
        dg=$(jq -r ".manifests[$i].digest" "$l")
        size=$(jq -r ".manifests[$i].size" "$l")
        arch=$(jq -r ".manifests[$i].platform.architecture" "$l")
        cm=$T/child-$arch.json
        code=$(http GET "http://$REG/v2/team/multi/manifests/$dg" "$cm" "$T/c.hdr" "${ACCEPT_ALL[@]}")
        [[ $code == 200 ]] || why "GET team/multi/manifests/$dg ($arch) -> $code $(oneline "$cm")" || return
        [[ sha256:$(sha "$cm") == "$dg" && $(fsize "$cm") == "$size" ]] || why "child $arch: bytes hash to sha256:$(sha "$cm"), size $(fsize "$cm")" || return
        [[ $(header Content-Type "$T/c.hdr") == "$MT_DOCKER_MANIFEST" ]] || why "child $arch Content-Type '$(header Content-Type "$T/c.hdr")'" || return
        fetch_blob team/multi "$(jq -r .config.digest "$cm")" "$T/child-$arch.config" || return
        [[ $(jq -r .architecture "$T/child-$arch.config") == "$arch" ]] || why "child $arch config says $(jq -r .architecture "$T/child-$arch.config")" || return
        while read -r dg; do
            fetch_blob team/multi "$dg" "$T/child.layer" || return
        done < <(jq -r '.layers[].digest' "$cm")
    done
    # the arm64 child's config is the arm64 image and its second layer holds its rand.txt
    [[ sha256:$(sha "$T/child-arm64.config") == "$ARM_IMAGE_ID" ]] || why "arm64 child config is not image $ARM_IMAGE_ID" || return
    fetch_blob team/multi "$(jq -r '.layers[1].digest' "$T/child-arm64.json")" "$T/arm.layer1" || return
    [[ $(gzip -dc "$T/arm.layer1" | tar -xOf - rand.txt) == "$RAND_ARM" ]] || why "arm64 layer rand.txt differs" || return
}

step_docker_manifest_inspect() {
    docker manifest inspect --insecure "$LIST" >"$T/mi.json" 2>"$T/mi.err" || why "docker manifest inspect: $(oneline "$T/mi.err")" || return
    jq -e --arg a "$PUSH_DIGEST" --arg b "$ARM_DIGEST" '[.manifests[].digest] | sort == ([$a, $b] | sort)' "$T/mi.json" >/dev/null ||
        why "docker manifest inspect: $(oneline "$T/mi.json")" || return
    docker manifest inspect --insecure "$REG/team/multi@$ARM_DIGEST" >"$T/mi2.json" 2>"$T/mi.err" ||
        why "docker manifest inspect child: $(oneline "$T/mi.err")" || return
    cmp -s <(jq -S . "$T/mi2.json") <(jq -S . "$T/child-arm64.json") || why "docker manifest inspect of the arm64 child differs from the registry's" || return
}

# docker pull of the list picks the platform asked for.
step_docker_manifest_pull() {
    remove_local_images || return
    timeout 300 docker pull "$LIST" >"$T/lp.out" 2>&1 || why "docker pull $LIST: $(oneline "$T/lp.out")" || return
    grep -q "^Digest: $LIST_DIGEST\$" "$T/lp.out" || why "docker pull printed another digest: $(oneline "$T/lp.out")" || return
    [[ $(docker image inspect -f '{{.Id}}' "$LIST") == "$IMAGE_ID" ]] || why "docker pull $LIST (amd64) gave image $(docker image inspect -f '{{.Id}}' "$LIST")" || return
    remove_local_images || return
    timeout 300 docker pull --platform linux/arm64 "$LIST" >"$T/lp2.out" 2>&1 || why "docker pull --platform linux/arm64: $(oneline "$T/lp2.out")" || return
    [[ $(docker image inspect -f '{{.Id}}' "$LIST") == "$ARM_IMAGE_ID" ]] || why "docker pull --platform linux/arm64 gave image $(docker image inspect -f '{{.Id}}' "$LIST")" || return
}
