"""`python -m boxkube.apiserver`: run the API server alone (the docker provider and tests do)."""
from __future__ import annotations

import argparse
import logging
import sys

import uvicorn

from boxkube.apiserver.app import ServerConfig, create_app
from boxkube.apiserver.portforward import WebSocketProtocol
from boxkube.apiserver.strategies.base import Admission


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m boxkube.apiserver", description="boxkube API server")
    p.add_argument("--etcd-servers", default="http://127.0.0.1:2379", help="etcd endpoint URL")
    p.add_argument("--bind-address", default="127.0.0.1")
    p.add_argument("--port", type=int, default=6443)
    p.add_argument("--token-file", help="file holding the bearer token clients must send (no auth without it)")
    p.add_argument("--tls-cert-file", help="serving certificate (PEM); HTTPS when given")
    p.add_argument("--tls-private-key-file", help="the serving certificate's key (PEM)")
    p.add_argument("--service-cluster-ip-range", default="10.96.0.0/12")
    p.add_argument("--service-node-port-range", default="30000-32767")
    p.add_argument("--compaction-interval", type=float, default=300.0, help="seconds between etcd compactions (0: never)")
    p.add_argument("--advertise-address", default=None, help="address the `kubernetes` Service points at")
    p.add_argument("--default-not-ready-toleration-seconds", type=int, default=300,
                   help="tolerationSeconds of the not-ready:NoExecute toleration added to every pod")
    p.add_argument("--default-unreachable-toleration-seconds", type=int, default=300,
                   help="tolerationSeconds of the unreachable:NoExecute toleration added to every pod")
    p.add_argument("--log-level", default="info")
    args = p.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    token = None
    if args.token_file:
        with open(args.token_file) as f:
            token = f.read().strip()
    first, _, last = args.service_node_port_range.partition("-")
    config = ServerConfig(etcd_servers=args.etcd_servers, token=token, service_cidr=args.service_cluster_ip_range,
                          node_port_range=(int(first), int(last)), compaction_interval=args.compaction_interval,
                          advertise_address=args.advertise_address or args.bind_address, advertise_port=args.port,
                          admission=Admission(args.default_not_ready_toleration_seconds,
                                              args.default_unreachable_toleration_seconds))
    uvicorn.run(create_app(config), host=args.bind_address, port=args.port, log_level=args.log_level.lower(),
                access_log=False, timeout_graceful_shutdown=2,
                # idle connections kept as long as upstream's (90 s): clients reuse them, never racing the close
                timeout_keep_alive=90, ws=WebSocketProtocol,
                ssl_certfile=args.tls_cert_file, ssl_keyfile=args.tls_private_key_file)
    return 0


if __name__ == "__main__":
    sys.exit(main())
