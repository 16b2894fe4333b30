"""What every controller is: informers feed keys into a work queue; workers reconcile one key at a time.

A reconcile reads the world from the informers' caches and makes one step
toward the desired state; it may run again at any time (level-triggered), so
it never relies on the event that queued it. A failed reconcile is retried
with per-key exponential back-off; a successful one forgets the key's
failures. Keys are `namespace/name` (or `name` for cluster-scoped objects).
"""
from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any, ClassVar

from boxkube.client import ApiClient, ApiError, EventRecorder, Informer, InformerFactory, WorkQueue
from boxkube.client.store import DeletedFinalStateUnknown, object_key
from boxkube.controllers.ownership import controller_of

log = logging.getLogger(__name__)

Obj = dict[str, Any]


class RetryLater(Exception):
    """Raised by a reconcile that must wait for the world (a Node to appear, content to go):
    retried with back-off and logged in one line, as an expected condition, not as a failure."""


@dataclass(frozen=True)
class Settings:
    """What the controllers are told at start (`python -m boxkube.controllers` flags, from the cluster config)."""

    # A node whose Lease is not renewed for this long is NotReady/Unknown (upstream 40 s).
    node_monitor_grace_period: float = 10.0
    # Pods stay on a NotReady/unreachable node this long before eviction (upstream 300 s).
    pod_eviction_timeout: float = 20.0
    # Node IPAM hands each node a /node_cidr_mask_size of this range as spec.podCIDR.
    cluster_cidr: str = "10.244.0.0/16"
    node_cidr_mask_size: int = 24
    # The pod garbage collector's pass runs this often (upstream's fixed gcCheckPeriod is 20 s); a node
    # missing from its cache is looked up after twice this, and its pods force-deleted if it is gone.
    pod_gc_period: float = 5.0
    # Succeeded/Failed pods beyond this many are deleted, oldest first (upstream default); 0 disables.
    terminated_pod_gc_threshold: int = 12500
    # The cluster CA certificate (PEM file) the root CA publisher puts in every namespace's kube-root-ca.crt
    # (upstream --root-ca-file); empty: the CA the controller manager's kubeconfig trusts.
    root_ca_file: str = ""


class Controller:
    """Subclasses set `name` (their events' component is `<name>-controller`), wire informers
    in `setup()` and implement `reconcile(key)`."""

    name: ClassVar[str] = ""
    # Its events' source.component; upstream's names are not always `<name>-controller`.
    component: ClassVar[str] = ""
    workers: ClassVar[int] = 2

    @classmethod
    def event_component(cls) -> str:
        return cls.component or f"{cls.name}-controller"

    def __init__(self, client: ApiClient, informers: InformerFactory, recorder: EventRecorder,
                 settings: Settings = Settings()):
        self.client, self.informers, self.recorder, self.settings = client, informers, recorder, settings
        self.queue: WorkQueue[str] = WorkQueue(name=self.name)
        self.log = logging.getLogger(f"boxkube.controllers.{self.name}")
        self.setup()

    def setup(self) -> None:
        """Make the informers this controller reads and add the handlers that enqueue keys."""

    async def reconcile(self, key: str) -> None:
        raise NotImplementedError

    # -- enqueueing helpers -----------------------------------------------------

    def enqueue(self, obj: Obj | DeletedFinalStateUnknown) -> None:
        if isinstance(obj, DeletedFinalStateUnknown):
            self.queue.add(obj.key)
        else:
            self.queue.add(object_key(obj))

    def watch(self, resource: str, **kwargs: Any) -> Informer:
        """The shared informer of `resource`, with this controller enqueueing every object it sees."""
        informer = self.informers.informer(resource, **kwargs)
        informer.add_event_handler(on_add=self.enqueue, on_update=lambda old, new: self.enqueue(new),
                                   on_delete=self.enqueue)
        return informer

    def watch_owned(self, resource: str, owner_kind: str, **kwargs: Any) -> Informer:
        """The shared informer of `resource`, enqueueing the controlling owner (of kind `owner_kind`)
        of every object that changes — how a ReplicaSet hears about its pods."""
        informer = self.informers.informer(resource, **kwargs)

        def owner(obj: Obj | DeletedFinalStateUnknown) -> None:
            obj = obj.obj if isinstance(obj, DeletedFinalStateUnknown) else obj
            ref = controller_of(obj)
            if ref and ref.get("kind") == owner_kind:
                namespace = (obj.get("metadata") or {}).get("namespace")
                self.queue.add(f"{namespace}/{ref['name']}" if namespace else ref["name"])

        def changed(old: Obj, new: Obj) -> None:
            owner(new)
            if controller_of(old) != controller_of(new):
                owner(old)

        informer.add_event_handler(on_add=owner, on_update=changed, on_delete=owner)
        return informer

    # -- running ------------------------------------------------------------------

    async def run(self) -> None:
        """Run the workers until cancelled; the manager starts informers and waits for their sync first."""
        workers = [asyncio.create_task(self._worker(i), name=f"{self.name}-{i}") for i in range(self.workers)]
        try:
            await asyncio.gather(*workers)
        finally:
            self.queue.shutdown()
            for w in workers:
                w.cancel()
            await asyncio.gather(*workers, return_exceptions=True)

    async def _worker(self, _: int) -> None:
        async for key in self.queue:
            try:
                await self.reconcile(key)
            except asyncio.CancelledError:
                raise
            except Exception as e:  # a reconcile failure is retried with back-off, never fatal
                retries = self.queue.num_requeues(key)
                if isinstance(e, ApiError) and (e.is_conflict or e.is_already_exists):
                    # Lost a race with another writer or with our own cache: normal, retried.
                    self.log.debug("%s: %s on %s, retrying", self.name, e.reason, key)
                elif isinstance(e, RetryLater):
                    self.log.info("%s: %s not done yet (retry %d): %s", self.name, key, retries, e)
                else:
                    self.log.warning("%s: error syncing %s (retry %d): %s", self.name, key, retries, e,
                                     exc_info=not isinstance(e, ApiError))
                self.queue.add_rate_limited(key)
            else:
                self.queue.forget(key)
            finally:
                self.queue.done(key)
