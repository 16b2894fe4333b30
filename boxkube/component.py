"""What the programs of a cluster share (`python -m boxkube.scheduler`, `.controllers`, `.agent`):
flag values written as the upstream components take them, and running until told to stop.

`run(main(), log)` runs on uvloop where installed (uvicorn[standard] brings
it; every component is busy with I/O and JSON), stops cleanly on SIGTERM or
SIGINT (what `boxkube delete cluster` and Ctrl-C send), and turns a failure to
start -- a bad kubeconfig, an API server that cannot be reached or refuses --
into one line on stderr and exit status 1, never a traceback.
"""
from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Coroutine
from typing import Any

from boxkube.client import ApiError, ConfigError, TransportError
from boxkube.client.leaderelection import (
    DEFAULT_LEASE_DURATION, DEFAULT_RENEW_DEADLINE, DEFAULT_RETRY_PERIOD, LeaderElectionConfig, default_identity,
)
from boxkube.api.times import parse_duration

try:
    from uvloop import run as run_loop
except ImportError:  # pragma: no cover - uvloop comes with uvicorn[standard]
    run_loop = asyncio.run


def duration_flag(text: str) -> float:
    """Seconds from a Go duration ("10s", "1m30s", "500ms") or a plain number of seconds ("2.5")."""
    try:
        seconds = float(text)
    except ValueError:
        try:
            seconds = parse_duration(text)
        except ValueError as e:
            raise argparse.ArgumentTypeError(str(e)) from None
    if not 0 <= seconds < float("inf"):
        raise argparse.ArgumentTypeError(f"must be 0 or more seconds, not {text}")
    return seconds


def bool_flag(text: str) -> bool:
    """A Go flag's boolean (`--leader-elect=false`), as the upstream components take it."""
    value = text.lower()
    if value in ("1", "t", "true"):
        return True
    if value in ("0", "f", "false"):
        return False
    raise argparse.ArgumentTypeError(f"not a boolean: {text!r}")


def leader_election_flags(parser: argparse.ArgumentParser, lease_name: str, what: str) -> None:
    """The upstream components' --leader-elect flags; on by default, the Lease kube-system/`lease_name`.
    `what` is what the winner does ("scheduling")."""
    parser.add_argument("--leader-elect", type=bool_flag, nargs="?", const=True, default=True, metavar="BOOL",
                        help=f"take a Lease before {what}, so several copies can run and one takes over from "
                             "another (default: true)")
    parser.add_argument("--lease-namespace", default="kube-system")
    parser.add_argument("--lease-name", default=lease_name)
    parser.add_argument("--leader-elect-lease-duration", type=duration_flag, default=DEFAULT_LEASE_DURATION)
    parser.add_argument("--leader-elect-renew-deadline", type=duration_flag, default=DEFAULT_RENEW_DEADLINE)
    parser.add_argument("--leader-elect-retry-period", type=duration_flag, default=DEFAULT_RETRY_PERIOD)


def leader_election(args: argparse.Namespace) -> LeaderElectionConfig | None:
    """The election those flags ask for; None with --leader-elect=false."""
    if not args.leader_elect:
        return None
    return LeaderElectionConfig(args.lease_namespace, args.lease_name, default_identity(),
                                lease_duration=args.leader_elect_lease_duration,
                                renew_deadline=args.leader_elect_renew_deadline,
                                retry_period=args.leader_elect_retry_period)


async def _until_signalled(main: Coroutine[Any, Any, None], log: logging.Logger) -> None:
    task = asyncio.current_task()
    assert task is not None
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, task.cancel)
    try:
        await main
    except asyncio.CancelledError:
        log.info("stopping")


def run(main: Coroutine[Any, Any, None], log: logging.Logger,
        failures: tuple[type[Exception], ...] = ()) -> int:
    """Run `main` until it returns or a signal stops it; the exit status. `failures`: more exception
    types (besides bad kubeconfigs, API errors and unreachable servers) that mean "cannot start"."""
    try:
        run_loop(_until_signalled(main, log))
    except ApiError as e:
        print(f"ERROR: the API server refused: {e}", file=sys.stderr)
        return 1
    except TransportError as e:
        print(f"ERROR: cannot reach the API server: {e}", file=sys.stderr)
        return 1
    except (ConfigError, ValueError, TimeoutError, *failures) as e:
        print(f"ERROR: {e or type(e).__name__}", file=sys.stderr)
        return 1
    return 0
