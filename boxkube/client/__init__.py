"""boxkube's asyncio Kubernetes client: what the scheduler, controllers and node agent are built on.

- `ApiClient`: get, list (pages, selectors), create, replace, patch (merge,
  strategic, json, apply), delete, status/scale/binding subresources and watch,
  for any resource described by a `ResourceType` (`resource("pods")`).
  Failures raise `ApiError` with the server's Status (`e.is_not_found`, ...),
  or `TransportError` (an OSError) when no answer came.
- `Informer`: a list + watch cache of one resource with add/update/delete
  handlers, indexes, resync and relist on 410 Gone; `InformerFactory` shares them.
- `EventRecorder`: core/v1 Events for `kubectl describe`, repeats counted.
- `WorkQueue`: client-go's work queue (dedup, one worker per key, delays,
  per-key exponential back-off, draining shutdown).

    async with ApiClient.from_kubeconfig() as client:
        pods = Informer(client, "pods", "default")
        queue: WorkQueue[str] = WorkQueue()
        pods.add_event_handler(on_add=lambda p: queue.add(object_key(p)))
        async with pods:
            await pods.wait_for_sync()
            key = await queue.get()
"""
from boxkube.client.api import ADDED, BOOKMARK, DELETED, ERROR, MODIFIED, PATCH_TYPES, ApiClient, Watch, WatchEvent
from boxkube.client.config import ClientConfig, ConfigError
from boxkube.client.errors import ApiError, TransportError
from boxkube.client.events import EventRecorder
from boxkube.client.informer import EventHandler, Informer, InformerFactory
from boxkube.client.resources import ResourceType, resource, resource_path
from boxkube.client.store import (
    LABEL_INDEX,
    NAMESPACE_INDEX,
    DeletedFinalStateUnknown,
    IndexFunc,
    Store,
    index_by_label,
    index_by_namespace,
    object_key,
    split_key,
)
from boxkube.client.workqueue import (
    BucketRateLimiter,
    ItemExponentialFailureRateLimiter,
    MaxOfRateLimiter,
    RateLimiter,
    ShutDown,
    WorkQueue,
    default_controller_rate_limiter,
)

__all__ = [
    "ADDED", "BOOKMARK", "DELETED", "ERROR", "MODIFIED", "PATCH_TYPES",
    "ApiClient", "ApiError", "TransportError", "ClientConfig", "EventRecorder", "ConfigError", "ResourceType", "Watch", "WatchEvent",
    "resource", "resource_path",
    "DeletedFinalStateUnknown", "EventHandler", "IndexFunc", "Informer", "InformerFactory", "Store",
    "LABEL_INDEX", "NAMESPACE_INDEX", "index_by_label", "index_by_namespace", "object_key", "split_key",
    "BucketRateLimiter", "ItemExponentialFailureRateLimiter", "MaxOfRateLimiter", "RateLimiter", "ShutDown",
    "WorkQueue", "default_controller_rate_limiter",
]
