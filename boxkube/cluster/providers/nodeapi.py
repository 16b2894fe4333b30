"""What the `boxkube node` commands do through a cluster's API, whatever its provider.

Removing a node is what an administrator does before taking a machine away,
a short `kubectl drain` and then `kubectl delete node`: the Node is cordoned
(`spec.unschedulable`), so nothing new lands there, then deleted. Its pods go
with it: the node's agent, seeing its Node gone, stops them and deletes them
at once, and the pod garbage collector deletes those bound to a Node that no
longer exists (upstream podgc's orphaned pods) if the agent is not there to;
their controllers make new ones on the other nodes.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from boxkube.cluster.errors import ClusterError
from boxkube.cluster.state import ClusterDir

if TYPE_CHECKING:
    from boxkube.client import ApiClient


@contextlib.asynccontextmanager
async def cluster_api(cdir: ClusterDir) -> AsyncIterator["ApiClient"]:
    """boxkube's own client of the cluster in `cdir`; what fails in the block is one ClusterError line."""
    # Imported here: every other command starts without loading the API client.
    from boxkube.client import ApiClient, ApiError, ConfigError, TransportError

    name = cdir.name
    if not cdir.kubeconfig_file.is_file():
        raise ClusterError(f'cluster "{name}" has no kubeconfig yet (was its creation interrupted?)')
    try:
        async with ApiClient.from_kubeconfig(cdir.kubeconfig_file, timeout=10.0, max_retries=2) as client:
            yield client
    except ApiError as e:
        raise ClusterError(f'the API server of cluster "{name}" refused: {e}') from None
    except TransportError as e:
        raise ClusterError(f'cannot reach the API server of cluster "{name}": {e or type(e).__name__}') from None
    except ConfigError as e:
        raise ClusterError(f'the kubeconfig of cluster "{name}": {e}') from None


def retire_node(cdir: ClusterDir, node: str) -> bool:
    """Cordon node `node` of the cluster in `cdir`, then delete its Node; False if it has no Node."""
    return asyncio.run(_retire(cdir, node))


async def _retire(cdir: ClusterDir, node: str) -> bool:
    from boxkube.client import ApiError, resource

    nodes = resource("nodes")
    async with cluster_api(cdir) as client:
        try:
            await client.patch(nodes, node, {"spec": {"unschedulable": True}})
            await client.delete(nodes, node)
        except ApiError as e:
            if e.is_not_found:      # its agent never registered it, or someone deleted it already
                return False
            raise
    return True
