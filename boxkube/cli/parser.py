"""The command line of `boxkube`, built from one table of commands."""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from boxkube.cli import commands
from boxkube.cli.context import Context
from boxkube.cluster.images.base import DEFAULT_MIRROR
from boxkube.cluster.names import DEFAULT_CLUSTER_NAME
from boxkube.cluster.providers import DEFAULT_PROVIDER, PROVIDER_NAMES
from boxkube.cluster.spec import DEFAULT_WAIT_SECONDS

PROG = "boxkube"

Handler = Callable[[argparse.Namespace, Context], int]


class UsageError(Exception):
    """A command line that cannot be parsed; `prog` is the (sub)command it concerns."""

    def __init__(self, message: str, prog: str) -> None:
        super().__init__(message)
        self.prog = prog


class Parser(argparse.ArgumentParser):
    """An ArgumentParser that raises UsageError instead of printing usage and exiting."""

    def __init__(self, *args: object, hint: str | None = None, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.hint = hint

    def error(self, message: str) -> None:  # type: ignore[override]
        invalid = re.match(r"argument COMMAND: invalid choice: '([^']*)'", message)
        if invalid:
            message = f'unknown command "{self.prog} {invalid.group(1)}"'
        elif "required: COMMAND" in message:
            message = f'"{self.prog}" needs a command'
        if self.hint:
            message = f"{message}; {self.hint}"
        raise UsageError(message, self.prog)


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, not {value}")
    return value


def _positive_seconds(text: str) -> float:
    try:
        value = float(text.removesuffix("s"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, not {text}")
    return value


def _name(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--name", default=DEFAULT_CLUSTER_NAME, help=f"cluster name (default: {DEFAULT_CLUSTER_NAME})")


def _create_cluster_flags(parser: argparse.ArgumentParser) -> None:
    # No default here: a name in --config counts when --name is not given.
    parser.add_argument("--name", help=f"cluster name (default: the config's, else {DEFAULT_CLUSTER_NAME})")
    parser.add_argument("--config", metavar="FILE",
                        help="cluster config file (apiVersion: boxkube.dev/v1alpha1, kind: Cluster)")
    parser.add_argument(
        "--provider",
        choices=PROVIDER_NAMES,
        default=DEFAULT_PROVIDER,
        help=f"how to run the cluster (default: {DEFAULT_PROVIDER}; only local works for now)",
    )
    parser.add_argument(
        "--nodes",
        type=_non_negative_int,
        metavar="N",
        help="number of nodes (default: the provider's; local supports only 0 for now)",
    )
    parser.add_argument(
        "--kubeconfig",
        metavar="PATH",
        help="kubeconfig file to add the cluster to (default: $KUBECONFIG or ~/.kube/config)",
    )
    parser.add_argument(
        "--wait",
        type=_positive_seconds,
        default=DEFAULT_WAIT_SECONDS,
        metavar="SECONDS",
        help=f"how long to wait for the control plane to be ready (default: {DEFAULT_WAIT_SECONDS:g})",
    )
    parser.add_argument(
        "--retain", action="store_true", help="keep what was made if creation fails, for debugging"
    )


def _delete_cluster_flags(parser: argparse.ArgumentParser) -> None:
    _name(parser)
    parser.add_argument(
        "--kubeconfig",
        metavar="PATH",
        help="also remove the cluster's entries from this kubeconfig file",
    )


def _build_node_image_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--rebuild", action="store_true", help="build the node and workload images even when they are up to date"
    )
    parser.add_argument(
        "--rebuild-base", action="store_true", help="also build the Debian base again (debootstrap, a minute or two)"
    )
    parser.add_argument(
        "--debian-mirror", metavar="URL", default=DEFAULT_MIRROR,
        help=f"the Debian mirror the base is made from (default: {DEFAULT_MIRROR})",
    )


def _load_image_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("images", metavar="IMAGE", nargs="+", help="an image of this machine's Docker engine")
    _name(parser)


def _no_flags(parser: argparse.ArgumentParser) -> None:
    pass


def _node_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("node", metavar="NODE", help="the node's name (see: boxkube kubectl -- get nodes)")
    _name(parser)


def _positive_int(text: str) -> int:
    value = _non_negative_int(text)
    if value == 0:
        raise argparse.ArgumentTypeError("must be 1 or more, not 0")
    return value


def _add_node_flags(parser: argparse.ArgumentParser) -> None:
    _name(parser)
    parser.add_argument("--role", choices=("worker",), default="worker",
                        help="the new nodes' role (default: worker; a cluster has one control plane)")
    parser.add_argument("--count", type=_positive_int, default=1, metavar="N",
                        help="how many nodes to add (default: 1)")
    parser.add_argument(
        "--wait",
        type=_positive_seconds,
        default=DEFAULT_WAIT_SECONDS,
        metavar="SECONDS",
        help=f"how long to wait for the new nodes to be Ready (default: {DEFAULT_WAIT_SECONDS:g})",
    )


def _kubectl_flags(parser: argparse.ArgumentParser) -> None:
    _name(parser)
    parser.add_argument(
        "kubectl_args", nargs=argparse.REMAINDER, metavar="-- ARGS", help="arguments for kubectl, after --"
    )


def _conformance_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--name", metavar="NAME",
                        help="test boxkube cluster NAME: its kubeconfig, and its nodes stopped and started with "
                             "`boxkube node stop/start` for the lost-node test")
    parser.add_argument("--kubeconfig", metavar="PATH",
                        help="kubeconfig of the cluster to test, any Kubernetes cluster "
                             "(default: $KUBECONFIG, else ~/.kube/config)")
    parser.add_argument("--context", metavar="NAME", help="the kubeconfig's context to use (default: its current one)")
    parser.add_argument("--focus", metavar="PATTERN",
                        help="run only the tests whose name, area or upstream counterpart matches this "
                             "regular expression (case-insensitive)")
    parser.add_argument("--junit-xml", metavar="FILE", help="also write the results as JUnit XML to FILE")
    parser.add_argument("--image-web", metavar="IMAGE",
                        help="image answering HTTP GET / on port 8080 with its pod's name (default: boxkube/hello:1)")
    parser.add_argument("--image-tools", metavar="IMAGE",
                        help="image with sh, wget, seq and timeout (default: boxkube/busybox:1)")
    parser.add_argument("--examples", metavar="N", type=_positive_int,
                        help="random step sequences of the property-based test (default: 2; more finds more)")
    parser.add_argument("--node-stop", metavar="COMMAND",
                        help="shell command stopping node {node} as a power loss would, for the lost-node test "
                             "(without it, or --name, that test is skipped)")
    parser.add_argument("--node-start", metavar="COMMAND", help="shell command starting node {node} again")


@dataclass(frozen=True)
class Command:
    words: tuple[str, ...]
    help: str
    flags: Callable[[argparse.ArgumentParser], None]
    run: Handler
    hint: str | None = None


COMMANDS: Sequence[Command] = (
    Command(
        ("create", "cluster"),
        "Create a cluster and add it to your kubeconfig",
        _create_cluster_flags,
        commands.create_cluster_command,
    ),
    Command(
        ("delete", "cluster"),
        "Delete a cluster: stop it, remove its files and its kubeconfig entries",
        _delete_cluster_flags,
        commands.delete_cluster_command,
    ),
    Command(("get", "clusters"), "List the clusters, one name a line", _no_flags, commands.get_clusters_command),
    Command(("get", "nodes"), "List a cluster's nodes (for docker clusters, its containers), one a line", _name,
            commands.get_nodes_command),
    Command(("get", "kubeconfig"), "Print a cluster's kubeconfig", _name, commands.get_kubeconfig_command),
    Command(
        ("kubectl",),
        "Run kubectl on a cluster: boxkube kubectl [--name NAME] -- ARGS...",
        _kubectl_flags,
        commands.kubectl_command,
        hint="put kubectl's own arguments after --, e.g. boxkube kubectl -- get pods -n kube-system",
    ),
    Command(
        ("node", "add"),
        "Add worker nodes to a running cluster, made as its creation makes them",
        _add_node_flags,
        commands.add_node_command,
    ),
    Command(
        ("node", "remove"),
        "Remove a worker node: cordon it, delete its Node (its pods move elsewhere), remove the machine",
        _node_flags,
        commands.remove_node_command,
    ),
    Command(
        ("node", "stop"),
        "Stop a node as if it lost power; its pods are replaced on other nodes",
        _node_flags,
        commands.stop_node_command,
    ),
    Command(
        ("node", "start"),
        "Start a stopped node again: it reboots and rejoins the cluster",
        _node_flags,
        commands.start_node_command,
    ),
    Command(
        ("build", "node-image"),
        "Build the node image and the workload images (pause, busybox, hello) with no registry",
        _build_node_image_flags,
        commands.build_node_image_command,
    ),
    Command(
        ("load", "image"),
        "Copy images from this machine's Docker engine into every node of a docker cluster",
        _load_image_flags,
        commands.load_image_command,
    ),
    Command(
        ("conformance",),
        "Run the conformance suite against a cluster (any kubeconfig) and print a table of the results",
        _conformance_flags,
        commands.conformance_command,
    ),
    Command(("version",), "Print the version of boxkube", _no_flags, commands.version_command),
)


def _command_list(commands_: Sequence[Command], skip: int) -> str:
    rows = [(" ".join(c.words[skip:]), c.help) for c in commands_]
    width = max(len(words) for words, _ in rows)
    return "\n".join(f"  {words.ljust(width)}  {text}" for words, text in rows)


def _verbose_flag(parser: argparse.ArgumentParser, default: object) -> None:
    parser.add_argument(
        "-v", "--verbose", action="count", default=default, help="show debug logs, and tracebacks of errors"
    )


def build_parser() -> Parser:
    root = Parser(
        prog=PROG,
        usage="%(prog)s [-h] [-v] [--version] COMMAND ...",
        description=(
            "boxkube runs a Kubernetes-compatible cluster in a box (etcd, an API server, ...)\n"
            "that the real kubectl and Kubernetes clients can use.\n\n"
            f"commands:\n{_command_list(COMMANDS, 0)}"
        ),
        epilog=f'Run "{PROG} COMMAND --help" for the flags of a command.',
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _verbose_flag(root, 0)
    root.add_argument("--version", action="version", version=commands.version_text())
    groups: dict[tuple[str, ...], argparse._SubParsersAction] = {
        (): root.add_subparsers(dest="command", metavar="COMMAND", required=True, help=argparse.SUPPRESS)
    }
    for command in COMMANDS:
        for depth in range(1, len(command.words)):
            prefix = command.words[:depth]
            if prefix in groups:
                continue
            members = [c for c in COMMANDS if c.words[:depth] == prefix]
            group = groups[prefix[:-1]].add_parser(
                prefix[-1],
                prog=f"{PROG} {' '.join(prefix)}",
                usage="%(prog)s [-h] [-v] COMMAND ...",
                description=f"commands:\n{_command_list(members, depth)}",
                formatter_class=argparse.RawDescriptionHelpFormatter,
            )
            _verbose_flag(group, argparse.SUPPRESS)
            groups[prefix] = group.add_subparsers(
                dest=f"command{depth}", metavar="COMMAND", required=True, help=argparse.SUPPRESS
            )
        leaf = groups[command.words[:-1]].add_parser(
            command.words[-1], prog=f"{PROG} {' '.join(command.words)}", description=command.help, hint=command.hint
        )
        _verbose_flag(leaf, argparse.SUPPRESS)
        command.flags(leaf)
        leaf.set_defaults(handler=command.run, parser=leaf)
    return root


def parse(argv: Sequence[str]) -> argparse.Namespace:
    """Parse a command line (without the program name); UsageError if it is wrong."""
    args, extra = build_parser().parse_known_args(list(argv))
    if extra:
        # Name the command the stray arguments were given to, with its hint.
        parser: Parser = args.parser
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    return args
