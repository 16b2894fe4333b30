"""`python -m boxkube.agent`: run node agents against a kubeconfig's cluster.

    python -m boxkube.agent --kubeconfig KUBECONFIG --simulated --nodes 100 --name-prefix boxkube-worker
    python -m boxkube.agent --kubeconfig KUBECONFIG --simulated --node-name boxkube-worker

Simulated nodes are named as kind names its workers: PREFIX, PREFIX2, PREFIX3...
All of them share one process, one API client and one pod watch.
"""
from __future__ import annotations

import argparse
import ipaddress
import logging
import sys

from boxkube import component
from boxkube.agent.agent import AgentGroup
from boxkube.agent.config import AgentSettings, NodeConfigError, NodeSettings, node_settings, read_node_configs
from boxkube.agent.runtime.base import Runtime
from boxkube.agent.runtime.simulated import SimulatedRuntime
from boxkube.client import ApiClient

log = logging.getLogger("boxkube.agent")

# Simulated nodes' InternalIPs, as the nodes of a kind cluster get them from its Docker network.
_SIMULATED_NODE_NETWORK = ipaddress.ip_network("172.18.0.0/16")


def node_names(prefix: str, count: int) -> list[str]:
    return [prefix if i == 0 else f"{prefix}{i + 1}" for i in range(count)]


def _nodes(args: argparse.Namespace) -> list[NodeSettings]:
    configs = read_node_configs(args.node_config) if args.node_config else []
    if args.node_name:
        names = [args.node_name]
    else:
        count = args.nodes if args.nodes is not None else sum(c.count for c in configs) or 1
        names = node_names(args.name_prefix, count)
    nodes = node_settings(names, configs)
    for i, node in enumerate(nodes):
        node.internal_ip = str(_SIMULATED_NODE_NETWORK.network_address + 2 + i)
    return nodes


async def _run(args: argparse.Namespace) -> None:
    settings = AgentSettings(lease_duration=args.lease_duration, lease_renew_interval=args.lease_renew_interval,
                             status_report_interval=args.status_report_interval)
    nodes = _nodes(args)
    runtimes: dict[str, Runtime] = {n.name: SimulatedRuntime(n.name, start_delay=args.start_delay) for n in nodes}
    async with ApiClient.from_kubeconfig(args.kubeconfig, user_agent="kubelet/boxkube") as client:
        group = AgentGroup(client, nodes, lambda n: runtimes[n.name], settings)
        try:
            await group.run()
        finally:
            for runtime in runtimes.values():
                await runtime.close()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m boxkube.agent", description="boxkube node agent")
    p.add_argument("--kubeconfig", help="kubeconfig of the cluster (default: $KUBECONFIG or ~/.kube/config)")
    p.add_argument("--simulated", action="store_true", help="run pods on the simulated runtime (no containers)")
    p.add_argument("--node-name", help="run one node of this name")
    p.add_argument("--nodes", type=int, help="how many simulated nodes to run (default: the node config's count, or 1)")
    p.add_argument("--name-prefix", default="boxkube-worker", help="simulated nodes' names: PREFIX, PREFIX2, ...")
    p.add_argument("--node-config", help="labels, taints, capacity of the nodes: YAML/JSON (a mapping, or a list "
                                         "of entries with counts), or a file holding it")
    p.add_argument("--start-delay", type=component.duration_flag, default=0.2, help="how long a simulated container takes to start")
    p.add_argument("--lease-duration", type=int, default=AgentSettings.lease_duration, help="seconds")
    p.add_argument("--lease-renew-interval", type=component.duration_flag, default=0.0,
                   help="default: a quarter of the lease duration")
    p.add_argument("--status-report-interval", type=component.duration_flag, default=AgentSettings.status_report_interval)
    p.add_argument("--log-level", default="info")
    args = p.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not args.simulated:
        print("ERROR: only the simulated runtime exists so far: add --simulated", file=sys.stderr)
        return 2
    if args.nodes is not None and args.nodes < 1:
        print("ERROR: --nodes must be at least 1", file=sys.stderr)
        return 2
    return component.run(_run(args), log, failures=(NodeConfigError,))


if __name__ == "__main__":
    sys.exit(main())
