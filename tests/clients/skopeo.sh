# shellcheck shell=bash
# skopeo steps (sourced by run.sh).

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

