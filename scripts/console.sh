#!/usr/bin/env bash
# The web console's checks (called by scripts/test.sh, or run alone):
#   1. npm ci when node_modules is missing or older than package-lock.json
#   2. type check and Vitest unit tests
#   3. rebuild console/dist and fail if it differs from the committed build
#      (the binary embeds the committed files)
#   4. regenerate the typed API client from a running berth's
#      /api/v1/openapi.json and fail if it differs from the committed one
#   5. end-to-end tests: Debian's chromium (playwright-core) against a live
#      berth in token mode, with skopeo (screenshots go to a temporary
#      directory; CONSOLE_SCREENSHOTS=docs/screenshots refreshes the committed ones)
# Under CI=true a missing tool is a failure; elsewhere the steps that need it
# are skipped with a message.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> console: %s\n' "$*"; }
missing() {
    if [[ ${CI:-} == true ]]; then
        echo "console: $1 is missing: $2" >&2
        exit 1
    fi
    echo "console: SKIPPED ($1 is missing: $2)"
    exit 0
}
apt_install() {
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y --no-install-recommends "$@" >/dev/null 2>&1 ||
        { apt-get update >/dev/null && apt-get install -y --no-install-recommends "$@" >/dev/null; }
}

command -v node >/dev/null && command -v npm >/dev/null ||
    missing "Node.js" "install Node.js 20.19 or newer with npm"
node -e 'const [a,b]=process.versions.node.split(".").map(Number); process.exit(a>20||(a===20&&b>=19)?0:1)' ||
    missing "Node.js >= 20.19" "found $(node --version)"

step "npm ci"
if [[ ! -f console/node_modules/.package-lock.json || console/package-lock.json -nt console/node_modules/.package-lock.json ]]; then
    (cd console && npm ci --no-audit --no-fund)
else
    echo "node_modules up to date"
fi

step "type check and unit tests (Vitest)"
(cd console && npx tsc --noEmit && npx vitest run)

step "rebuild console/dist and compare with the committed build"
(cd console && npx vite build --logLevel warn)
if ! git diff --exit-code --stat -- console/dist || [[ -n $(git status --porcelain -- console/dist) ]]; then
    git status --short -- console/dist
    echo "console/dist differs from a rebuild of console/src: run 'npm run build' in console/ and commit console/dist" >&2
    exit 1
fi

BERTH_BIN=${BERTH_BIN:-$PWD/target/release/berth}
[[ -x $BERTH_BIN ]] || cargo build --release --bin berth
export BERTH_BIN

step "regenerate the typed API client and compare"
tmp=$(mktemp -d)
"$BERTH_BIN" serve --addr 127.0.0.1:0 --data-dir "$tmp/data" >"$tmp/out" 2>"$tmp/log" &
pid=$!
trap 'kill "$pid" 2>/dev/null || true; rm -rf "$tmp"' EXIT
for ((i = 0; i < 100; i++)); do
    [[ -s $tmp/out ]] && break
    sleep 0.1
done
url=$(sed -n 's/^berth listening on //p' "$tmp/out")
[[ -n $url ]] || { echo "berth did not start: $(tail -n 5 "$tmp/log")" >&2; exit 1; }
(cd console && BERTH_URL=$url node scripts/gen-api.mjs)
kill "$pid"
wait "$pid" 2>/dev/null || true
if ! git diff --exit-code --stat -- console/src/api/schema.d.ts; then
    echo "the API changed: the regenerated console/src/api/schema.d.ts differs; commit it (and fix what the type check then reports)" >&2
    exit 1
fi

step "end-to-end tests (chromium, skopeo, berth in token mode)"
if [[ ! -x /usr/bin/chromium ]]; then
    apt_install chromium || missing "chromium" "apt-get install chromium failed"
fi
if ! command -v skopeo >/dev/null; then
    apt_install skopeo || missing "skopeo" "apt-get install skopeo failed"
fi
node console/e2e/run.mjs
