"""Checks the container and Kubernetes examples (examples/) against each
other and against the binary, and prints the Deployment's environment for
tests that start Berth with it.

  python3 tests/deploy/examples.py check BERTH   # exits non-zero on a problem
  python3 tests/deploy/examples.py env           # NAME=value lines, secrets resolved
"""

import os
import re
import subprocess
import sys
import tempfile

import yaml

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
K8S = os.path.join(ROOT, "examples", "kubernetes")
DOCKERFILE = os.path.join(ROOT, "examples", "Dockerfile")
# Variables the binary reads that are not configuration keys.
NOT_CONFIG = {"BERTH_ADMIN_PASSWORD"}

problems = []


def problem(msg):
    problems.append(msg)


def load(name):
    with open(os.path.join(K8S, name)) as f:
        return yaml.safe_load(f)


def container():
    d = load("deployment.yaml")
    return d, d["spec"]["template"]["spec"]["containers"][0]


def secret_values():
    return load("secret.yaml")["stringData"]


def deployment_env():
    """The container's variables, secrets resolved, in order."""
    _, c = container()
    secrets = secret_values()
    out = []
    for e in c["env"]:
        if "value" in e:
            out.append((e["name"], str(e["value"])))
            continue
        ref = e["valueFrom"]["secretKeyRef"]
        if ref["name"] != load("secret.yaml")["metadata"]["name"]:
            problem(f"{e['name']}: secret {ref['name']!r} is not the example's Secret")
        elif ref["key"] not in secrets:
            problem(f"{e['name']}: key {ref['key']!r} is not in secret.yaml")
        else:
            out.append((e["name"], secrets[ref["key"]]))
    return out


def dockerfile():
    """(uid of USER, ENV pairs, ENTRYPOINT, CMD) of the final stage."""
    with open(DOCKERFILE) as f:
        text = f.read().replace("\\\n", " ")
    final = text.split("\nFROM ")[-1]
    user = re.search(r"^USER (\d+)", final, re.M)
    env = []
    for line in re.findall(r"^ENV (.+)$", final, re.M):
        env += re.findall(r"(\w+)=(\S+)", line)
    entry = re.search(r"^ENTRYPOINT (.+)$", final, re.M)
    cmd = re.search(r"^CMD (.+)$", final, re.M)
    return (
        int(user.group(1)) if user else None,
        env,
        yaml.safe_load(entry.group(1)) if entry else None,
        yaml.safe_load(cmd.group(1)) if cmd else None,
    )


def config_check(berth, env, what):
    """`berth config check` on an empty file with `env`: every variable
    must be a known key with a valid value."""
    with tempfile.NamedTemporaryFile("w", suffix=".toml") as f:
        run_env = {k: v for k, v in os.environ.items() if not k.startswith("BERTH_")}
        run_env.update({k: v for k, v in env if k not in NOT_CONFIG})
        r = subprocess.run(
            [berth, "config", "check", f.name], env=run_env, capture_output=True, text=True
        )
        if r.returncode != 0:
            problem(f"{what}: berth config check refused it: {r.stderr.strip()}")


def check(berth):
    d, c = container()
    spec = d["spec"]
    pod = spec["template"]["spec"]
    env = dict(deployment_env())

    # One process per database today: a rolling update would start the new
    # pod while the old one holds the database.
    strategy = spec.get("strategy", {})
    if spec["replicas"] < 2 or strategy.get("type") != "RollingUpdate":
        problem("the Deployment must run several replicas with the RollingUpdate strategy")
    if strategy.get("rollingUpdate", {}).get("maxUnavailable") != 0:
        problem("a rolling update must keep every replica serving (maxUnavailable: 0)")
    if c["readinessProbe"]["httpGet"]["path"] != "/readyz":
        problem("readiness must probe /readyz (database and bucket reachable)")
    if c["livenessProbe"]["httpGet"]["path"] != "/healthz":
        problem("liveness must probe /healthz (the process is up)")
    port = int(env["BERTH_SERVER__ADDR"].rsplit(":", 1)[1])
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    if ports.get("http") != port:
        problem(f"containerPort http {ports.get('http')} is not the listen port {port}")
    svc = load("service.yaml")["spec"]
    if svc["ports"][0]["targetPort"] not in ports or svc["selector"] != spec["selector"]["matchLabels"]:
        problem("the Service does not reach the Deployment's http port")
    drain = int(env.get("BERTH_SERVER__SHUTDOWN_TIMEOUT_SECS", "30"))
    if pod["terminationGracePeriodSeconds"] <= drain:
        problem("terminationGracePeriodSeconds must exceed server.shutdown_timeout_secs")
    mounts = {m["mountPath"] for m in c["volumeMounts"]}
    if env["BERTH_STORAGE__DATA_DIR"] not in mounts:
        problem("the data directory is not a mounted volume (the root filesystem is read-only)")

    uid, denv, entry, cmd = dockerfile()
    if uid is None or uid == 0:
        problem("the Dockerfile's final stage must switch to a non-root numeric USER")
    if pod["securityContext"].get("runAsUser") != uid:
        problem(f"runAsUser {pod['securityContext'].get('runAsUser')} is not the image's user {uid}")
    if entry != ["/usr/local/bin/berth"] or cmd != ["serve"] or c["args"] != ["serve"]:
        problem("the image must run `berth serve` (ENTRYPOINT berth, CMD and args serve)")
    if dict(denv).get("BERTH_STORAGE__DATA_DIR") != env["BERTH_STORAGE__DATA_DIR"]:
        problem("the image and the Deployment disagree on the data directory")

    listed = set(load("kustomization.yaml")["resources"])
    present = {n for n in os.listdir(K8S) if n.endswith(".yaml") and n != "kustomization.yaml"}
    if listed != present:
        problem(f"kustomization.yaml lists {sorted(listed)}, the directory holds {sorted(present)}")

    config_check(berth, list(env.items()), "the Deployment's environment")
    config_check(berth, denv, "the Dockerfile's ENV")


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "check":
        check(sys.argv[2])
    elif len(sys.argv) == 2 and sys.argv[1] == "env":
        for k, v in deployment_env():
            print(f"{k}={v}")
    else:
        sys.exit(__doc__)
    for p in problems:
        print(f"examples: {p}", file=sys.stderr)
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
