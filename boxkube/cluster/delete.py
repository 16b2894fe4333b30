"""Deleting a cluster: remove its kubeconfig entries, stop what runs, remove its folder.

Like kind, deleting is idempotent: a cluster that does not exist is not an
error (its leftover kubeconfig entries are still removed).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

from boxkube.cluster.errors import ClusterError, ClusterNotFoundError
from boxkube.cluster.kubeconfig import kubeconfig_paths, unexport_kubeconfig
from boxkube.cluster.progress import Progress
from boxkube.cluster.providers import ProviderFactory
from boxkube.cluster.state import ClusterState, cluster_dir

log = logging.getLogger(__name__)


def delete_cluster(
    name: str,
    *,
    home: Path,
    environ: Mapping[str, str],
    providers: ProviderFactory,
    progress: Progress,
    kubeconfig: Path | None = None,
) -> bool:
    """Delete cluster `name`; whether there was anything to delete."""
    cdir = cluster_dir(home, name)
    state: ClusterState | None = None
    if cdir.exists():
        try:
            state = cdir.load()
        except ClusterNotFoundError:
            log.warning("%s has no state file; removing the folder only", cdir.root)
        except ClusterError as e:
            log.warning("%s; removing the folder only", e)

    # Kubeconfig entries: where this cluster's were written, else where kubectl looks.
    paths = [Path(p) for p in state.kubeconfig_exports] if state else kubeconfig_paths(kubeconfig, environ)
    if kubeconfig is not None and Path(kubeconfig) not in paths:
        paths.append(Path(kubeconfig))
    kubeconfig_error: ClusterError | None = None
    changed: list[Path] = []
    try:
        changed = unexport_kubeconfig(name, paths)
    except ClusterError as e:  # go on deleting, report at the end (as kind does)
        kubeconfig_error = e
    for path in changed:
        progress.done(f"Removed kubeconfig entries from {path}")

    found = bool(changed) or cdir.exists()
    if state is not None:
        providers(state.provider).delete(name, progress)
    elif cdir.exists():
        with progress.step(f"Removing {cdir.root}"):
            cdir.remove()
    if kubeconfig_error is not None:
        raise ClusterError(f"deleted the cluster but not its kubeconfig entries: {kubeconfig_error}")
    return found
