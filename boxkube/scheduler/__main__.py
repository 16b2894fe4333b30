"""`python -m boxkube.scheduler`: run the scheduler against a kubeconfig's cluster.

With --leader-elect, copies of it share a Lease (kube-system/kube-scheduler by
default): one schedules, the others wait to take over. A copy that loses the
lease drops its caches and campaigns again with fresh ones (upstream exits and
is restarted by its kubelet; nothing restarts a boxkube process).
"""
from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import socket
import sys


from boxkube.client import ApiClient, ApiError, ConfigError
from boxkube.client.leaderelection import (
    DEFAULT_LEASE_DURATION, DEFAULT_RENEW_DEADLINE, DEFAULT_RETRY_PERIOD, LeaderElectionConfig, LeaderElector,
    default_identity,
)
from boxkube.cluster.config import parse_duration
from boxkube.scheduler.plugins import default_profile
from boxkube.scheduler.scheduler import Scheduler

log = logging.getLogger("boxkube.scheduler")

try:    # a faster event loop where installed (uvicorn[standard] brings it): the scheduler is busy on both I/O and CPU
    from uvloop import run as run_loop
except ImportError:  # pragma: no cover
    run_loop = asyncio.run


def _seconds(text: str) -> float:
    try:
        return parse_duration(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _percentage(text: str) -> int:
    value = int(text)
    if not 0 <= value <= 100:
        raise argparse.ArgumentTypeError("must be between 0 and 100")
    return value


async def _run(args: argparse.Namespace) -> None:
    async with ApiClient.from_kubeconfig(args.kubeconfig, user_agent="boxkube-scheduler") as client:
        # fail with one line on a bad kubeconfig, an unreachable server or refused credentials
        await client.request("GET", "/version")
        task = asyncio.current_task()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, task.cancel)

        def scheduler() -> Scheduler:
            profile = default_profile(percentage_of_nodes_to_score=args.percentage_of_nodes_to_score or None)
            return Scheduler(client, profiles=[profile], host=socket.gethostname())

        try:
            if not args.leader_elect:
                await scheduler().run()
                return
            config = LeaderElectionConfig(args.lease_namespace, args.lease_name, default_identity(),
                                          lease_duration=args.leader_elect_lease_duration,
                                          renew_deadline=args.leader_elect_renew_deadline,
                                          retry_period=args.leader_elect_retry_period)
            elector = LeaderElector(client, config)
            while True:
                await elector.run(lambda: scheduler().run())
                log.warning("leader election lost; campaigning again")
        except asyncio.CancelledError:
            log.info("stopping")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m boxkube.scheduler", description="boxkube scheduler")
    p.add_argument("--kubeconfig", help="kubeconfig of the cluster (default: $KUBECONFIG or ~/.kube/config)")
    p.add_argument("--leader-elect", action="store_true",
                   help="take a Lease before scheduling, so several copies can run and one takes over from another")
    p.add_argument("--lease-namespace", default="kube-system")
    p.add_argument("--lease-name", default="kube-scheduler")
    p.add_argument("--leader-elect-lease-duration", type=_seconds, default=DEFAULT_LEASE_DURATION)
    p.add_argument("--leader-elect-renew-deadline", type=_seconds, default=DEFAULT_RENEW_DEADLINE)
    p.add_argument("--leader-elect-retry-period", type=_seconds, default=DEFAULT_RETRY_PERIOD)
    p.add_argument("--percentage-of-nodes-to-score", type=_percentage, default=0,
                   help="stop filtering once this share of the nodes fits (0: upstream's adaptive default)")
    p.add_argument("--log-level", default="info")
    args = p.parse_args(argv)
    try:
        logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        run_loop(_run(args))
    except (ConfigError, ValueError, TimeoutError, ApiError, OSError) as e:
        print(f"ERROR: {e or type(e).__name__}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
