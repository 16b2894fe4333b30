"""The commands of `boxkube`: what each one does once its flags are parsed."""

from __future__ import annotations

import argparse
import re
import shlex
import subprocess
import sys
from pathlib import Path

import boxkube
from boxkube.cli.context import Context
from boxkube.cluster.binaries import kubectl_binary
from boxkube.cluster.config import load_config
from boxkube.cluster.create import create_cluster
from boxkube.cluster.delete import delete_cluster
from boxkube.cluster.errors import ClusterError
from boxkube.cluster.images import BuildOptions, build_node_image
from boxkube.cluster.kubeconfig import dump_kubeconfig
from boxkube.cluster.names import DEFAULT_CLUSTER_NAME, validate_cluster_name
from boxkube.cluster.providers import available_providers
from boxkube.cluster.spec import ClusterSpec
from boxkube.cluster.state import cluster_dir


def _path(text: str | None) -> Path | None:
    """A path given on the command line, absolute (it is remembered for later commands)."""
    return Path(text).expanduser().absolute() if text else None


def _name_flag(name: str) -> str:
    return "" if name == DEFAULT_CLUSTER_NAME else f" --name {name}"


def create_cluster_command(args: argparse.Namespace, ctx: Context) -> int:
    config = load_config(Path(args.config)) if args.config else None
    if config and config.nodes and args.nodes is not None:
        raise ClusterError("give the nodes either with --nodes or in --config, not both")
    spec = ClusterSpec(
        name=validate_cluster_name(args.name or (config and config.name) or DEFAULT_CLUSTER_NAME),
        provider=args.provider,
        nodes=config.worker_count() if config and config.nodes else args.nodes,
        config=config,
        kubeconfig=_path(args.kubeconfig),
        wait=args.wait,
        retain=args.retain,
    )
    created = create_cluster(spec, home=ctx.home, environ=ctx.environ, providers=ctx.providers, progress=ctx.progress())
    say = ctx.progress().info
    say(f'Set kubectl context to "{created.context}" in {created.kubeconfig}')
    say(f"The cluster's own kubeconfig: {created.own_kubeconfig}")
    say("You can now use your cluster with:")
    say("")
    say(f"boxkube kubectl{_name_flag(created.name)} -- get ns")
    return 0


def delete_cluster_command(args: argparse.Namespace, ctx: Context) -> int:
    name = validate_cluster_name(args.name)
    progress = ctx.progress()
    progress.info(f'Deleting cluster "{name}" ...')
    found = delete_cluster(
        name,
        home=ctx.home,
        environ=ctx.environ,
        providers=ctx.providers,
        progress=progress,
        kubeconfig=_path(args.kubeconfig),
    )
    if not found:
        progress.info(f'No cluster named "{name}" was found; nothing to delete.')
    return 0


def get_clusters_command(args: argparse.Namespace, ctx: Context) -> int:
    names = sorted({name for provider in available_providers(ctx.providers) for name in provider.list()})
    if not names:
        print("No boxkube clusters found.", file=ctx.stderr)
    for name in names:
        print(name, file=ctx.stdout)
    return 0


def get_kubeconfig_command(args: argparse.Namespace, ctx: Context) -> int:
    name = validate_cluster_name(args.name)
    state = cluster_dir(ctx.home, name).load()
    config = ctx.providers(state.provider).kubeconfig(name)
    ctx.stdout.write(dump_kubeconfig(config))
    return 0


def get_nodes_command(args: argparse.Namespace, ctx: Context) -> int:
    name = validate_cluster_name(args.name)
    state = cluster_dir(ctx.home, name).load()
    for node in ctx.providers(state.provider).nodes(name):
        print(node, file=ctx.stdout)
    return 0


def kubectl_command(args: argparse.Namespace, ctx: Context) -> int:
    name = validate_cluster_name(args.name)
    cdir = cluster_dir(ctx.home, name)
    cdir.load()  # a clear error for a missing cluster
    if not cdir.kubeconfig_file.is_file():
        raise ClusterError(f'cluster "{name}" has no kubeconfig yet (was its creation interrupted?)')
    kubectl_args = list(args.kubectl_args)
    if kubectl_args[:1] == ["--"]:
        kubectl_args = kubectl_args[1:]
    env = dict(ctx.environ)
    env["KUBECONFIG"] = str(cdir.kubeconfig_file)
    # kubectl gets the same Ctrl-C as we do: a moment to finish on its own
    return _run_child([str(kubectl_binary()), *kubectl_args], ctx, env, grace=5.0)


def _exit_code(returncode: int) -> int:
    """A child's exit code as a shell reports it (killed by signal N -> 128+N)."""
    return 128 - returncode if returncode < 0 else returncode


# A node's name is a lowercase RFC 1123 subdomain (checked here so that no other text ends up in a URL).
_NODE_NAME = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")


def _node_target(args: argparse.Namespace, ctx: Context) -> tuple[str, str, str]:
    """The cluster, its provider and the node a node command is about."""
    name = validate_cluster_name(args.name)
    if len(args.node) > 253 or not _NODE_NAME.fullmatch(args.node):
        raise ClusterError(f'invalid node name "{args.node}": a node name is lowercase letters, digits, "-" and "."')
    return name, cluster_dir(ctx.home, name).load().provider, args.node


def stop_node_command(args: argparse.Namespace, ctx: Context) -> int:
    name, provider, node = _node_target(args, ctx)
    say = ctx.progress().info
    if not ctx.providers(provider).stop_node(name, node):
        say(f'Node "{node}" is already stopped; nothing to do.')
        return 0
    say(f'Stopped node "{node}": it lost power, so it no longer renews its Lease, reports status or runs pods.')
    say("It turns NotReady (Unknown) after the node monitor grace period; after the pod eviction timeout")
    say(f"its pods are replaced on other nodes. Start it again with: boxkube node start {node}{_name_flag(name)}")
    return 0


def start_node_command(args: argparse.Namespace, ctx: Context) -> int:
    name, provider, node = _node_target(args, ctx)
    say = ctx.progress().info
    if not ctx.providers(provider).start_node(name, node):
        say(f'Node "{node}" is already running; nothing to do.')
        return 0
    say(f'Started node "{node}": it reboots, rejoins the cluster and becomes Ready within seconds;')
    say("the pods still bound to it start again, and those deleted meanwhile are cleaned up.")
    return 0


def add_node_command(args: argparse.Namespace, ctx: Context) -> int:
    name = validate_cluster_name(args.name)
    provider = ctx.providers(cluster_dir(ctx.home, name).load().provider)
    progress = ctx.progress()
    progress.info(f'Adding {args.count} {args.role} node{"s" if args.count > 1 else ""} to cluster "{name}" ...')
    added = provider.add_nodes(name, args.count, args.wait, progress)
    progress.info(f"Added {', '.join(added)}; see them with: boxkube kubectl{_name_flag(name)} -- get nodes")
    return 0


def remove_node_command(args: argparse.Namespace, ctx: Context) -> int:
    name, provider, node = _node_target(args, ctx)
    progress = ctx.progress()
    ctx.providers(provider).remove_node(name, node, progress)
    progress.info(f'Removed node "{node}"; its pods are made again on the other nodes by their controllers.')
    return 0


def build_node_image_command(args: argparse.Namespace, ctx: Context) -> int:
    options = BuildOptions(rebuild=args.rebuild, rebuild_base=args.rebuild_base, mirror=args.debian_mirror)
    progress = ctx.progress()
    images = build_node_image(options, environ=ctx.environ, progress=progress)
    progress.info(f"Node image: {images.node}")
    progress.info(f"Workload images: {', '.join(images.workloads)}")
    return 0


def load_image_command(args: argparse.Namespace, ctx: Context) -> int:
    name = validate_cluster_name(args.name)
    provider = ctx.providers(cluster_dir(ctx.home, name).load().provider)
    load = getattr(provider, "load_images", None)
    if load is None:
        raise ClusterError(f'cluster "{name}" has simulated nodes ({provider.name} provider), which run no images; '
                           "load images into a docker cluster")
    progress = ctx.progress()
    copied = load(name, args.images)
    for node, image in copied:
        progress.done(f'Loaded image "{image}" into node {node}')
    for image in dict.fromkeys(args.images):
        if not any(i == image for _node, i in copied):
            progress.info(f'Image "{image}" is already on every node of cluster "{name}"; nothing to do.')
    return 0


def conformance_command(args: argparse.Namespace, ctx: Context) -> int:
    """Run the conformance suite (boxkube/conformance) with pytest, in a child process of this Python.

    A child rather than pytest.main() here: a test run imports the suite's modules and plugins and
    changes process-wide state (sys.path, warnings, logging, signal handlers) that should not leak
    into the CLI, the child sees exactly the environment of the command (KUBECONFIG included), and
    Ctrl-C or a hung test stops only it. pytest prints the progress, the failures and the results
    table (the suite's conftest makes it, the same as under a plain `pytest conformance/`).
    """
    from boxkube.conformance import SUITE_DIR

    argv = [sys.executable, "-m", "pytest", str(SUITE_DIR), "-c", str(SUITE_DIR / "pytest.ini"),
            "--rootdir", str(SUITE_DIR), "-q"]
    node_stop, node_start = args.node_stop, args.node_start
    if args.name:
        if args.kubeconfig:
            raise ClusterError("give --name (a boxkube cluster) or --kubeconfig (any cluster), not both")
        name = validate_cluster_name(args.name)
        cdir = cluster_dir(ctx.home, name)
        cdir.load()         # a clear error for a cluster that does not exist
        argv += ["--kubeconfig", str(cdir.kubeconfig_file)]
        boxkube = f"{shlex.quote(sys.executable)} -m boxkube.cli node"
        node_stop = node_stop or f"{boxkube} stop {{node}} --name {name}"
        node_start = node_start or f"{boxkube} start {{node}} --name {name}"
    if bool(node_stop) != bool(node_start):
        raise ClusterError("give both --node-stop and --node-start, or neither")
    if node_stop:
        argv += ["--conformance-node-stop", node_stop, "--conformance-node-start", node_start]
    if args.kubeconfig:
        argv += ["--kubeconfig", str(_path(args.kubeconfig))]
    if args.context:
        argv += ["--context", args.context]
    if args.focus:
        argv += ["--conformance-focus", args.focus]
    if args.junit_xml:
        argv += ["--junit-xml", str(_path(args.junit_xml))]
    if args.image_web:
        argv += ["--conformance-image-web", args.image_web]
    if args.image_tools:
        argv += ["--conformance-image-tools", args.image_tools]
    if args.examples:
        argv += ["--conformance-examples", str(args.examples)]
    returncode = _run_child(argv, ctx)
    if returncode == _PYTEST_NO_TESTS:
        raise ClusterError(f'no conformance test matches --focus "{args.focus}"' if args.focus
                           else "no conformance test was found")
    return returncode


_PYTEST_NO_TESTS = 5


def _run_child(argv: list[str], ctx: Context, env: dict[str, str] | None = None, grace: float = 10.0) -> int:
    """Run a child process with the command's environment (or `env`) and output streams; its exit code.
    On Ctrl-C (which the child gets too) it has `grace` seconds to end before it is killed."""
    env = dict(ctx.environ) if env is None else env
    try:
        ctx.stdout.fileno()
        ctx.stderr.fileno()
    except (AttributeError, OSError, ValueError):
        # Not real files (tests): collect the output and pass it on.
        done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
        ctx.stdout.write(done.stdout)
        ctx.stderr.write(done.stderr)
        return _exit_code(done.returncode)
    ctx.stdout.flush()
    ctx.stderr.flush()
    proc = subprocess.Popen(argv, env=env, stdout=ctx.stdout, stderr=ctx.stderr)
    try:
        returncode = proc.wait()
    except KeyboardInterrupt:
        try:
            returncode = proc.wait(timeout=grace)
        except (subprocess.TimeoutExpired, KeyboardInterrupt):
            proc.kill()
            returncode = proc.wait()
    return _exit_code(returncode)


def version_command(args: argparse.Namespace, ctx: Context) -> int:
    print(version_text(), file=ctx.stdout)
    return 0


def version_text() -> str:
    return f"boxkube {boxkube.__version__} (Kubernetes API {boxkube.KUBERNETES_VERSION})"
