"""`python -m boxkube.scheduler`: run the scheduler against a kubeconfig's cluster.

Leader election is on by default, as in kube-scheduler: copies share a Lease
(kube-system/kube-scheduler by default); one schedules, the others wait to take
over (`--leader-elect=false` schedules at once, alone). A copy that loses the
lease drops its caches and campaigns again with fresh ones (upstream exits and
is restarted by its kubelet; nothing restarts a boxkube process).
"""
from __future__ import annotations

import argparse
import logging
import socket
import sys

from boxkube import component
from boxkube.client import ApiClient
from boxkube.client.leaderelection import LeaderElector
from boxkube.scheduler.plugins import default_profile
from boxkube.scheduler.scheduler import Scheduler

log = logging.getLogger("boxkube.scheduler")


def _percentage(text: str) -> int:
    value = int(text)
    if not 0 <= value <= 100:
        raise argparse.ArgumentTypeError("must be between 0 and 100")
    return value


async def _run(args: argparse.Namespace) -> None:
    async with ApiClient.from_kubeconfig(args.kubeconfig, user_agent="boxkube-scheduler") as client:
        # fail with one line on a bad kubeconfig, an unreachable server or refused credentials
        await client.request("GET", "/version")

        def scheduler() -> Scheduler:
            profile = default_profile(percentage_of_nodes_to_score=args.percentage_of_nodes_to_score or None)
            return Scheduler(client, profiles=[profile], host=socket.gethostname())

        config = component.leader_election(args)
        if config is None:
            await scheduler().run()
            return
        elector = LeaderElector(client, config)
        while True:
            await elector.run(lambda: scheduler().run())
            log.warning("leader election lost; campaigning again")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m boxkube.scheduler", description="boxkube scheduler")
    p.add_argument("--kubeconfig", help="kubeconfig of the cluster (default: $KUBECONFIG or ~/.kube/config)")
    component.leader_election_flags(p, "kube-scheduler", "scheduling")
    p.add_argument("--percentage-of-nodes-to-score", type=_percentage, default=0,
                   help="stop filtering once this share of the nodes fits (0: upstream's adaptive default)")
    p.add_argument("--log-level", default="info")
    args = p.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return component.run(_run(args), log)


if __name__ == "__main__":
    sys.exit(main())
