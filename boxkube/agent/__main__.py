"""`python -m boxkube.agent`: run node agents against a kubeconfig's cluster.

    python -m boxkube.agent --kubeconfig KUBECONFIG --simulated --nodes 100 --name-prefix boxkube-worker
    python -m boxkube.agent --kubeconfig KUBECONFIG --simulated --node-name boxkube-worker
    python -m boxkube.agent --kubeconfig KUBECONFIG --runtime docker --node-name boxkube-worker \
        [--docker-host unix:///var/run/docker.sock] [--root-dir /var/lib/boxkube] [--node-ip IP]

Simulated nodes are named as kind names its workers: PREFIX, PREFIX2, PREFIX3...
All of them share one process, one API client and one pod watch.

`--runtime docker` runs one node (`--node-name`, by default this machine's
hostname) whose pods are containers of the Docker engine at `--docker-host`
(default: $DOCKER_HOST, else the local socket): inside a boxkube node, its
inner engine. Its InternalIP is `--node-ip`, by default the address this
machine reaches the outside from.
"""
from __future__ import annotations

import argparse
import asyncio
import logging
import os
import socket
import sys

from boxkube import component
from boxkube.agent.agent import AgentGroup
from boxkube.agent.config import AgentSettings, NodeConfigError, NodeSettings, node_settings, read_node_configs
from boxkube.agent.network import DEFAULT_CLUSTER_DOMAIN, NodeNetwork
from boxkube.agent.podnet import PodBridge
from boxkube.agent.proxy import ServiceProxy
from boxkube.agent.runtime.base import Runtime, RuntimeFailure
from boxkube.agent.runtime.docker import DEFAULT_PAUSE_IMAGE, DEFAULT_ROOT_DIR, DockerRuntime, EngineUnreachable
from boxkube.agent.runtime.simulated import SimulatedRuntime
from boxkube.agent.node import KUBELET_PORT
from boxkube.agent.server import KubeletServer
from boxkube.cluster.names import numbered_names, simulated_node_ip
from boxkube.client import ApiClient

log = logging.getLogger("boxkube.agent")


def _nodes(args: argparse.Namespace) -> list[NodeSettings]:
    configs = read_node_configs(args.node_config) if args.node_config else []
    if args.runtime == "docker":
        nodes = node_settings([args.node_name or socket.gethostname()], configs)
        nodes[0].internal_ip = args.node_ip or _own_ip()
        return nodes
    if args.node_name:
        names = [args.node_name]
    else:
        count = args.nodes if args.nodes is not None else sum(c.count for c in configs) or 1
        names = numbered_names(args.name_prefix, count)
    nodes = node_settings(names, configs)
    for i, node in enumerate(nodes):
        node.internal_ip = args.node_ip if args.node_ip and len(nodes) == 1 else simulated_node_ip(i)
    return nodes


def _own_ip() -> str:
    """The address this machine reaches the outside from (the kubelet's default node IP); no packet is sent."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("10.255.255.255", 1))
            return str(s.getsockname()[0])
        except OSError:
            return "127.0.0.1"


def _runtimes(args: argparse.Namespace, nodes: list[NodeSettings]) -> dict[str, Runtime]:
    if args.runtime == "docker":
        return {n.name: DockerRuntime(n.name, base_url=args.docker_host, root_dir=args.root_dir,
                                      pause_image=args.pause_image, network=args.docker_network,
                                      # a node that owns its network runs its pods on its own bridge
                                      pod_bridge=PodBridge() if args.node_network else None,
                                      cluster_dns=args.cluster_dns, cluster_domain=args.cluster_domain) for n in nodes}
    return {n.name: SimulatedRuntime(n.name, start_delay=args.start_delay) for n in nodes}


async def _run(args: argparse.Namespace) -> None:
    settings = AgentSettings(lease_duration=args.lease_duration, lease_renew_interval=args.lease_renew_interval,
                             status_report_interval=args.status_report_interval)
    nodes = _nodes(args)
    runtimes = _runtimes(args, nodes)
    try:
        for runtime in runtimes.values():
            await runtime.start()       # before the group: the Node shows the engine's version
        if args.wait_for_kubeconfig:
            await _kubeconfig_given(args.kubeconfig)
        async with ApiClient.from_kubeconfig(args.kubeconfig, user_agent="kubelet/boxkube") as client:
            # The kubelet API (kubectl logs/exec through the API server) for a real node; it accepts the
            # cluster's token, which the API server presents (see boxkube.agent.server).
            server = KubeletServer(client.config.token, args.kubelet_address, args.kubelet_port) \
                if args.runtime == "docker" and args.kubelet_port >= 0 else None
            group = AgentGroup(client, nodes, lambda n: runtimes[n.name], settings, serve=server)
            if args.node_network:       # this machine's routes and iptables: a boxkube node's own
                node = nodes[0].name
                await asyncio.gather(group.run(), NodeNetwork(client, node, args.cluster_cidr).serve(),
                                     ServiceProxy(client, node, args.cluster_cidr, services=group.services).serve())
            else:
                await group.run()
    finally:
        for runtime in runtimes.values():
            await runtime.close()


async def _kubeconfig_given(path: str) -> None:
    """Until the kubeconfig is there: a boxkube worker starts with its control plane and is given the file
    once the API server answers (as a kind node's kubelet waits for kubeadm's); everything else is ready."""
    def given() -> bool:
        return os.path.exists(path) and os.path.getsize(path) > 0

    if not given():
        log.info("waiting for the kubeconfig %s", path)
    while not given():
        await asyncio.sleep(0.05)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m boxkube.agent", description="boxkube node agent")
    p.add_argument("--kubeconfig", help="kubeconfig of the cluster (default: $KUBECONFIG or ~/.kube/config)")
    p.add_argument("--wait-for-kubeconfig", action="store_true",
                   help="start, then wait until --kubeconfig is written (a node that joins once its cluster answers)")
    p.add_argument("--runtime", choices=("simulated", "docker"),
                   help="what runs the pods: simulated (no containers; many nodes in one process) or docker "
                        "(one node, its pods containers of a Docker engine)")
    p.add_argument("--simulated", action="store_true", help="the same as --runtime simulated")
    p.add_argument("--docker-host", help="the Docker engine of --runtime docker, as DOCKER_HOST (unix://..., "
                                         "tcp://...; default: $DOCKER_HOST, else the local socket)")
    p.add_argument("--root-dir", default=DEFAULT_ROOT_DIR,
                   help="where the docker runtime keeps pods' volumes (the engine bind-mounts them from here)")
    p.add_argument("--pause-image", default=DEFAULT_PAUSE_IMAGE, help="the image of pods' pause containers")
    p.add_argument("--docker-network", help="the engine's network pods join, without --node-network "
                                                 "(default: the engine's bridge)")
    p.add_argument("--node-ip", help="the node's InternalIP (--runtime docker: default the address this "
                                     "machine reaches the outside from)")
    p.add_argument("--kubelet-address", default="0.0.0.0", help="where the kubelet API (logs, exec) listens "
                                                                "(--runtime docker)")
    p.add_argument("--kubelet-port", type=int, default=KUBELET_PORT,
                   help="the kubelet API's port (0: any free one; -1: not served)")
    p.add_argument("--node-network", action="store_true",
                   help="--runtime docker in a boxkube node: own this machine's network (the pods' bridge "
                        "cbr0 on the podCIDR, routes to the other nodes' pods, masquerading, and the service "
                        "proxy's iptables rules)")
    p.add_argument("--cluster-cidr", default="10.244.0.0/16", help="the cluster's pod range (--node-network)")
    p.add_argument("--cluster-dns", action="append", default=[],
                   help="the cluster DNS server's IP, pods' nameserver with dnsPolicy ClusterFirst (repeatable)")
    p.add_argument("--cluster-domain", default=DEFAULT_CLUSTER_DOMAIN, help="the cluster's DNS domain")
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
    if args.simulated:
        if args.runtime == "docker":
            print("ERROR: --simulated and --runtime docker contradict each other", file=sys.stderr)
            return 2
        args.runtime = "simulated"
    if args.runtime is None:
        print("ERROR: say what runs the pods: --runtime docker, or --runtime simulated (--simulated)", file=sys.stderr)
        return 2
    if args.runtime == "docker" and args.nodes not in (None, 1):
        print("ERROR: --runtime docker runs one node (--node-name); --nodes is for simulated nodes", file=sys.stderr)
        return 2
    if args.node_network and args.runtime != "docker":
        print("ERROR: --node-network is for --runtime docker (simulated nodes have no network)", file=sys.stderr)
        return 2
    if args.nodes is not None and args.nodes < 1:
        print("ERROR: --nodes must be at least 1", file=sys.stderr)
        return 2
    if args.wait_for_kubeconfig and not args.kubeconfig:
        print("ERROR: --wait-for-kubeconfig needs --kubeconfig", file=sys.stderr)
        return 2
    return component.run(_run(args), log, failures=(NodeConfigError, EngineUnreachable, RuntimeFailure))


if __name__ == "__main__":
    sys.exit(main())
