# shellcheck shell=bash
# Token-mode steps (access control), sourced by run.sh: a second berth with
# [auth] mode = "token" over plain HTTP and a third over HTTPS with a test CA.
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
    first_line "$TREG_PID" "$T/token-registry.out" "$T/token-registry.log" "berth (token)" || return
    line=$LINE
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
    first_line "$TLSREG_PID" "$T/tls-registry.out" "$T/tls-registry.log" "berth (TLS)" || return
    line=$LINE
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

# A client that follows the challenge literally (as oci-client does): the
# mount's 401 names the scopes it needs, the client asks /auth/token for
# exactly those, and the mount then succeeds (201). A token for the
# destination alone gets an upload session instead (202).
step_token_mount_challenge() {
    local dg code chal scopes tok args=() s
    code=$(http GET "http://$TREG/v2/team/app/manifests/1" "$T/tm.body" "$T/tm.hdr" \
        -u "admin:$TOKEN_ADMIN_PW" "${ACCEPT_ALL[@]}")
    [[ $code == 200 ]] || why "GET team/app:1 as admin -> $code" || return
    dg=$(jq -r '.layers[0].digest' "$T/tm.body")
    [[ $dg == sha256:* ]] || why "no layer digest in team/app:1" || return
    code=$(http POST "http://$TREG/v2/team/mounted/blobs/uploads/?mount=$dg&from=team/app" "$T/tm.body" "$T/tm.hdr")
    [[ $code == 401 ]] || why "anonymous mount -> $code, expected 401" || return
    chal=$(header WWW-Authenticate "$T/tm.hdr")
    [[ $chal =~ scope=\"([^\"]*)\" ]] || why "mount challenge without a scope: '$chal'" || return
    scopes=${BASH_REMATCH[1]}
    [[ " $scopes " == *" repository:team/mounted:pull,push "* && " $scopes " == *" repository:team/app:pull "* ]] ||
        why "mount challenge scopes '$scopes' do not name the destination and the source" || return
    for s in $scopes; do args+=(--data-urlencode "scope=$s"); done
    tok=$(curl -sS -G -u "admin:$TOKEN_ADMIN_PW" --data-urlencode service=berth "${args[@]}" \
        "http://$TREG/auth/token" | jq -r .token)
    [[ -n $tok && $tok != null ]] || why "no token for the challenged scopes" || return
    code=$(http POST "http://$TREG/v2/team/mounted/blobs/uploads/?mount=$dg&from=team/app" "$T/tm.body" "$T/tm.hdr" \
        -H "Authorization: Bearer $tok")
    [[ $code == 201 ]] || why "mount with the challenged scopes -> $code, expected 201" || return
    tok=$(curl -sS -G -u "admin:$TOKEN_ADMIN_PW" --data-urlencode service=berth \
        --data-urlencode "scope=repository:team/mounted2:pull,push" "http://$TREG/auth/token" | jq -r .token)
    code=$(http POST "http://$TREG/v2/team/mounted2/blobs/uploads/?mount=$dg&from=team/app" "$T/tm.body" "$T/tm.hdr" \
        -H "Authorization: Bearer $tok")
    [[ $code == 202 ]] || why "mount with a token lacking the source -> $code, expected 202" || return
}
