"""helm, driven by tests/clients/helm.sh through helm-sdkpy (PyPI): Python bindings over
helm v4's own Go packages (action.Package, action.Push, ChartPathOptions.LocateChart),
so the OCI requests are the ones the helm CLI sends. Debian 12 has no helm package.

helm-sdkpy 0.1.32's Pull wrapper crashes before any request (it builds action.Pull
without a configuration, so helm dereferences a nil registry client); `pull` here uses
`helm show chart`, which downloads the chart through the same ChartDownloader and
registry client as `helm pull` and keeps the archive in helm's content cache.

Output: one JSON object on stdout per command (helm's own "Pushed:/Pulled:/Digest:"
lines go to stdout too, from Go).
"""

import argparse
import asyncio
import json
import sys

import helm_sdkpy as helm


def config():
    return helm.Configuration(plain_http=True)


def out(obj):
    sys.stdout.flush()
    print(json.dumps(obj), flush=True)


def cmd_package(a):
    out({"path": asyncio.run(helm.Package(config()).run(a.chart_dir, a.dest))})


def cmd_push(a):
    asyncio.run(helm.Push(config()).run(a.chart, a.remote, plain_http=True))
    out({"pushed": a.chart})


def cmd_show_chart(a):
    out({"chart": asyncio.run(helm.Show(config()).chart(a.ref))})


def cmd_show_values(a):
    out({"values": asyncio.run(helm.Show(config()).values(a.ref))})


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("package")
    s.add_argument("chart_dir")
    s.add_argument("dest")
    s.set_defaults(fn=cmd_package)
    s = sub.add_parser("push")
    s.add_argument("chart")
    s.add_argument("remote", help="oci://host:port/namespace")
    s.set_defaults(fn=cmd_push)
    s = sub.add_parser("show-chart")
    s.add_argument("ref", help="oci://host:port/namespace/chart[:version|@digest]")
    s.set_defaults(fn=cmd_show_chart)
    s = sub.add_parser("show-values")
    s.add_argument("ref")
    s.set_defaults(fn=cmd_show_values)
    a = p.parse_args()
    a.fn(a)


if __name__ == "__main__":
    sys.exit(main())
