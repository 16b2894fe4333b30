"""`python -m boxkube.controllers`: run the controller manager against a kubeconfig's cluster.

Leader election is on by default, as in kube-controller-manager: copies share
a Lease (kube-system/kube-controller-manager); one runs the controllers, the
others wait to take over. `--leader-elect=false` runs them at once, alone.
"""
from __future__ import annotations

import argparse
import logging
import socket
import sys

from boxkube import component
from boxkube.client import ApiClient
from boxkube.controllers.base import Settings
from boxkube.controllers.manager import ControllerManager, available_controllers


async def _run(args: argparse.Namespace) -> None:
    settings = Settings(node_monitor_grace_period=args.node_monitor_grace_period,
                        pod_eviction_timeout=args.pod_eviction_timeout, cluster_cidr=args.cluster_cidr,
                        node_cidr_mask_size=args.node_cidr_mask_size, pod_gc_period=args.pod_gc_period,
                        terminated_pod_gc_threshold=args.terminated_pod_gc_threshold,
                        root_ca_file=args.root_ca_file or "")
    async with ApiClient.from_kubeconfig(args.kubeconfig, user_agent="boxkube-controller-manager") as client:
        names = args.controllers.split(",") if args.controllers else None
        manager = ControllerManager(client, names, settings, host=socket.gethostname(),
                                    leader_election=component.leader_election(args))
        await manager.run()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m boxkube.controllers", description="boxkube controller manager")
    p.add_argument("--kubeconfig", help="kubeconfig of the cluster (default: $KUBECONFIG or ~/.kube/config)")
    p.add_argument("--controllers", help=f"comma-separated subset to run (default: all of {', '.join(available_controllers())})")
    component.leader_election_flags(p, "kube-controller-manager", "running the controllers")
    p.add_argument("--node-monitor-grace-period", type=component.duration_flag, default=Settings.node_monitor_grace_period)
    p.add_argument("--pod-eviction-timeout", type=component.duration_flag, default=Settings.pod_eviction_timeout)
    p.add_argument("--cluster-cidr", default=Settings.cluster_cidr, help="the pod network nodes' podCIDRs come from")
    p.add_argument("--node-cidr-mask-size", type=int, default=Settings.node_cidr_mask_size)
    p.add_argument("--pod-gc-period", type=component.duration_flag, default=Settings.pod_gc_period,
                   help="how often the pod garbage collector runs (upstream: a fixed 20s)")
    p.add_argument("--terminated-pod-gc-threshold", type=int, default=Settings.terminated_pod_gc_threshold,
                   help="terminated pods kept before the oldest are deleted; 0 disables (default: %(default)s)")
    p.add_argument("--root-ca-file", help="the cluster CA certificate (PEM) published in every namespace as the "
                                          "ConfigMap kube-root-ca.crt (default: the CA the kubeconfig trusts)")
    p.add_argument("--log-level", default="info")
    args = p.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return component.run(_run(args), logging.getLogger("boxkube.controllers"))


if __name__ == "__main__":
    sys.exit(main())
