"""oras-py (the ORAS project's Python SDK, PyPI `oras`) driven by tests/clients/oras.sh.

Every call goes through oras-py's own registry client (oras.provider.Registry) over
plain HTTP. oras-py 0.2 has no option for a manifest's artifactType, no untagged push
and no referrers call; the subclass below adds the first two the way the oras CLI's
`push --artifact-type` and `attach` behave (the manifest oras-py builds gets an
artifactType; it is PUT by its digest instead of a tag), and `referrers` sends
GET /v2/<name>/referrers/<digest> through the client's request path.

Output: one JSON object on stdout per command.
"""

import argparse
import hashlib
import json
import os
import sys
import urllib.parse

import oras.oci
import oras.provider


class Registry(oras.provider.Registry):
    artifact_type = None
    by_digest = False
    sent = None  # the manifest bytes as they went on the wire

    def upload_manifest(self, manifest, container):
        if self.artifact_type:
            manifest["artifactType"] = self.artifact_type
        if self.by_digest:
            # requests serialises json= with json.dumps: the digest of those bytes
            body = json.dumps(manifest).encode("utf-8")
            digest = "sha256:" + hashlib.sha256(body).hexdigest()
            container = self.get_container(
                f"{container.registry}/{container.api_prefix}@{digest}"
            )
        response = super().upload_manifest(manifest, container)
        self.sent = response.request.body
        return response


def registry():
    return Registry(insecure=True)


def cmd_push(a):
    reg = registry()
    reg.artifact_type = a.artifact_type
    reg.by_digest = a.by_digest
    subject = None
    if a.subject:
        mt, digest, size = a.subject.split(",")
        subject = oras.oci.Subject(mediaType=mt, digest=digest, size=int(size))
    annotations = dict(kv.split("=", 1) for kv in a.annotation)
    # files are path:mediaType, relative to the working directory (oras-py insists)
    os.chdir(a.dir)
    response = reg.push(
        target=a.target,
        files=a.files,
        manifest_config=a.config,
        manifest_annotations=annotations or None,
        subject=subject,
        quiet=True,
    )
    sent = reg.sent if isinstance(reg.sent, bytes) else reg.sent.encode("utf-8")
    with open(a.manifest_out, "wb") as f:
        f.write(sent)
    print(
        json.dumps(
            {
                "status": response.status_code,
                "docker_content_digest": response.headers.get("Docker-Content-Digest"),
                "location": response.headers.get("Location"),
                "oci_subject": response.headers.get("OCI-Subject"),
                "sent_digest": "sha256:" + hashlib.sha256(sent).hexdigest(),
            }
        )
    )


def cmd_pull(a):
    files = registry().pull(target=a.target, outdir=a.outdir)
    print(json.dumps({"files": sorted(os.path.relpath(f, a.outdir) for f in files)}))


def cmd_manifest(a):
    print(json.dumps(registry().get_manifest(a.target)))


def cmd_tags(a):
    print(json.dumps({"tags": registry().get_tags(a.target)}))


def cmd_referrers(a):
    reg = registry()
    c = reg.get_container(a.target)
    url = f"{reg.prefix}://{c.registry}/v2/{c.api_prefix}/referrers/{c.digest}"
    if a.artifact_type:
        url += "?artifactType=" + urllib.parse.quote(a.artifact_type, safe="")
    r = reg.do_request(url, "GET")
    print(
        json.dumps(
            {
                "status": r.status_code,
                "content_type": r.headers.get("Content-Type"),
                "filters_applied": r.headers.get("OCI-Filters-Applied"),
                "index": r.json() if r.content else None,
            }
        )
    )


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("push")
    s.add_argument("--target", required=True)
    s.add_argument("--dir", required=True, help="directory the files are in")
    s.add_argument("--config", help="path:mediaType of the config blob")
    s.add_argument("--artifact-type")
    s.add_argument("--subject", help="mediaType,digest,size")
    s.add_argument("--by-digest", action="store_true")
    s.add_argument("--annotation", action="append", default=[])
    s.add_argument("--manifest-out", required=True)
    s.add_argument("files", nargs="*")
    s.set_defaults(fn=cmd_push)
    s = sub.add_parser("pull")
    s.add_argument("--target", required=True)
    s.add_argument("--outdir", required=True)
    s.set_defaults(fn=cmd_pull)
    s = sub.add_parser("manifest")
    s.add_argument("--target", required=True)
    s.set_defaults(fn=cmd_manifest)
    s = sub.add_parser("tags")
    s.add_argument("--target", required=True)
    s.set_defaults(fn=cmd_tags)
    s = sub.add_parser("referrers")
    s.add_argument("--target", required=True, help="registry/name@digest")
    s.add_argument("--artifact-type")
    s.set_defaults(fn=cmd_referrers)
    a = p.parse_args()
    a.fn(a)


if __name__ == "__main__":
    sys.exit(main())
