"""`python -m boxkube.dns`: the cluster DNS server against a kubeconfig's cluster.

    python -m boxkube.dns --kubeconfig KUBECONFIG [--bind-address 0.0.0.0] [--port 53]
        [--advertise-address IP] [--cluster-domain cluster.local] [--upstream IP ...]

It answers `<svc>.<ns>.svc.cluster.local` and the other cluster names from
the Services and EndpointSlices it watches, forwards other names to
`--upstream` (default: the nameservers of /etc/resolv.conf), and points the
kube-dns Service's endpoints at `--advertise-address`:port (default: this
machine's address; "" publishes nothing).
"""
from __future__ import annotations

import argparse
import logging
import socket
import sys

from boxkube import component
from boxkube.agent.network import read_resolv_conf
from boxkube.client import ApiClient
from boxkube.dns import DNS_PORT
from boxkube.dns.server import serve

log = logging.getLogger("boxkube.dns")


def _own_address() -> str:
    try:
        return socket.gethostbyname(socket.gethostname())
    except OSError:
        return "127.0.0.1"


async def _run(args: argparse.Namespace) -> None:
    async with ApiClient.from_kubeconfig(args.kubeconfig, user_agent="boxkube-dns") as client:
        await client.request("GET", "/version")     # one line on a bad kubeconfig or an unreachable server
        upstreams = args.upstream or read_resolv_conf()[0]
        advertise = _own_address() if args.advertise_address is None else args.advertise_address
        await serve(client, host=args.bind_address, port=args.port, advertise=advertise,
                    domain=args.cluster_domain, upstreams=upstreams)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m boxkube.dns", description="boxkube cluster DNS")
    p.add_argument("--kubeconfig", help="kubeconfig of the cluster (default: $KUBECONFIG or ~/.kube/config)")
    p.add_argument("--bind-address", default="0.0.0.0", help="where to listen (udp and tcp)")
    p.add_argument("--port", type=int, default=DNS_PORT, help="the port (0: any free one)")
    p.add_argument("--advertise-address", help="the address in the kube-dns Service's endpoints "
                                               "(default: this machine's; empty: publish nothing)")
    p.add_argument("--cluster-domain", default="cluster.local")
    p.add_argument("--upstream", action="append", default=[],
                   help="a server for names outside the cluster (IP, or IP#port; default: /etc/resolv.conf's)")
    p.add_argument("--log-level", default="info")
    args = p.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return component.run(_run(args), log, failures=(OSError,))


if __name__ == "__main__":
    sys.exit(main())
