"""Creating a cluster: claim its folder, let the provider bring it up, write the kubeconfig.

Any failure (or Ctrl-C) deletes what was made, unless the spec says `retain`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from boxkube.cluster.delete import delete_cluster
from boxkube.cluster.errors import ClusterError
from boxkube.cluster.kubeconfig import export_kubeconfig, path_for_merge, write_kubeconfig
from boxkube.cluster.names import kubeconfig_name
from boxkube.cluster.progress import Progress, SilentProgress
from boxkube.cluster.providers import ProviderFactory
from boxkube.cluster.providers.base import Provider
from boxkube.cluster.spec import ClusterSpec
from boxkube.cluster.state import ClusterDir, ClusterState, cluster_dir
from boxkube.cluster.steps import Step, run_steps

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CreatedCluster:
    name: str
    context: str
    # The file the cluster's entries were merged into.
    kubeconfig: Path
    # The cluster's own kubeconfig, in its folder.
    own_kubeconfig: Path
    server: str


def create_cluster(
    spec: ClusterSpec,
    *,
    home: Path,
    environ: Mapping[str, str],
    providers: ProviderFactory,
    progress: Progress,
) -> CreatedCluster:
    """Create the cluster of `spec`; ClusterError naming the failed step if that fails."""
    provider = providers(spec.provider)
    spec = provider.validate(spec)
    if spec.wait <= 0:
        raise ClusterError(f"--wait must be a positive number of seconds, not {spec.wait:g}")
    cdir = cluster_dir(home, spec.name)
    cdir.claim(ClusterState(name=spec.name, provider=provider.name, nodes=spec.nodes or 0))

    progress.info(f'Creating cluster "{spec.name}" ...')
    target = path_for_merge(spec.kubeconfig, environ)
    try:
        provider.create(spec, progress)
        run_steps([Step("Writing kubeconfig", lambda: _write_kubeconfig(provider, cdir, target))], progress)
    except BaseException as e:
        notes = _clean_up(spec, home=home, environ=environ, providers=providers, cdir=cdir)
        if isinstance(e, ClusterError):  # StepFailedError's message starts with the step's title
            raise ClusterError(f'failed to create cluster "{spec.name}": {e.message}', [*e.details, *notes]) from e
        if isinstance(e, Exception):
            raise ClusterError(f'failed to create cluster "{spec.name}": {e}', notes) from e
        for note in notes:
            progress.info(note)
        raise
    state = cdir.load()
    assert state.server is not None
    return CreatedCluster(
        name=spec.name,
        context=kubeconfig_name(spec.name),
        kubeconfig=target,
        own_kubeconfig=cdir.kubeconfig_file,
        server=state.server,
    )


def _write_kubeconfig(provider: Provider, cdir: ClusterDir, target: Path) -> None:
    config = provider.kubeconfig(cdir.name)
    write_kubeconfig(cdir.kubeconfig_file, config)
    # Recorded before the merge, so that a clean-up removes even a half-done merge.
    state = cdir.load()
    state.kubeconfig_exports.append(str(target))
    cdir.save(state)
    export_kubeconfig(config, target)


def _clean_up(
    spec: ClusterSpec,
    *,
    home: Path,
    environ: Mapping[str, str],
    providers: ProviderFactory,
    cdir: ClusterDir,
) -> list[str]:
    """Delete what a failed creation made (unless retained); lines to show about it."""
    if spec.retain:
        return [
            f"kept the cluster for debugging (--retain): its files and logs are in {cdir.root}",
            f"delete it with: boxkube delete cluster --name {spec.name}",
        ]
    try:
        delete_cluster(spec.name, home=home, environ=environ, providers=providers, progress=SilentProgress())
    except Exception as e:  # clean-up must not hide the original error
        log.debug("clean-up failed", exc_info=True)
        return [f"cleaning up failed too: {e}; see {cdir.root}"]
    return ["deleted what was made (pass --retain to keep it for debugging)"]
