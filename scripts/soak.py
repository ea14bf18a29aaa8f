#!/usr/bin/env python3
"""Load soak: drives a real `berth serve` with mixed traffic and checks it.

Started by scripts/soak.sh (which builds target/release/berth first); see
README "Release checks". Standard library only.

The server runs on 127.0.0.1, port 0, with a fresh data directory and a short
GC grace period. SOAK_CONCURRENCY workers loop over a weighted mix of
operations for SOAK_SECONDS, while a GC thread starts an online garbage
collection every SOAK_GC_EVERY seconds (every other one with
delete_untagged) and a sampler reads the server's RSS, threads and open
files from /proc/<pid>/status:

  push    an image manifest (config + 1-3 layers, some shared by every
          repository, some up to 8 MiB; monolithic, POST+PUT or chunked
          PATCH uploads, cross-repository mounts), or an index of two such
          manifests, under a new tag
  pull    an acknowledged artifact: every manifest by tag and by digest and
          every blob, each checked against its digest; sometimes a Range GET
          checked against the full blob
  list    tags/list of a repository (must contain every acknowledged tag),
          _catalog (must contain every repository), the management API
  delete  an artifact by digest or its tag; then it must be gone
  blob    a standalone blob: upload, HEAD, DELETE, then GET must be 404

Any unexpected status, digest mismatch or missing item is an error. At the
end every acknowledged artifact is pulled and checked again, before and
after a few more GC runs, which must then have reclaimed everything (the offline
`berth gc --dry-run`, which recomputes every counter, must find nothing left
to delete); the server is stopped with SIGTERM (by PID) and `berth fsck`
must find the data directory clean. Exit status 1 on any error.

Environment: SOAK_SECONDS (600), SOAK_CONCURRENCY (8), SOAK_GC_EVERY (15),
SOAK_GC_GRACE (10, the server's gc.grace_period_secs), SOAK_RSS_EVERY (5),
SOAK_MAX_LIVE (150: above this many live artifacts a push becomes a delete,
so that the data directory stays bounded), SOAK_SEED (random), SOAK_KEEP=1 keeps the data directory and server log,
BERTH_BIN (target/release/berth).
"""

import hashlib
import http.client
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

SECONDS = float(os.environ.get("SOAK_SECONDS", "600"))
CONCURRENCY = int(os.environ.get("SOAK_CONCURRENCY", "8"))
GC_EVERY = float(os.environ.get("SOAK_GC_EVERY", "15"))
GC_GRACE = int(os.environ.get("SOAK_GC_GRACE", "10"))
RSS_EVERY = float(os.environ.get("SOAK_RSS_EVERY", "5"))
MAX_LIVE = int(os.environ.get("SOAK_MAX_LIVE", "150"))
SEED = int(os.environ.get("SOAK_SEED", str(random.randrange(1 << 32))))
KEEP = os.environ.get("SOAK_KEEP") == "1"
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BERTH = os.environ.get("BERTH_BIN", os.path.join(ROOT, "target", "release", "berth"))

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
REPOS = [f"ns{n}/app{a}" for n in range(3) for a in range(4)]
WEIGHTS = {"push": 30, "pull": 40, "list": 12, "delete": 12, "blob": 6}
CHUNK = 1 << 20


def sha256(b):
    return "sha256:" + hashlib.sha256(b).hexdigest()


class SoakError(Exception):
    pass


# ---------------------------------------------------------------------------
# Results


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.latency = {}  # operation -> [seconds]
        self.requests = {}  # "METHOD kind" -> [seconds]
        self.errors = []
        self.notes = {}  # counters: retries, reconnects, gc results, ...

    def op(self, name, seconds):
        with self.lock:
            self.latency.setdefault(name, []).append(seconds)

    def request(self, kind, seconds):
        with self.lock:
            self.requests.setdefault(kind, []).append(seconds)

    def error(self, what):
        with self.lock:
            self.errors.append(f"{time.strftime('%H:%M:%S')} {what}")
        print(f"ERROR {what}", flush=True)

    def note(self, key, n=1):
        with self.lock:
            self.notes[key] = self.notes.get(key, 0) + n


STATS = Stats()


def percentile(sorted_values, p):
    if not sorted_values:
        return 0.0
    k = min(len(sorted_values) - 1, max(0, int(round(p / 100 * (len(sorted_values) - 1)))))
    return sorted_values[k]


def table(title, data, elapsed):
    print(f"\n{title}")
    print(f"  {'':<24}{'count':>8}{'per s':>8}{'p50 ms':>9}{'p90 ms':>9}{'p99 ms':>9}{'max ms':>9}")
    for name in sorted(data):
        v = sorted(data[name])
        ms = [percentile(v, p) * 1000 for p in (50, 90, 99)] + [v[-1] * 1000]
        print(f"  {name:<24}{len(v):>8}{len(v) / elapsed:>8.1f}" + "".join(f"{x:>9.1f}" for x in ms))


# ---------------------------------------------------------------------------
# HTTP


class Client:
    """One keep-alive connection; every request is timed by kind."""

    def __init__(self, addr):
        self.host, self.port = addr.rsplit(":", 1)
        self.conn = None

    def request(self, method, path, body=None, headers=None, kind=None):
        headers = dict(headers or {})
        for attempt in (0, 1):
            fresh = self.conn is None
            if fresh:
                self.conn = http.client.HTTPConnection(self.host, int(self.port), timeout=120)
            t0 = time.monotonic()
            try:
                self.conn.request(method, path, body=body, headers=headers)
                r = self.conn.getresponse()
                data = r.read()
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError) as e:
                self.conn.close()
                self.conn = None
                # A kept-alive connection the server closed: reconnect once,
                # as every HTTP client does. A fresh one failing is an error.
                if fresh or attempt == 1:
                    raise SoakError(f"{method} {path}: connection failed: {e!r}")
                STATS.note("reconnects")
                continue
            STATS.request(kind or f"{method} {path_kind(path)}", time.monotonic() - t0)
            if r.getheader("connection", "").lower() == "close":
                self.conn.close()
                self.conn = None
            return r.status, {k.lower(): v for k, v in r.getheaders()}, data
        raise AssertionError("unreachable")

    def expect(self, want, method, path, body=None, headers=None, kind=None):
        status, h, data = self.request(method, path, body, headers, kind)
        wants = want if isinstance(want, tuple) else (want,)
        if status not in wants:
            raise SoakError(f"{method} {path}: status {status}, want {want}: {data[:300]!r}")
        return status, h, data


def path_kind(path):
    u = urllib.parse.urlsplit(path)
    p = u.path
    if re.search(r"/blobs/uploads/?$", p):
        if "mount=" in u.query:
            return "mount"
        if "digest=" in u.query:
            return "upload (monolithic)"
    for pat, kind in [
        (r"/blobs/uploads/?$", "upload start"),
        (r"/blobs/uploads/", "upload"),
        (r"/blobs/", "blob"),
        (r"/manifests/", "manifest"),
        (r"/tags/list$", "tags/list"),
        (r"^/v2/_catalog$", "_catalog"),
        (r"^/api/v1/gc", "gc"),
        (r"^/api/v1/", "management api"),
    ]:
        if re.search(pat, p):
            return kind
    return p


def with_query(location, **q):
    sep = "&" if "?" in location else "?"
    return location + sep + urllib.parse.urlencode(q)


def location_path(h):
    loc = h.get("location")
    if not loc:
        raise SoakError("upload answer without Location")
    u = urllib.parse.urlsplit(loc)
    return u.path + (f"?{u.query}" if u.query else "")


# ---------------------------------------------------------------------------
# The model: what the registry acknowledged and must serve


class RWLock:
    def __init__(self):
        self.cond = threading.Condition()
        self.readers = 0
        self.writer = False

    def read(self):
        return _Guard(self, False)

    def write(self):
        return _Guard(self, True)


class _Guard:
    def __init__(self, lock, write):
        self.lock, self.write = lock, write

    def __enter__(self):
        with self.lock.cond:
            if self.write:
                while self.lock.writer or self.lock.readers:
                    self.lock.cond.wait()
                self.lock.writer = True
            else:
                while self.lock.writer:
                    self.lock.cond.wait()
                self.lock.readers += 1

    def __exit__(self, *exc):
        with self.lock.cond:
            if self.write:
                self.lock.writer = False
            else:
                self.lock.readers -= 1
            self.lock.cond.notify_all()


class Artifact:
    """A tagged manifest (or index) with the manifests and blobs it needs."""

    def __init__(self, repo, tag, root, manifests, blobs):
        self.repo, self.tag, self.root = repo, tag, root
        self.manifests = manifests  # digest -> (media type, bytes)
        self.blobs = blobs  # digest -> size


class Model:
    def __init__(self):
        self.lock = threading.Lock()
        self.repo_locks = {r: RWLock() for r in REPOS}
        self.artifacts = {r: {} for r in REPOS}  # repo -> tag -> Artifact
        self.repos_seen = set()
        self.tag_counter = 0

    def new_tag(self):
        with self.lock:
            self.tag_counter += 1
            return f"t{self.tag_counter}"

    def add(self, a):
        with self.lock:
            self.artifacts[a.repo][a.tag] = a
            self.repos_seen.add(a.repo)

    def pick(self, rng, repo=None):
        with self.lock:
            repos = [repo] if repo else [r for r in REPOS if self.artifacts[r]]
            repos = [r for r in repos if self.artifacts[r]]
            if not repos:
                return None
            r = rng.choice(repos)
            return self.artifacts[r][rng.choice(list(self.artifacts[r]))]

    def remove(self, a):
        with self.lock:
            return self.artifacts[a.repo].pop(a.tag, None) is not None

    def count(self):
        with self.lock:
            return sum(len(v) for v in self.artifacts.values())

    def all(self):
        with self.lock:
            return [a for r in REPOS for a in self.artifacts[r].values()]

    def tags(self, repo):
        with self.lock:
            return set(self.artifacts[repo])


MODEL = Model()
COMMON = []  # (digest, bytes): layers every repository may use


# ---------------------------------------------------------------------------
# Operations


def upload(c, rng, repo, data, digest):
    """Pushes one blob by one of the spec's upload flows."""
    flow = rng.random()
    if flow < 0.25:
        c.expect(201, "POST", f"/v2/{repo}/blobs/uploads/?digest={digest}", body=data,
                 headers={"Content-Type": "application/octet-stream"})
        return
    _, h, _ = c.expect(202, "POST", f"/v2/{repo}/blobs/uploads/", body=b"")
    loc = location_path(h)
    if flow < 0.6 or len(data) <= CHUNK:
        c.expect(201, "PUT", with_query(loc, digest=digest), body=data,
                 headers={"Content-Type": "application/octet-stream"})
    else:
        for off in range(0, len(data), CHUNK):
            part = data[off:off + CHUNK]
            _, h, _ = c.expect(202, "PATCH", loc, body=part, headers={
                "Content-Type": "application/octet-stream",
                "Content-Range": f"{off}-{off + len(part) - 1}",
            })
            loc = location_path(h)
            if h.get("range") != f"0-{off + len(part) - 1}":
                raise SoakError(f"PATCH {loc}: Range {h.get('range')!r} after {off + len(part)} bytes")
        c.expect(201, "PUT", with_query(loc, digest=digest), body=b"")


def layer_size(rng):
    r = rng.random()
    if r < 0.6:
        return rng.randint(1, 64 << 10)
    if r < 0.95:
        return rng.randint(64 << 10, 1 << 20)
    return rng.randint(1 << 20, 8 << 20)


def push_image(c, rng, repo, tag_or_none, blobs):
    """Uploads a config and layers, then the manifest; returns (digest, bytes)."""
    config = json.dumps({"architecture": "amd64", "os": "linux",
                         "soak": rng.getrandbits(64)}).encode()
    layers = []
    for _ in range(rng.randint(1, 3)):
        if COMMON and rng.random() < 0.4:
            d, data = rng.choice(COMMON)
            other = rng.choice(REPOS)
            if other != repo and rng.random() < 0.5:
                st, h, _ = c.expect((201, 202), "POST",
                                    f"/v2/{repo}/blobs/uploads/?mount={d}&from={other}", body=b"")
                if st == 202:
                    STATS.note("mounts refused (blob not in from)")
                    c.expect(204, "DELETE", location_path(h))
                    upload(c, rng, repo, data, d)
                else:
                    STATS.note("mounts")
            else:
                upload(c, rng, repo, data, d)
        else:
            data = os.urandom(layer_size(rng))
            d = sha256(data)
            upload(c, rng, repo, data, d)
        layers.append((d, len(data)))
        blobs[d] = len(data)
    cd = sha256(config)
    upload(c, rng, repo, config, cd)
    blobs[cd] = len(config)
    manifest = json.dumps({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": cd, "size": len(config)},
        "layers": [{"mediaType": OCI_LAYER, "digest": d, "size": n} for d, n in layers],
    }).encode()
    md = sha256(manifest)
    ref = tag_or_none or md
    _, h, _ = c.expect(201, "PUT", f"/v2/{repo}/manifests/{ref}", body=manifest,
                       headers={"Content-Type": OCI_MANIFEST})
    if h.get("docker-content-digest") != md:
        raise SoakError(f"PUT manifest: Docker-Content-Digest {h.get('docker-content-digest')} != {md}")
    return md, manifest


def op_push(c, rng):
    repo = rng.choice(REPOS)
    tag = MODEL.new_tag()
    for attempt in (0, 1):
        started = time.monotonic()
        blobs, manifests = {}, {}
        try:
            if rng.random() < 0.2:
                children = [push_image(c, rng, repo, None, blobs) for _ in range(2)]
                for d, b in children:
                    manifests[d] = (OCI_MANIFEST, b)
                index = json.dumps({
                    "schemaVersion": 2,
                    "mediaType": OCI_INDEX,
                    "manifests": [{"mediaType": OCI_MANIFEST, "digest": d, "size": len(b),
                                   "platform": {"architecture": arch, "os": "linux"}}
                                  for (d, b), arch in zip(children, ["amd64", "arm64"])],
                }).encode()
                root = sha256(index)
                c.expect(201, "PUT", f"/v2/{repo}/manifests/{tag}", body=index,
                         headers={"Content-Type": OCI_INDEX})
                manifests[root] = (OCI_INDEX, index)
            else:
                root, b = push_image(c, rng, repo, tag, blobs)
                manifests[root] = (OCI_MANIFEST, b)
        except SoakError as e:
            # An upload older than the GC grace period may lose its link
            # before its manifest arrives (MANIFEST_BLOB_UNKNOWN; clients push
            # again). Within the grace period it is a bug.
            if "MANIFEST_BLOB_UNKNOWN" in str(e) and attempt == 0 \
                    and time.monotonic() - started > GC_GRACE:
                STATS.note("pushes retried (slower than the GC grace period)")
                continue
            raise
        MODEL.add(Artifact(repo, tag, root, manifests, blobs))
        return


def check_manifest(c, repo, ref, digest, media_type, body, kind):
    _, h, data = c.expect(200, "GET", f"/v2/{repo}/manifests/{ref}",
                          headers={"Accept": f"{OCI_MANIFEST}, {OCI_INDEX}"}, kind=kind)
    if sha256(data) != digest or data != body:
        raise SoakError(f"GET /v2/{repo}/manifests/{ref}: content is {sha256(data)}, want {digest}")
    if h.get("docker-content-digest") != digest:
        raise SoakError(f"GET /v2/{repo}/manifests/{ref}: Docker-Content-Digest {h.get('docker-content-digest')}")
    if h.get("content-type") != media_type:
        raise SoakError(f"GET /v2/{repo}/manifests/{ref}: Content-Type {h.get('content-type')}, want {media_type}")


def check_artifact(c, rng, a, ranges=True):
    mt, body = a.manifests[a.root]
    check_manifest(c, a.repo, a.tag, a.root, mt, body, "GET manifest by tag")
    for d, (mt, body) in a.manifests.items():
        check_manifest(c, a.repo, d, d, mt, body, "GET manifest by digest")
    for d, size in a.blobs.items():
        _, _, data = c.expect(200, "GET", f"/v2/{a.repo}/blobs/{d}")
        if len(data) != size or sha256(data) != d:
            raise SoakError(f"GET /v2/{a.repo}/blobs/{d}: {len(data)} bytes hashing to {sha256(data)}")
        if ranges and size > 1 and rng.random() < 0.25:
            start = rng.randrange(size)
            end = rng.randrange(start, size)
            _, h, part = c.expect(206, "GET", f"/v2/{a.repo}/blobs/{d}",
                                  headers={"Range": f"bytes={start}-{end}"}, kind="GET blob range")
            if part != data[start:end + 1]:
                raise SoakError(f"GET /v2/{a.repo}/blobs/{d} bytes={start}-{end}: wrong bytes")
            if h.get("content-range") != f"bytes {start}-{end}/{size}":
                raise SoakError(f"Range answer Content-Range {h.get('content-range')}")


def op_pull(c, rng):
    a = MODEL.pick(rng)
    if a is None:
        return op_push(c, rng)
    with MODEL.repo_locks[a.repo].read():
        if a.tag not in MODEL.tags(a.repo):
            return  # deleted in between
        check_artifact(c, rng, a)


def op_list(c, rng):
    repo = rng.choice(REPOS)
    with MODEL.repo_locks[repo].read():
        want = MODEL.tags(repo)
        st, _, data = c.request("GET", f"/v2/{repo}/tags/list")
        if st == 404 and not want:
            pass  # never pushed to
        elif st != 200:
            raise SoakError(f"GET /v2/{repo}/tags/list: {st} {data[:200]!r}")
        else:
            got = set(json.loads(data).get("tags") or [])
            if not want <= got:
                raise SoakError(f"tags/list of {repo} lacks {sorted(want - got)[:5]}")
    r = rng.random()
    if r < 0.5:
        seen = set(MODEL.repos_seen)
        _, _, data = c.expect(200, "GET", "/v2/_catalog?n=1000")
        got = set(json.loads(data)["repositories"])
        if not seen <= got:
            raise SoakError(f"_catalog lacks {sorted(seen - got)}")
    else:
        ns = repo.split("/")[0]
        st, _, data = c.request("GET", f"/api/v1/namespaces/{ns}/repositories?page_size=100")
        if st == 200:
            json.loads(data)["repositories"]
        elif not (st == 404 and not any(r.startswith(ns + "/") for r in MODEL.repos_seen)):
            raise SoakError(f"GET /api/v1/namespaces/{ns}/repositories: {st} {data[:200]!r}")


def op_delete(c, rng):
    a = MODEL.pick(rng)
    if a is None:
        return op_push(c, rng)
    with MODEL.repo_locks[a.repo].write():
        if not MODEL.remove(a):
            return
        if rng.random() < 0.5:
            c.expect(202, "DELETE", f"/v2/{a.repo}/manifests/{a.root}", kind="DELETE manifest")
            st, _, _ = c.request("GET", f"/v2/{a.repo}/manifests/{a.root}", kind="GET manifest (deleted)")
            if st != 404:
                raise SoakError(f"manifest {a.repo}@{a.root} still served after DELETE: {st}")
        else:
            c.expect(202, "DELETE", f"/v2/{a.repo}/manifests/{a.tag}", kind="DELETE tag")
        st, _, _ = c.request("GET", f"/v2/{a.repo}/manifests/{a.tag}", kind="GET manifest (deleted)")
        if st != 404:
            raise SoakError(f"tag {a.repo}:{a.tag} still served after DELETE: {st}")


def op_blob(c, rng):
    repo = rng.choice(REPOS)
    data = os.urandom(rng.randint(1, 256 << 10))
    d = sha256(data)
    upload(c, rng, repo, data, d)
    _, h, _ = c.expect(200, "HEAD", f"/v2/{repo}/blobs/{d}")
    if h.get("content-length") != str(len(data)) or h.get("docker-content-digest") != d:
        raise SoakError(f"HEAD /v2/{repo}/blobs/{d}: {h}")
    c.expect(202, "DELETE", f"/v2/{repo}/blobs/{d}")
    c.expect(404, "GET", f"/v2/{repo}/blobs/{d}", kind="GET blob (deleted)")


OPS = {"push": op_push, "pull": op_pull, "list": op_list, "delete": op_delete, "blob": op_blob}


def gc_once(c, delete_untagged):
    t0 = time.monotonic()
    st, _, data = c.request("POST", "/api/v1/gc", body=json.dumps(
        {"delete_untagged": delete_untagged}).encode(), headers={"Content-Type": "application/json"})
    if st == 409:
        STATS.note("gc refused: a run in progress")
        return None
    if st != 202:
        raise SoakError(f"POST /api/v1/gc: {st} {data[:300]!r}")
    run = json.loads(data)
    while run["status"] == "running":
        time.sleep(0.2)
        _, _, data = c.expect(200, "GET", f"/api/v1/gc/runs/{run['id']}")
        run = json.loads(data)
    if run["status"] != "succeeded":
        raise SoakError(f"GC run failed: {run}")
    rep = run.get("report") or {}
    STATS.op("gc" + (" (delete_untagged)" if delete_untagged else ""), time.monotonic() - t0)
    STATS.note("gc blobs deleted", rep.get("blobs_deleted", 0))
    STATS.note("gc bytes freed", rep.get("bytes_freed", 0))
    STATS.note("gc manifests deleted", len(rep.get("manifests_deleted") or []))
    return rep


# ---------------------------------------------------------------------------
# Threads


def worker(addr, idx, stop):
    rng = random.Random(SEED * 1000 + idx)
    c = Client(addr)
    names, weights = list(WEIGHTS), list(WEIGHTS.values())
    while not stop.is_set():
        name = rng.choices(names, weights)[0]
        if name == "push" and MODEL.count() > MAX_LIVE:
            name = "delete"
        t0 = time.monotonic()
        try:
            OPS[name](c, rng)
            STATS.op(name, time.monotonic() - t0)
        except SoakError as e:
            STATS.error(f"{name}: {e}")
        except Exception as e:  # noqa: BLE001 - any failure is a soak error
            STATS.error(f"{name}: {e!r}")
            c = Client(addr)


def gc_thread(addr, stop):
    c = Client(addr)
    n = 0
    while not stop.wait(GC_EVERY):
        n += 1
        try:
            gc_once(c, delete_untagged=n % 2 == 0)
        except Exception as e:  # noqa: BLE001
            STATS.error(f"gc: {e!r}")
            c = Client(addr)


def proc_sample(pid):
    s = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                k, _, v = line.partition(":")
                if k in ("VmRSS", "VmHWM", "Threads"):
                    s[k] = int(v.split()[0])
        s["fds"] = len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return None
    return s


def sampler(pid, t_start, samples, stop, data_dir):
    while True:
        s = proc_sample(pid)
        if s:
            s["data"] = du(data_dir)
            samples.append((time.monotonic() - t_start, s))
        if stop.wait(RSS_EVERY):
            return


def du(path):
    total = 0
    for d, _, files in os.walk(path):
        for f in files:
            try:
                total += os.lstat(os.path.join(d, f)).st_size
            except OSError:
                pass
    return total


# ---------------------------------------------------------------------------


def main():
    if not os.access(BERTH, os.X_OK):
        sys.exit(f"{BERTH} not found: build it with cargo build --release --bin berth")
    work = tempfile.mkdtemp(prefix="berth-soak.")
    data_dir = os.path.join(work, "data")
    log_path = os.path.join(work, "server.log")
    env = dict(os.environ, BERTH_GC__GRACE_PERIOD_SECS=str(GC_GRACE))
    print(f"soak: {SECONDS:.0f} s, {CONCURRENCY} workers, GC every {GC_EVERY:.0f} s "
          f"(grace {GC_GRACE} s), seed {SEED}, work dir {work}", flush=True)
    log = open(log_path, "wb")
    server = subprocess.Popen([BERTH, "serve", "--addr", "127.0.0.1:0", "--data-dir", data_dir],
                              stdout=subprocess.PIPE, stderr=log, env=env)
    ok = False
    try:
        line = server.stdout.readline().decode()
        m = re.match(r"berth listening on http://(\S+)", line)
        if not m:
            raise SystemExit(f"server did not start: {line!r}; log {log_path}")
        addr = m.group(1)
        print(f"server pid {server.pid} on {addr}", flush=True)
        ok = run(addr, server, data_dir)
    finally:
        if server.poll() is None:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(timeout=60)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
        log.close()
    if ok:
        ok = fsck(data_dir) and offline_gc(data_dir)
    if not ok:
        print(f"server log (last lines of {log_path}):")
        with open(log_path, "rb") as f:
            for l in f.read().decode(errors="replace").splitlines()[-20:]:
                print("    " + l)
    if KEEP or not ok:
        print(f"kept {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)
    print("soak: PASSED" if ok else "soak: FAILED")
    return 0 if ok else 1


def offline_gc(data_dir):
    """The offline pass recomputes every counter and finds orphans: after the
    online GC settled it must find nothing to delete."""
    r = subprocess.run([BERTH, "gc", "--data-dir", data_dir, "--dry-run", "--json"],
                       capture_output=True, text=True)
    if r.returncode != 0:
        STATS.error(f"berth gc --dry-run exit {r.returncode}: {r.stderr[-1000:]}")
        return False
    rep = json.loads(r.stdout)
    left = {k: rep.get(k) for k in ("blobs_deleted", "bytes_freed", "orphans_removed")}
    if any(left.values()):
        STATS.error(f"offline GC would still delete what online GC kept: {left}")
        return False
    print(f"berth gc --dry-run: nothing left to delete; data directory {du(data_dir) / (1 << 20):.1f} MiB")
    return True


def fsck(data_dir):
    r = subprocess.run([BERTH, "fsck", "--data-dir", data_dir, "--json"],
                       capture_output=True, text=True)
    if r.returncode != 0:
        STATS.error(f"berth fsck exit {r.returncode}: {r.stdout[-1000:]} {r.stderr[-1000:]}")
        return False
    print("berth fsck: clean")
    return True


def run(addr, server, data_dir):
    rng = random.Random(SEED)
    c = Client(addr)
    for i in range(6):
        data = os.urandom(rng.randint(256 << 10, 2 << 20))
        COMMON.append((sha256(data), data))
    stop = threading.Event()
    samples = []
    t_start = time.monotonic()
    threads = [threading.Thread(target=sampler, args=(server.pid, t_start, samples, stop, data_dir), daemon=True),
               threading.Thread(target=gc_thread, args=(addr, stop), daemon=True)]
    threads += [threading.Thread(target=worker, args=(addr, i, stop), daemon=True)
                for i in range(CONCURRENCY)]
    for t in threads:
        t.start()
    next_report = t_start + max(10.0, SECONDS / 10)
    while time.monotonic() - t_start < SECONDS:
        time.sleep(0.5)
        if server.poll() is not None:
            STATS.error(f"server exited with status {server.returncode}")
            break
        if time.monotonic() >= next_report:
            next_report += max(10.0, SECONDS / 10)
            with STATS.lock:
                n = sum(len(v) for v in STATS.latency.values())
                errs = len(STATS.errors)
            rss = samples[-1][1]["VmRSS"] / 1024 if samples else 0
            print(f"  {time.monotonic() - t_start:6.0f} s: {n} operations, {errs} errors, "
                  f"RSS {rss:.1f} MiB, {len(MODEL.all())} artifacts live", flush=True)
    stop.set()
    for t in threads[1:]:
        t.join(timeout=180)
        if t.is_alive():
            STATS.error(f"thread {t.name} did not stop in 180 s (hung request?)")
    elapsed = time.monotonic() - t_start
    threads[0].join()

    # Final check: everything acknowledged is served, before and after the
    # online GC has reclaimed everything the traffic left unneeded (it takes
    # a few runs a grace period apart: untagged manifests, then their links,
    # then the blobs).
    if server.poll() is None:
        final_rng = random.Random(SEED + 1)
        check_all(c, final_rng, "before the final GC")
        t0 = time.monotonic()
        for n in range(1, 7):
            time.sleep(GC_GRACE + 1)
            try:
                rep = gc_once(c, delete_untagged=True)
            except Exception as e:  # noqa: BLE001
                STATS.error(f"final gc: {e!r}")
                break
            if rep is not None and not rep.get("blobs_deleted") and not rep.get("blobs_in_grace") \
                    and not rep.get("manifests_deleted"):
                print(f"online GC settled after {n} more runs ({time.monotonic() - t0:.0f} s)")
                break
        else:
            STATS.error("online GC still finds blobs to delete after 6 runs")
        check_all(c, final_rng, "after the final GC")
        final = proc_sample(server.pid)
        if final:
            final["data"] = du(data_dir)
            samples.append((time.monotonic() - t_start, final))

    report(elapsed, samples, data_dir)
    return not STATS.errors and server.poll() is None


def check_all(c, rng, when):
    live = MODEL.all()
    for a in live:
        try:
            check_artifact(c, rng, a, ranges=False)
        except Exception as e:  # noqa: BLE001
            STATS.error(f"final check {when} of {a.repo}:{a.tag}: {e}")
    print(f"checked all {len(live)} live artifacts {when}", flush=True)


def report(elapsed, samples, data_dir):
    table(f"operations ({elapsed:.0f} s, {CONCURRENCY} workers)", STATS.latency, elapsed)
    table("requests", STATS.requests, elapsed)
    print("\nserver memory and resources over time")
    print(f"  {'t s':>6}{'RSS MiB':>10}{'peak MiB':>10}{'threads':>9}{'fds':>6}{'data MiB':>10}")
    step = max(1, len(samples) // 12)
    shown = samples[::step]
    if samples and shown[-1] is not samples[-1]:
        shown.append(samples[-1])
    for t, s in shown:
        print(f"  {t:>6.0f}{s['VmRSS'] / 1024:>10.1f}{s['VmHWM'] / 1024:>10.1f}{s['Threads']:>9}{s['fds']:>6}"
              f"{s['data'] / (1 << 20):>10.1f}")
    traffic = [(t, s["VmRSS"] / 1024) for t, s in samples if t <= elapsed]
    if traffic:
        rss = [r for _, r in traffic]
        mid = min(traffic, key=lambda x: abs(x[0] - elapsed / 2))
        print(f"  RSS during traffic: min {min(rss):.1f} MiB, max {max(rss):.1f} MiB; "
              f"{mid[1]:.1f} MiB at {mid[0]:.0f} s (half-way), {rss[-1]:.1f} MiB at {traffic[-1][0]:.0f} s (end)")
    live = MODEL.all()
    print(f"\nlive at the end: {len(live)} artifacts in {len({a.repo for a in live})} repositories; "
          f"data directory {du(data_dir) / (1 << 20):.1f} MiB")
    for k in sorted(STATS.notes):
        print(f"  {k}: {STATS.notes[k]}")
    print(f"\nerrors: {len(STATS.errors)}")
    for e in STATS.errors[:20]:
        print("  " + e)


if __name__ == "__main__":
    sys.exit(main())
