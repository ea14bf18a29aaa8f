# shellcheck shell=bash
# oras steps (sourced by run.sh): oras-py through tests/clients/oras_client.py.

oras_py() { "$PY" "$HERE/oras_client.py" "$@"; }

MT_EMPTY=application/vnd.oci.empty.v1+json
EMPTY_DIGEST=sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a # of {}
MT_OCI_INDEX=application/vnd.oci.image.index.v1+json
ART_TYPE=application/vnd.berth.test.bundle.v1
SIG_TYPE=application/vnd.berth.test.signature.v1
SBOM_TYPE=application/vnd.berth.test.sbom.v1+json
LEGACY_CONFIG_TYPE=application/vnd.berth.test.legacy.config.v1+json

# oras_pushed NAME OUTFILE: a push's JSON says 201 and the digest of the bytes sent
oras_pushed() {
    jq -e '.status == 201 and .docker_content_digest == .sent_digest' "$2" >/dev/null ||
        why "$1: $(oneline "$2")" || return
}

# served_is_sent REPO REF SENTFILE: GET manifests/REF returns the bytes oras-py sent
served_is_sent() {
    local code
    code=$(http GET "http://$REG/v2/$1/manifests/$2" "$T/oras.served" "$T/oras.hdr" "${ACCEPT_ALL[@]}")
    [[ $code == 200 ]] || why "GET $1/manifests/$2 -> $code $(oneline "$T/oras.served")" || return
    cmp -s "$T/oras.served" "$3" || why "$1/manifests/$2: served bytes differ from the bytes oras-py sent" || return
    [[ $(header Content-Type "$T/oras.hdr") == "$MT_OCI_MANIFEST" ]] || why "$1/manifests/$2 Content-Type '$(header Content-Type "$T/oras.hdr")'" || return
}

# An artifact: custom artifactType, the empty config ({} as application/vnd.oci.empty.v1+json),
# two files as layers, a manifest annotation.
step_oras_push() {
    local d=$T/oras-in f
    mkdir -p "$d"
    printf '{}' >"$d/config.json"
    ORAND=$(rand_hex)
    printf 'hello from oras %s\n' "$ORAND" >"$d/readme.txt"
    head -c 1500000 /dev/urandom >"$d/data.bin"
    oras_py push --target "$REG/art/bundle:v1" --dir "$d" --config "config.json:$MT_EMPTY" \
        --artifact-type "$ART_TYPE" --annotation "org.example.berth=$ORAND" --manifest-out "$T/oras-art.sent" \
        readme.txt:text/plain data.bin:application/octet-stream >"$T/oras-push.json" 2>"$T/oras.err" ||
        why "oras push: $(tail -n 3 "$T/oras.err" | tr '\n' ' ')" || return
    oras_pushed "oras push" "$T/oras-push.json" || return
    ART_DIGEST=$(jq -r .docker_content_digest "$T/oras-push.json")
    served_is_sent art/bundle v1 "$T/oras-art.sent" || return
    served_is_sent art/bundle "$ART_DIGEST" "$T/oras-art.sent" || return
    jq -e --arg at "$ART_TYPE" --arg e "$MT_EMPTY" --arg ed "$EMPTY_DIGEST" --arg r "$ORAND" \
        --arg r1 "sha256:$(sha "$d/readme.txt")" --arg r2 "sha256:$(sha "$d/data.bin")" \
        '.artifactType == $at and .config == {mediaType: $e, digest: $ed, size: 2}
         and .annotations["org.example.berth"] == $r
         and [.layers[] | [.digest, .annotations["org.opencontainers.image.title"]]] == [[$r1, "readme.txt"], [$r2, "data.bin"]]' \
        "$T/oras-art.sent" >/dev/null || why "artifact manifest: $(oneline "$T/oras-art.sent")" || return
    fetch_blob art/bundle "$EMPTY_DIGEST" "$T/oras.config" || return
    [[ $(cat "$T/oras.config") == '{}' ]] || why "empty config blob is '$(cat "$T/oras.config")'" || return
    for f in readme.txt data.bin; do
        fetch_blob art/bundle "sha256:$(sha "$d/$f")" "$T/oras.blob" || return
        cmp -s "$T/oras.blob" "$d/$f" || why "layer $f bytes differ" || return
    done
}

step_oras_pull() {
    local o f ref
    for ref in "art/bundle:v1" "art/bundle@$ART_DIGEST"; do
        o=$T/oras-out-${ref//[:@\/]/-}
        oras_py pull --target "$REG/$ref" --outdir "$o" >"$T/oras-pull.json" 2>"$T/oras.err" ||
            why "oras pull $ref: $(tail -n 3 "$T/oras.err" | tr '\n' ' ')" || return
        jq -e '.files == ["data.bin", "readme.txt"]' "$T/oras-pull.json" >/dev/null || why "oras pull $ref: $(oneline "$T/oras-pull.json")" || return
        for f in readme.txt data.bin; do
            cmp -s "$o/$f" "$T/oras-in/$f" || why "oras pull $ref: $f differs from what was pushed" || return
        done
    done
    oras_py manifest --target "$REG/art/bundle:v1" >"$T/oras-m.json" 2>"$T/oras.err" || why "oras get_manifest: $(oneline "$T/oras.err")" || return
    cmp -s <(jq -S . "$T/oras-m.json") <(jq -S . "$T/oras-art.sent") || why "oras get_manifest differs from the pushed manifest" || return
    oras_py tags --target "$REG/art/bundle" >"$T/oras-t.json" 2>"$T/oras.err" || why "oras get_tags: $(oneline "$T/oras.err")" || return
    jq -e '.tags == ["v1"]' "$T/oras-t.json" >/dev/null || why "oras get_tags: $(oneline "$T/oras-t.json")" || return
}

# Three referrers of docker's image team/app:1 (a Docker schema 2 manifest), pushed by digest
# and untagged like `oras attach`: a signature and an SBOM with artifactType, and one in the
# older style whose type is only its config media type.
step_oras_attach() {
    local d=$T/oras-attach subject="$MT_DOCKER_MANIFEST,$PUSH_DIGEST,$PUSH_SIZE" name code
    mkdir -p "$d"
    printf '{}' >"$d/empty.json"
    head -c 256 /dev/urandom >"$d/sig.bin"
    printf '{"spdxVersion":"SPDX-2.3","name":"%s"}' "$(rand_hex)" >"$d/sbom.json"
    printf '{"legacy":true}' >"$d/legacy.json"
    printf 'legacy %s\n' "$(rand_hex)" >"$d/legacy.txt"
    SIG_ANN=$(rand_hex)
    oras_py push --target "$REG/team/app:unused" --by-digest --dir "$d" --subject "$subject" \
        --config "empty.json:$MT_EMPTY" --artifact-type "$SIG_TYPE" --annotation "org.example.sig=$SIG_ANN" \
        --manifest-out "$T/ref-sig.sent" sig.bin:application/octet-stream >"$T/ref-sig.json" 2>"$T/oras.err" ||
        why "oras attach signature: $(tail -n 3 "$T/oras.err" | tr '\n' ' ')" || return
    oras_py push --target "$REG/team/app:unused" --by-digest --dir "$d" --subject "$subject" \
        --config "empty.json:$MT_EMPTY" --artifact-type "$SBOM_TYPE" \
        --manifest-out "$T/ref-sbom.sent" sbom.json:application/spdx+json >"$T/ref-sbom.json" 2>"$T/oras.err" ||
        why "oras attach sbom: $(tail -n 3 "$T/oras.err" | tr '\n' ' ')" || return
    oras_py push --target "$REG/team/app:unused" --by-digest --dir "$d" --subject "$subject" \
        --config "legacy.json:$LEGACY_CONFIG_TYPE" \
        --manifest-out "$T/ref-legacy.sent" legacy.txt:text/plain >"$T/ref-legacy.json" 2>"$T/oras.err" ||
        why "oras attach legacy: $(tail -n 3 "$T/oras.err" | tr '\n' ' ')" || return
    for name in sig sbom legacy; do
        oras_pushed "attach $name" "$T/ref-$name.json" || return
        # (OCI 1.1; the reference registry, distribution 2.8, predates it)
        [[ $REGISTRY != berth ]] || jq -e --arg s "$PUSH_DIGEST" '.oci_subject == $s' "$T/ref-$name.json" >/dev/null ||
            why "attach $name: OCI-Subject header '$(jq -r .oci_subject "$T/ref-$name.json")', expected $PUSH_DIGEST" || return
        served_is_sent team/app "$(jq -r .docker_content_digest "$T/ref-$name.json")" "$T/ref-$name.sent" || return
    done
    SIG_DIGEST=$(jq -r .docker_content_digest "$T/ref-sig.json")
    SBOM_DIGEST=$(jq -r .docker_content_digest "$T/ref-sbom.json")
    LEGACY_DIGEST=$(jq -r .docker_content_digest "$T/ref-legacy.json")
    # untagged: team/app still has its one tag (and docker's arm64 one, if that step ran)
    http GET "http://$REG/v2/team/app/tags/list" "$T/oras-tags.json" "$T/oras.hdr" >/dev/null
    jq -e '.tags | index("unused") | not' "$T/oras-tags.json" >/dev/null || why "attach tagged team/app: $(oneline "$T/oras-tags.json")" || return
    # the subject is untouched, and the signature pulls back by digest
    code=$(http GET "http://$REG/v2/team/app/manifests/1" "$T/oras-subj" "$T/oras.hdr" "${ACCEPT_ALL[@]}")
    [[ $code == 200 && sha256:$(sha "$T/oras-subj") == "$PUSH_DIGEST" ]] || why "team/app:1 changed after attach" || return
    oras_py pull --target "$REG/team/app@$SIG_DIGEST" --outdir "$T/oras-sig-out" >/dev/null 2>"$T/oras.err" ||
        why "oras pull team/app@$SIG_DIGEST: $(oneline "$T/oras.err")" || return
    cmp -s "$T/oras-sig-out/sig.bin" "$d/sig.bin" || why "pulled signature differs" || return
}

# expected_referrers: the index entries the three referrers must produce, sorted by digest
expected_referrers() {
    jq -n --slurpfile a "$T/ref-sig.sent" --slurpfile b "$T/ref-sbom.sent" --slurpfile c "$T/ref-legacy.sent" \
        --arg ad "$SIG_DIGEST" --arg bd "$SBOM_DIGEST" --arg cd "$LEGACY_DIGEST" \
        --argjson asz "$(fsize "$T/ref-sig.sent")" --argjson bsz "$(fsize "$T/ref-sbom.sent")" --argjson csz "$(fsize "$T/ref-legacy.sent")" \
        --arg mt "$MT_OCI_MANIFEST" --arg lt "$LEGACY_CONFIG_TYPE" '
        def ann($m): if ($m.annotations // {}) != {} then {annotations: $m.annotations} else {} end;
        [{mediaType: $mt, digest: $ad, size: $asz, artifactType: $a[0].artifactType} + ann($a[0]),
         {mediaType: $mt, digest: $bd, size: $bsz, artifactType: $b[0].artifactType} + ann($b[0]),
         {mediaType: $mt, digest: $cd, size: $csz, artifactType: $lt} + ann($c[0])] | sort_by(.digest)'
}

# entries FILE: a referrers index's manifests, normalised for comparison
# (no annotations and empty annotations are the same thing)
entries() { jq -S '[.manifests[] | {mediaType, digest, size, artifactType} + (if (.annotations // {}) != {} then {annotations} else {} end)] | sort_by(.digest)' "$1"; }

step_oras_referrers() {
    local code want=$T/ref-want.json
    [[ $REGISTRY == berth ]] || why "missing: a referrers API in $REGISTRY (distribution 2.8 predates OCI 1.1)" || return
    expected_referrers | jq -S . >"$want"
    # plain HTTP
    code=$(http GET "http://$REG/v2/team/app/referrers/$PUSH_DIGEST" "$T/refs.json" "$T/refs.hdr")
    [[ $code == 200 ]] || why "GET team/app/referrers/$PUSH_DIGEST -> $code $(oneline "$T/refs.json")" || return
    [[ $(header Content-Type "$T/refs.hdr") == "$MT_OCI_INDEX" ]] || why "referrers Content-Type '$(header Content-Type "$T/refs.hdr")'" || return
    jq -e --arg mt "$MT_OCI_INDEX" '.schemaVersion == 2 and .mediaType == $mt' "$T/refs.json" >/dev/null || why "referrers index: $(oneline "$T/refs.json")" || return
    cmp -s <(entries "$T/refs.json") "$want" || why "referrers: $(entries "$T/refs.json" | tr -d ' \n'), expected $(tr -d ' \n' <"$want")" || return
    # filtered
    code=$(http GET "http://$REG/v2/team/app/referrers/$PUSH_DIGEST?artifactType=$SIG_TYPE" "$T/refs2.json" "$T/refs2.hdr")
    [[ $code == 200 && $(header OCI-Filters-Applied "$T/refs2.hdr") == artifactType ]] ||
        why "filtered referrers -> $code, OCI-Filters-Applied '$(header OCI-Filters-Applied "$T/refs2.hdr")'" || return
    jq -e --arg d "$SIG_DIGEST" '[.manifests[].digest] == [$d]' "$T/refs2.json" >/dev/null || why "filtered referrers: $(oneline "$T/refs2.json")" || return
    # (percent-encoded: a raw + in a query string is a space)
    code=$(http GET "http://$REG/v2/team/app/referrers/$PUSH_DIGEST?artifactType=$(jq -rn --arg v "$LEGACY_CONFIG_TYPE" '$v | @uri')" "$T/refs3.json" "$T/refs3.hdr")
    jq -e --arg d "$LEGACY_DIGEST" '[.manifests[].digest] == [$d]' "$T/refs3.json" >/dev/null || why "referrers filtered on the config media type: $(oneline "$T/refs3.json")" || return
    # through oras-py's request path, same answers
    oras_py referrers --target "$REG/team/app@$PUSH_DIGEST" >"$T/refs-py.json" 2>"$T/oras.err" || why "oras referrers: $(oneline "$T/oras.err")" || return
    jq -e --arg mt "$MT_OCI_INDEX" '.status == 200 and .content_type == $mt' "$T/refs-py.json" >/dev/null || why "oras referrers: $(oneline "$T/refs-py.json")" || return
    jq '.index' "$T/refs-py.json" >"$T/refs-py-index.json"
    cmp -s <(entries "$T/refs-py-index.json") "$want" || why "oras referrers: $(oneline "$T/refs-py-index.json")" || return
    oras_py referrers --target "$REG/team/app@$PUSH_DIGEST" --artifact-type "$SBOM_TYPE" >"$T/refs-py2.json" 2>"$T/oras.err" || why "oras referrers --artifact-type: $(oneline "$T/oras.err")" || return
    jq -e --arg d "$SBOM_DIGEST" '.filters_applied == "artifactType" and [.index.manifests[].digest] == [$d]' "$T/refs-py2.json" >/dev/null ||
        why "oras referrers --artifact-type: $(oneline "$T/refs-py2.json")" || return
    # a digest nothing refers to: an empty index, not a 404
    code=$(http GET "http://$REG/v2/team/app/referrers/sha256:$(printf nothing | sha256sum | cut -d' ' -f1)" "$T/refs4.json" "$T/refs4.hdr")
    [[ $code == 200 ]] && jq -e '.manifests == []' "$T/refs4.json" >/dev/null || why "referrers of an unknown digest -> $code $(oneline "$T/refs4.json")" || return
}
