"""The interface every provider (local, docker, ...) implements, and what they share."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from boxkube.cluster.errors import ClusterError
from boxkube.cluster.kubeconfig import Kubeconfig, build_kubeconfig
from boxkube.cluster.pki import certificate_authority_data
from boxkube.cluster.progress import Progress
from boxkube.cluster.spec import ClusterSpec
from boxkube.cluster.state import cluster_dir


def saved_kubeconfig(home: Path, name: str) -> Kubeconfig:
    """The kubeconfig of cluster `name` from what its state saved: the API server's address, the token
    and the CA (a cluster without TLS has none)."""
    state = cluster_dir(home, name).load()
    if not state.server or not state.token:
        raise ClusterError(f'cluster "{name}" has no API server yet (was its creation interrupted?)')
    ca_data = None
    if state.certificate_authority:
        try:
            ca_data = certificate_authority_data(Path(state.certificate_authority))
        except OSError as e:
            raise ClusterError(f"cannot read the CA certificate of cluster \"{name}\": {e.strerror or e}") from None
    return build_kubeconfig(name, state.server, state.token, ca_data)


class Provider(Protocol):
    """Brings clusters up and down in one way (local processes, Docker containers, ...).

    The cluster's folder (see boxkube.cluster.state) is shared by all
    providers: `create_cluster` claims it and records the provider's name in
    it before calling `create`, and writes the kubeconfig after it.
    """

    name: str

    def validate(self, spec: ClusterSpec) -> ClusterSpec:
        """`spec` with this provider's defaults filled in; NotSupportedError for what it cannot do."""
        ...

    def create(self, spec: ClusterSpec, progress: Progress) -> None:
        """Bring up the control plane (and nodes) of the claimed cluster `spec.name`, as named steps.

        Saves to the cluster's state everything it starts as soon as it is
        started, so that `delete` can clean up after a failure at any point.
        """
        ...

    def delete(self, name: str, progress: Progress) -> None:
        """Stop everything of cluster `name` and remove its folder. Missing parts are not an error."""
        ...

    def list(self) -> list[str]:
        """Names of this provider's clusters."""
        ...

    def kubeconfig(self, name: str) -> Kubeconfig:
        """A kubeconfig (as a dict) for cluster `name` alone."""
        ...

    def nodes(self, name: str) -> list[str]:
        """The names of the nodes of cluster `name` (for a docker cluster, its node containers,
        the control plane's included, as `kind get nodes` lists them)."""
        ...

    def stop_node(self, name: str, node: str) -> bool:
        """Stop node `node` of cluster `name` as a machine that loses power (the node agent stops
        without a word; its containers are gone). False if it was stopped already; ClusterError for a
        node the cluster does not have or that this provider cannot stop."""
        ...

    def start_node(self, name: str, node: str) -> bool:
        """Start a stopped node again: it boots, rejoins the cluster and runs its pods anew. False if
        it was running already; ClusterError as for `stop_node`."""
        ...

    def add_nodes(self, name: str, count: int, wait: float, progress: Progress) -> list[str]:
        """Add `count` worker nodes to the running cluster `name`, as its creation makes its workers, named
        the first free of NAME-worker, NAME-worker2, ...; as named steps, the last waiting up to `wait`
        seconds until they are Ready. Their names."""
        ...

    def remove_node(self, name: str, node: str, progress: Progress) -> None:
        """Take worker node `node` out of cluster `name`: cordon it, delete its Node (its pods are made
        again elsewhere by their controllers), then stop and remove what ran it. ClusterError for a node
        the cluster does not have, or for its control plane."""
        ...
