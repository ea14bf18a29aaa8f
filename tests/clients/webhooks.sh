# shellcheck shell=bash
# Webhook steps (sourced by run.sh, Berth only): a receiver on loopback
# collects deliveries for the real clients' pushes and deletions and checks
# each signature with the secret the API gave.

# The receiver: verifies X-Berth-Signature-256 with hmac.compare_digest and
# appends one JSON line per delivery (headers that matter, body, valid).
write_receiver() {
    cat >"$T/receiver.py" <<'PY'
import hashlib, hmac, json, sys
from http.server import BaseHTTPRequestHandler, HTTPServer

secret = open(sys.argv[2], "rb").read().strip()
out = open(sys.argv[3], "a", buffering=1)

class Hook(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        want = "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()
        got = self.headers.get("X-Berth-Signature-256", "")
        out.write(json.dumps({"valid": hmac.compare_digest(want, got),
                              "event_id": self.headers.get("X-Berth-Event-Id"),
                              "event": json.loads(body)}) + "\n")
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass

HTTPServer(("127.0.0.1", int(sys.argv[1])), Hook).serve_forever()
PY
}

step_webhook_receiver() {
    local code port
    port=$(free_port) || why "no free port" || return
    RX_URL=http://127.0.0.1:$port/hook
    code=$(curl -s -o "$T/hook.json" -w '%{http_code}' -X POST "http://$REG/api/v1/webhooks" \
        -H 'Content-Type: application/json' \
        -d "{\"url\":\"$RX_URL\",\"events\":[\"artifact.pushed\",\"artifact.deleted\"]}")
    [[ $code == 201 ]] || why "create webhook -> $code $(oneline "$T/hook.json")" || return
    jq -r .secret "$T/hook.json" >"$T/hook.secret"
    [[ -s $T/hook.secret ]] || why "no secret in $(oneline "$T/hook.json")" || return
    write_receiver
    : >"$T/deliveries.jsonl"
    python3 "$T/receiver.py" "$port" "$T/hook.secret" "$T/deliveries.jsonl" >"$T/receiver.log" 2>&1 &
    RX_PID=$!
    local i
    for ((i = 0; i < 50; i++)); do
        (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
        sleep 0.1
    done
    why "the receiver did not listen: $(oneline "$T/receiver.log")"
}

# wait_delivery JQ_FILTER: waits up to 20 s for a delivery the filter selects.
wait_delivery() {
    local i
    for ((i = 0; i < 200; i++)); do
        jq -e -s "map(select($1)) | length > 0" "$T/deliveries.jsonl" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    return 1
}

step_webhook_docker_push() {
    local repo=${IMG#*/} tag
    tag=${repo##*:}
    repo=${repo%:*}
    wait_delivery ".event.type == \"io.berth.artifact.pushed\" and .event.data.repository == \"$repo\"
                   and .event.data.tag == \"$tag\" and .event.data.digest == \"$PUSH_DIGEST\"" ||
        why "no artifact.pushed for $repo:$tag@$PUSH_DIGEST: $(oneline "$T/deliveries.jsonl")" || return
    jq -e -s 'all(.valid)' "$T/deliveries.jsonl" >/dev/null || why "a delivery had a bad signature" || return
    jq -e -s --arg r "$REG/$repo@$PUSH_DIGEST" 'map(select(.event.data.digest != null)) | any(.event.data.reference == $r)' \
        "$T/deliveries.jsonl" >/dev/null || why "no pull reference $REG/$repo@$PUSH_DIGEST" || return
}

step_webhook_skopeo_delete() {
    wait_delivery ".event.type == \"io.berth.artifact.deleted\" and .event.data.repository == \"team/skopeo\"
                   and .event.data.digest == \"$OCI_DIGEST\"" ||
        why "no artifact.deleted for team/skopeo@$OCI_DIGEST: $(oneline "$T/deliveries.jsonl")" || return
    jq -e -s 'all(.valid)' "$T/deliveries.jsonl" >/dev/null || why "a delivery had a bad signature" || return
    # Exactly once by event id.
    jq -e -s 'map(.event_id) | length == (unique | length)' "$T/deliveries.jsonl" >/dev/null ||
        why "an event was delivered twice" || return
}
