# shellcheck shell=bash
# helm steps (sourced by run.sh): helm v4's Go library through tests/clients/helm_client.py.

MT_HELM_CONFIG=application/vnd.cncf.helm.config.v1+json
MT_HELM_CHART=application/vnd.cncf.helm.chart.content.v1.tar+gzip

# helm_py HOME_DIR ARGS...: helm with its cache/config/data under HOME_DIR
helm_py() {
    local h=$1
    shift
    HELM_CACHE_HOME=$h/cache HELM_CONFIG_HOME=$h/config HELM_DATA_HOME=$h/data \
        "$PY" "$HERE/helm_client.py" "$@"
}

# Two versions of one chart, packaged by helm.
step_helm_package() {
    local c=$T/helm/chart v
    mkdir -p "$c/templates" "$T/helm/dist"
    HRAND1=$(rand_hex)
    HRAND2=$(rand_hex)
    printf 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}\ndata:\n  greeting: {{ .Values.greeting }}\n' >"$c/templates/configmap.yaml"
    for v in 0.1.0 0.2.0; do
        printf 'apiVersion: v2\nname: berthtest\ndescription: Berth client suite chart\ntype: application\nversion: %s\nappVersion: "1.0"\n' "$v" >"$c/Chart.yaml"
        if [[ $v == 0.1.0 ]]; then echo "greeting: $HRAND1" >"$c/values.yaml"; else echo "greeting: $HRAND2" >"$c/values.yaml"; fi
        helm_py "$T/helm/home" package "$c" "$T/helm/dist" >"$T/helm-pkg.json" 2>"$T/helm.err" ||
            why "helm package $v: $(tail -n 3 "$T/helm.err" | tr '\n' ' ')" || return
        [[ $(jq -r .path "$T/helm-pkg.json") == "$T/helm/dist/berthtest-$v.tgz" ]] || why "helm package: $(oneline "$T/helm-pkg.json")" || return
    done
    CHART1=$T/helm/dist/berthtest-0.1.0.tgz
    CHART2=$T/helm/dist/berthtest-0.2.0.tgz
}

# helm push: oci://REG/charts/berthtest:<version>; the manifest helm writes is checked field
# by field and the chart layer byte for byte.
step_helm_push() {
    local v chart code m=$T/helm.manifest
    for v in 0.1.0 0.2.0; do
        chart=$T/helm/dist/berthtest-$v.tgz
        helm_py "$T/helm/home" push "$chart" "oci://$REG/charts" >"$T/helm-push.out" 2>"$T/helm.err" ||
            why "helm push $v: $(tail -n 3 "$T/helm.err" | tr '\n' ' ')" || return
        grep -q "^Pushed: $REG/charts/berthtest:$v\$" "$T/helm-push.out" || why "helm push $v: $(oneline "$T/helm-push.out")" || return
        HDIGEST[$v]=$(sed -n 's/^Digest: \(sha256:[0-9a-f]\{64\}\)$/\1/p' "$T/helm-push.out")
        [[ -n ${HDIGEST[$v]} ]] || why "no digest in helm push output: $(oneline "$T/helm-push.out")" || return
        code=$(http GET "http://$REG/v2/charts/berthtest/manifests/$v" "$m" "$T/helm.hdr" "${ACCEPT_ALL[@]}")
        [[ $code == 200 ]] || why "GET charts/berthtest/manifests/$v -> $code $(oneline "$m")" || return
        [[ sha256:$(sha "$m") == "${HDIGEST[$v]}" && $(header Docker-Content-Digest "$T/helm.hdr") == "${HDIGEST[$v]}" ]] ||
            why "charts/berthtest:$v hashes to sha256:$(sha "$m"), helm pushed ${HDIGEST[$v]}" || return
        [[ $(header Content-Type "$T/helm.hdr") == "$MT_OCI_MANIFEST" ]] || why "Content-Type '$(header Content-Type "$T/helm.hdr")'" || return
        jq -e --arg c "$MT_HELM_CONFIG" --arg l "$MT_HELM_CHART" --arg d "sha256:$(sha "$chart")" \
            --argjson s "$(fsize "$chart")" --arg v "$v" \
            '.schemaVersion == 2 and .config.mediaType == $c and (.layers | length) == 1
             and .layers[0].mediaType == $l and .layers[0].digest == $d and .layers[0].size == $s
             and .annotations["org.opencontainers.image.title"] == "berthtest"
             and .annotations["org.opencontainers.image.version"] == $v' "$m" >/dev/null ||
            why "helm manifest $v: $(oneline "$m")" || return
        fetch_blob charts/berthtest "sha256:$(sha "$chart")" "$T/helm.layer" || return
        cmp -s "$T/helm.layer" "$chart" || why "chart layer $v differs from the packaged chart" || return
        fetch_blob charts/berthtest "$(jq -r .config.digest "$m")" "$T/helm.config" || return
        jq -e --arg v "$v" '.name == "berthtest" and .version == $v and .apiVersion == "v2"' "$T/helm.config" >/dev/null ||
            why "helm config blob: $(oneline "$T/helm.config")" || return
    done
    code=$(http GET "http://$REG/v2/charts/berthtest/tags/list" "$T/helm-tags.json" "$T/helm.hdr")
    # lexical order is Berth's promise (distribution lists in storage order)
    local order=.tags
    [[ $REGISTRY == berth ]] || order='.tags | sort'
    jq -e "$order == [\"0.1.0\", \"0.2.0\"]" "$T/helm-tags.json" >/dev/null || why "tags/list -> $code $(oneline "$T/helm-tags.json")" || return
}

# helm pull (through `helm show`, see helm_client.py) into an empty cache: by version, by
# digest, and by chart name alone, where helm lists the tags and takes the highest version.
step_helm_pull() {
    local h=$T/helm/pull1 f
    helm_py "$h" show-chart "oci://$REG/charts/berthtest:0.1.0" >"$T/helm-show.out" 2>"$T/helm.err" ||
        why "helm show chart :0.1.0: $(tail -n 3 "$T/helm.err" | tr '\n' ' ')" || return
    grep -q "^Digest: ${HDIGEST[0.1.0]}\$" "$T/helm-show.out" || why "helm pulled another digest: $(oneline "$T/helm-show.out")" || return
    tail -n1 "$T/helm-show.out" | jq -e '.chart | test("(?m)^version: 0\\.1\\.0$")' >/dev/null || why "helm show chart: $(oneline "$T/helm-show.out")" || return
    # the downloaded archive, in helm's content cache, is the pushed chart
    f=$(find "$h/cache" -type f -name "$(sha "$CHART1")*")
    [[ -n $f ]] && cmp -s "$f" "$CHART1" || why "no cached copy of the chart identical to the pushed one: $(find "$h/cache" -type f -printf "%p ")" || return
    h=$T/helm/pull2
    helm_py "$h" show-chart "oci://$REG/charts/berthtest@${HDIGEST[0.2.0]}" >"$T/helm-show2.out" 2>"$T/helm.err" ||
        why "helm show chart @digest: $(tail -n 3 "$T/helm.err" | tr '\n' ' ')" || return
    tail -n1 "$T/helm-show2.out" | jq -e '.chart | test("(?m)^version: 0\\.2\\.0$")' >/dev/null || why "helm show chart @digest: $(oneline "$T/helm-show2.out")" || return
    h=$T/helm/pull3
    helm_py "$h" show-values "oci://$REG/charts/berthtest" >"$T/helm-show3.out" 2>"$T/helm.err" ||
        why "helm show values (latest): $(tail -n 3 "$T/helm.err" | tr '\n' ' ')" || return
    tail -n1 "$T/helm-show3.out" | jq -e --arg r "greeting: $HRAND2" '.values | contains($r)' >/dev/null ||
        why "helm resolved another version than 0.2.0: $(oneline "$T/helm-show3.out")" || return
    f=$(find "$h/cache" -type f -name "$(sha "$CHART2")*")
    [[ -n $f ]] && cmp -s "$f" "$CHART2" || why "no cached copy of chart 0.2.0 identical to the pushed one" || return
}

declare -A HDIGEST=()
