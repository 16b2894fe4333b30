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
from boxkube.client.leaderelection import (
    DEFAULT_LEASE_DURATION, DEFAULT_RENEW_DEADLINE, DEFAULT_RETRY_PERIOD, LeaderElectionConfig, default_identity,
)
from boxkube.controllers.base import Settings
from boxkube.controllers.manager import ControllerManager, available_controllers


async def _run(args: argparse.Namespace) -> None:
    settings = Settings(node_monitor_grace_period=args.node_monitor_grace_period,
                        pod_eviction_timeout=args.pod_eviction_timeout, cluster_cidr=args.cluster_cidr,
                        node_cidr_mask_size=args.node_cidr_mask_size, pod_gc_period=args.pod_gc_period,
                        terminated_pod_gc_threshold=args.terminated_pod_gc_threshold)
    async with ApiClient.from_kubeconfig(args.kubeconfig, user_agent="boxkube-controller-manager") as client:
        names = args.controllers.split(",") if args.controllers else None
        election = LeaderElectionConfig(args.lease_namespace, args.lease_name, default_identity(),
                                        lease_duration=args.leader_elect_lease_duration,
                                        renew_deadline=args.leader_elect_renew_deadline,
                                        retry_period=args.leader_elect_retry_period) if args.leader_elect else None
        manager = ControllerManager(client, names, settings, host=socket.gethostname(), leader_election=election)
        await manager.run()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m boxkube.controllers", description="boxkube controller manager")
    p.add_argument("--kubeconfig", help="kubeconfig of the cluster (default: $KUBECONFIG or ~/.kube/config)")
    p.add_argument("--controllers", help=f"comma-separated subset to run (default: all of {', '.join(available_controllers())})")
    p.add_argument("--leader-elect", type=component.bool_flag, nargs="?", const=True, default=True, metavar="BOOL",
                   help="take a Lease before running the controllers, so several copies can run and one takes "
                        "over from another (default: true)")
    p.add_argument("--lease-namespace", default="kube-system")
    p.add_argument("--lease-name", default="kube-controller-manager")
    p.add_argument("--leader-elect-lease-duration", type=component.duration_flag, default=DEFAULT_LEASE_DURATION)
    p.add_argument("--leader-elect-renew-deadline", type=component.duration_flag, default=DEFAULT_RENEW_DEADLINE)
    p.add_argument("--leader-elect-retry-period", type=component.duration_flag, default=DEFAULT_RETRY_PERIOD)
    p.add_argument("--node-monitor-grace-period", type=component.duration_flag, default=Settings.node_monitor_grace_period)
    p.add_argument("--pod-eviction-timeout", type=component.duration_flag, default=Settings.pod_eviction_timeout)
    p.add_argument("--cluster-cidr", default=Settings.cluster_cidr, help="the pod network nodes' podCIDRs come from")
    p.add_argument("--node-cidr-mask-size", type=int, default=Settings.node_cidr_mask_size)
    p.add_argument("--pod-gc-period", type=component.duration_flag, default=Settings.pod_gc_period,
                   help="how often the pod garbage collector runs (upstream: a fixed 20s)")
    p.add_argument("--terminated-pod-gc-threshold", type=int, default=Settings.terminated_pod_gc_threshold,
                   help="terminated pods kept before the oldest are deleted; 0 disables (default: %(default)s)")
    p.add_argument("--log-level", default="info")
    args = p.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return component.run(_run(args), logging.getLogger("boxkube.controllers"))


if __name__ == "__main__":
    sys.exit(main())
