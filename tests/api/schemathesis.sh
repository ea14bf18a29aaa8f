#!/usr/bin/env bash
# Runs schemathesis (PyPI) against a fresh `berth serve` with the OpenAPI
# document the server generates, and fails on any server error, status code,
# content type, header or body that the document does not allow.
#
# Usage: BERTH_BIN=target/release/berth bash tests/api/schemathesis.sh
set -euo pipefail
cd "$(dirname "$0")/../.."

BERTH_BIN=${BERTH_BIN:-target/release/berth}
VENV=target/schemathesis-venv
SCHEMATHESIS_VERSION=4.32.5

if [ ! -x "$VENV/bin/schemathesis" ]; then
  echo "installing schemathesis $SCHEMATHESIS_VERSION into $VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
fi

work=$(mktemp -d)
berth_pid=""
cleanup() {
  if [ -n "$berth_pid" ]; then kill "$berth_pid" 2>/dev/null || true; wait "$berth_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

"$BERTH_BIN" serve --addr 127.0.0.1:0 --data-dir "$work/data" >"$work/out" 2>"$work/err" &
berth_pid=$!
for _ in $(seq 100); do
  grep -q "berth listening on" "$work/out" 2>/dev/null && break
  sleep 0.1
done
url=$(sed -n 's/^berth listening on //p' "$work/out")
[ -n "$url" ] || { echo "berth did not start"; cat "$work/err"; exit 1; }

# Seed an image so that the operations on existing namespaces, repositories,
# tags and artifacts are exercised too (the document's examples name them).
python3 - "$url" <<'PY'
import hashlib, json, sys, urllib.request
url = sys.argv[1]
def req(method, path, body=b"", ctype=None):
    r = urllib.request.Request(url + path, data=body, method=method)
    if ctype:
        r.add_header("Content-Type", ctype)
    with urllib.request.urlopen(r) as resp:
        return resp.status
def blob(data):
    d = "sha256:" + hashlib.sha256(data).hexdigest()
    assert req("POST", f"/v2/acme/web/blobs/uploads/?digest={d}", data) == 201
    return d, len(data)
cfg, cfg_len = blob(b'{"architecture":"amd64","os":"linux"}')
layer, layer_len = blob(b"layer bytes")
m = json.dumps({
    "schemaVersion": 2,
    "mediaType": "application/vnd.oci.image.manifest.v1+json",
    "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cfg, "size": cfg_len},
    "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": layer, "size": layer_len}],
}).encode()
for tag in ("1", "2"):
    assert req("PUT", f"/v2/acme/web/manifests/{tag}", m, "application/vnd.oci.image.manifest.v1+json") == 201
print("seeded acme/web:1 and :2")
PY

"$VENV/bin/schemathesis" run "$url/api/v1/openapi.json" --url "$url" \
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,response_headers_conformance \
  --max-examples 50 --seed 20261126 --no-color
echo "schemathesis: clean"
