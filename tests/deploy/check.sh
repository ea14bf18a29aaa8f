#!/usr/bin/env bash
# Checks the deployment examples (examples/):
#   - the systemd unit passes `systemd-analyze verify` without a warning,
#     and the configuration it points to passes `berth config check` with
#     the unit's environment;
#   - the Dockerfile and the Kubernetes manifests agree with each other
#     (user, ports, probes, secrets, data directory, drain time), and every
#     variable they set is a configuration key the binary accepts.
# tests/backends/run.sh starts Berth with the Deployment's environment on
# its PostgreSQL and S3 servers. The image itself is not built here: the
# test machines cannot pull base images.
#
#   bash tests/deploy/check.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
berth="${BERTH_BIN:-$PWD/target/release/berth}"
[ -x "$berth" ] || cargo build --release --bin berth

export DEBIAN_FRONTEND=noninteractive
if ! command -v systemd-analyze >/dev/null; then
    echo "installing systemd (for systemd-analyze) from Debian's packages"
    apt-get install -y --no-install-recommends systemd >/dev/null 2>&1 ||
        { apt-get update >/dev/null && apt-get install -y --no-install-recommends systemd >/dev/null; }
fi
if ! python3 -c 'import yaml' 2>/dev/null; then
    echo "installing PyYAML from PyPI"
    python3 -m pip install --quiet pyyaml
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# The unit as installed, with the binary and configuration of this tree.
sed -e "s#/usr/local/bin/berth#$berth#" -e "s#/etc/berth/berth.toml#$PWD/config/production.toml#" \
    examples/berth.service >"$work/berth.service"
out="$(systemd-analyze verify "$work/berth.service" 2>&1)" ||
    { echo "systemd-analyze verify failed: $out" >&2; exit 1; }
[ -z "$out" ] || { echo "systemd-analyze verify warned: $out" >&2; exit 1; }
mapfile -t unit_env < <(sed -n 's/^Environment=//p' examples/berth.service)
env "${unit_env[@]}" "$berth" config check config/production.toml >/dev/null
echo "systemd unit: verified, its configuration and environment accepted"

python3 tests/deploy/examples.py check "$berth"
echo "Dockerfile and Kubernetes manifests: consistent, every variable accepted"
