#!/usr/bin/env bash
# Real-client test: pushes and pulls through Berth with the clients people use, and
# checks every byte by digest:
#   docker (dockerd + classic builder; push, pull, run, cross-repo mount, a two-platform
#   manifest list), skopeo, podman, buildah, containerd's ctr, oras (PyPI oras-py:
#   artifacts, empty config, artifactType, referrers) and helm (helm v4's Go library
#   through the PyPI package helm-sdkpy: package, push, pull); then docker through two
#   replicas on PostgreSQL and S3 (push through one, pull through the other). The Rust oci-client
#   crate is tested by tests/oci_client.rs (cargo test).
#
#   bash tests/clients/run.sh            # against target/release/berth
#   BERTH_BIN=/path/to/berth bash tests/clients/run.sh
#   REGISTRY=distribution bash tests/clients/run.sh   # against CNCF distribution (reference)
#
# Environment:
#   BERTH_BIN              berth binary (default: target/release/berth)
#   REGISTRY               berth (default) | distribution
#   DOCKER_STORAGE_DRIVER  passed to dockerd as --storage-driver (default: dockerd's choice)
#   CLIENTS_VENV           venv for the Python clients (default: target/clients-venv)
#   CLIENT_LOGS_DIR        if set, registry/dockerd/containerd logs are copied there at exit
#   BERTH_LOG              RUST_LOG for berth (default: info); debug to capture a failing exchange
#   CLIENTS_KEEP=1         keep the temp dir (printed at exit) for a look at what failed
#   CI=true                a tool that is missing and cannot be installed is a FAIL, not a SKIP
#
# Missing tools are installed from Debian's packages (apt-get) and PyPI (pip, into the venv).
# Everything runs under one temp dir and on loopback; whatever was started is stopped by PID.
#
# Output: one line per step, "PASS name" / "FAIL name: why" / "SKIP name: why",
# then "N passed, N failed". Exit status 1 if anything failed.
# shellcheck source-path=SCRIPTDIR/../..
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
HERE=$ROOT/tests/clients
REGISTRY=${REGISTRY:-berth}
BERTH_BIN=${BERTH_BIN:-$ROOT/target/release/berth}
CI=${CI:-false}
export DEBIAN_FRONTEND=noninteractive
export DOCKER_BUILDKIT=0

# Short path on purpose: containerd's sockets live under it (unix socket paths <= 107 bytes).
T=$(mktemp -d /tmp/berth-clients.XXXXXX)
chmod 755 "$T"
export DOCKER_CONFIG=$T/docker-client # keep docker's client config away from ~/.docker
export DOCKER_HOST=unix://$T/docker/docker.sock
export REGISTRY_AUTH_FILE=$T/auth.json # skopeo, podman, buildah
mkdir -p "$DOCKER_CONFIG"
echo '{"auths":{}}' >"$REGISTRY_AUTH_FILE" # podman and buildah want it to exist
CONTAINERD_SOCK=$T/docker/containerd/containerd.sock

REG_PID=""
TREG_PID=""   # the second berth, in auth mode token
TLSREG_PID="" # the third, in token mode over HTTPS
RX_PID=""     # the webhook receiver
DOCKERD_PID=""
CONTAINERD_PID=""
STARTED=$(date +%s)

# shellcheck source=tests/clients/lib.sh
source "$HERE/lib.sh"
# shellcheck source=tests/clients/docker.sh
source "$HERE/docker.sh"
# shellcheck source=tests/clients/skopeo.sh
source "$HERE/skopeo.sh"
# shellcheck source=tests/clients/podman.sh
source "$HERE/podman.sh"
# shellcheck source=tests/clients/containerd.sh
source "$HERE/containerd.sh"
# shellcheck source=tests/clients/oras.sh
source "$HERE/oras.sh"
# shellcheck source=tests/clients/helm.sh
source "$HERE/helm.sh"
# shellcheck source=tests/clients/auth.sh
source "$HERE/auth.sh"
# shellcheck source=tests/clients/webhooks.sh
source "$HERE/webhooks.sh"
# shellcheck source=tests/support/servers.sh
source "$ROOT/tests/support/servers.sh"
# shellcheck source=tests/clients/replicas.sh
source "$HERE/replicas.sh"
# servers.sh set its own exit trap; this suite's cleanup stops its servers.
trap cleanup EXIT

# ---------------------------------------------------------------- main
if [[ $REGISTRY == berth ]]; then echo "registry: berth ($BERTH_BIN)" >&2; else echo "registry: $REGISTRY" >&2; fi
T0=$(date +%s)
install_missing
echo "tools ready in $(($(date +%s) - T0)) s" >&2
run tools_base "" step_tools_base
run tools_docker "" step_tools_docker
run tools_skopeo "" step_tools_skopeo
run tools_podman "" step_tools_podman
run tools_ctr "" step_tools_ctr
run tools_python "" step_tools_python
run registry_start "tools_base" step_registry
run dockerd_start "tools_docker" step_dockerd
if [[ $REGISTRY == berth ]]; then run webhook_receiver "registry_start tools_python" step_webhook_receiver; fi

# docker: one image, pushed, mounted into another repository, pulled back, run
run docker_build "registry_start dockerd_start" step_docker_build
run docker_push "docker_build" step_docker_push
if [[ $REGISTRY == berth ]]; then run webhook_docker_push "webhook_receiver docker_push" step_webhook_docker_push; fi
run docker_registry_content "docker_push" step_docker_registry_content
if [[ $REGISTRY == berth ]]; then run docker_push_in_management_api "docker_push" step_docker_push_in_management_api; fi
run docker_tags_catalog "docker_push" step_docker_tags
run docker_push_mount "docker_push" step_docker_push_mount
run docker_rmi "docker_build" step_docker_rmi
run docker_pull "docker_push docker_rmi" step_docker_pull
run docker_run "docker_pull" step_docker_run
run docker_pull_by_digest "docker_push_mount docker_pull" step_docker_pull_digest
# docker manifest: a two-platform list of the image above and a second one
run docker_build_arm64 "docker_push" step_docker_build_arm64
run docker_manifest_push "docker_build_arm64" step_docker_manifest_push
run docker_manifest_content "docker_manifest_push" step_docker_manifest_content
run docker_manifest_inspect "docker_manifest_push" step_docker_manifest_inspect
run docker_manifest_pull "docker_manifest_push" step_docker_manifest_pull

# skopeo: OCI layout <-> registry, inspect, tags, copy between repositories, delete
run oci_layout "tools_base tools_skopeo" step_oci_layout
run skopeo_push "registry_start oci_layout" step_skopeo_push
run skopeo_inspect "skopeo_push" step_skopeo_inspect
run skopeo_inspect_docker_image "tools_skopeo docker_push" step_skopeo_inspect_docker_image
run skopeo_list_tags "skopeo_push" step_skopeo_list_tags
run skopeo_copy_repos "skopeo_push" step_skopeo_copy_repos
run skopeo_copy_dir "skopeo_copy_repos" step_skopeo_copy_dir
run skopeo_delete "skopeo_copy_repos" step_skopeo_delete
if [[ $REGISTRY == berth ]]; then run webhook_skopeo_delete "webhook_receiver skopeo_delete" step_webhook_skopeo_delete; fi

# podman and buildah (vfs storage under the temp dir)
run podman_build "registry_start tools_podman" step_podman_build
run podman_push "podman_build" step_podman_push
run podman_rmi "podman_build" step_podman_rmi
run podman_pull "podman_push podman_rmi" step_podman_pull
run podman_run "podman_pull" step_podman_run
run podman_pull_docker_image "podman_rmi docker_push" step_podman_pull_docker_image
run buildah_build "registry_start tools_podman" step_buildah_build
run buildah_push "buildah_build" step_buildah_push
run buildah_pull "buildah_push" step_buildah_pull

# containerd's ctr, in its own namespace of the containerd dockerd uses
run ctr_pull "dockerd_start tools_ctr docker_push" step_ctr_pull
run ctr_run "ctr_pull" step_ctr_run
run ctr_push "ctr_pull" step_ctr_push
run ctr_pull_push_index "ctr_pull docker_manifest_push" step_ctr_index

# oras (oras-py): an artifact, referrers attached to the docker image
run oras_push "registry_start tools_python" step_oras_push
run oras_pull "oras_push" step_oras_pull
run oras_attach "tools_python docker_push" step_oras_attach
run oras_referrers "oras_attach" step_oras_referrers

# helm (helm v4's registry client): chart package, push, pull
run helm_package "registry_start tools_python" step_helm_package
run helm_push "helm_package" step_helm_push
run helm_pull "helm_push" step_helm_pull

if [[ $REGISTRY == berth ]]; then
    run token_registry_start "tools_base" step_token_registry
    run token_docker_login_push_pull "token_registry_start docker_push" step_token_docker
    run token_docker_scoped_token "token_docker_login_push_pull" step_token_docker_scoped
    run token_mount_follows_challenge "token_docker_login_push_pull" step_token_mount_challenge
    run token_skopeo_creds "token_registry_start oci_layout" step_token_skopeo
    run token_skopeo_https "token_registry_start oci_layout" step_token_tls
    run replicas_start "tools_base" step_replicas_start
    run replicas_docker_push_pull "replicas_start docker_push" step_replicas_docker
fi

if ((FAILED)); then
    {
        echo "---- registry log (last 30 lines) ----"
        tail -n 30 "$T/registry.log" 2>/dev/null
        if [[ -f $T/dockerd.log ]]; then
            echo "---- dockerd errors (last 20) ----"
            grep -E 'level=(error|warning)' "$T/dockerd.log" | grep -v -E 'blkio|cgroup' | tail -n 20
        fi
    } >&2 || true
fi
echo "slowest steps (s): $(printf '%s\n' "${TIMES[@]}" | sort -rn | head -n 6 | paste -sd, - | sed 's/,/, /g')" >&2
echo "time: $(($(date +%s) - STARTED)) s; skipped: $SKIPPED" >&2
echo "$PASSED passed, $FAILED failed"
((FAILED == 0))
