"""What the controller tests share: controllers run in-process, waiting for a condition, and a fake kubelet.

A plain module, imported as `from controller_harness import ...` by the tests beside it (pytest's
prepend import mode puts this directory on sys.path when it collects them); tests elsewhere import
it as `tests.controllers.controller_harness`.
"""
from __future__ import annotations

import asyncio
import contextlib
import inspect
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

from boxkube.api.times import now_rfc3339
from boxkube.client import ApiClient, ApiError, EventRecorder, InformerFactory, ResourceType, resource
from boxkube.controllers.base import Controller, Settings

PODS = resource("pods")

Obj = dict[str, Any]


@contextlib.asynccontextmanager
async def running(client: ApiClient, *controller_classes: type[Controller], namespace: str | None = None,
                  settings: Settings = Settings()) -> AsyncIterator[Any]:
    """The controllers working in-process until the block ends, on informers of their own (scoped to
    `namespace` if given) that have synced before the block starts; each records events as its
    `event_component()`. Yields the controller, or the list of them when given several classes."""
    informers = InformerFactory(client, namespace=namespace)
    controllers = [cls(client, informers, EventRecorder(client, cls.event_component()), settings)
                   for cls in controller_classes]
    tasks: list[asyncio.Task] = []
    informers.start()
    try:
        assert await informers.wait_for_sync(10), "informers did not sync within 10 s"
        tasks = [asyncio.create_task(c.run(), name=f"{c.name}-run") for c in controllers]
        yield controllers[0] if len(controllers) == 1 else controllers
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await informers.stop()
        for c in controllers:
            await c.recorder.close()


async def eventually(check: Callable[[], Any], timeout: float = 10.0, interval: float = 0.05,
                     what: str = "condition") -> Any:
    """The first truthy result of `check()` (awaited if it is a coroutine function or returns an
    awaitable), polled every `interval` seconds; fails after `timeout` seconds, naming `what` and
    showing the last result. An exception raised by `check` ends the wait at once."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        result = check()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return result
        assert loop.time() < deadline, f"{what} not reached within {timeout} s (last: {result!r})"
        await asyncio.sleep(interval)


async def get_or_none(client: ApiClient, rt: ResourceType, name: str, namespace: str | None = None) -> Obj | None:
    """The object, or None if there is none (any other error is raised)."""
    try:
        return await client.get(rt, name, namespace)
    except ApiError as e:
        if e.is_not_found:
            return None
        raise


async def assert_nothing_made_in_a_terminating_namespace(client: ApiClient, controller_class: type[Controller],
                                                         made: Callable[[str], Any]) -> None:
    """A controller that makes an object in every namespace (`made(namespace)`: it, or None) makes it,
    then, once the namespace is Terminating and emptied, does not make it again."""
    name = f"term-{uuid.uuid4().hex[:8]}"
    namespaces, configmaps = resource("namespaces"), resource("configmaps")
    await client.create(namespaces, {"metadata": {"name": name}})
    # A held object keeps the namespace Terminating while the test looks.
    await client.create(configmaps, {"metadata": {"name": "hold", "finalizers": ["test.boxkube.dev/hold"]}}, name)
    try:
        async with running(client, controller_class, namespace=name) as controller:
            await eventually(lambda: made(name))
            await client.delete(namespaces, name)

            async def emptied():
                ns = controller.namespaces.store.get(name)
                return ns["status"]["phase"] == "Terminating" and await made(name) is None
            await eventually(emptied)
            await controller.reconcile(name)
            assert await made(name) is None
    finally:
        await client.patch(configmaps, "hold", {"metadata": {"finalizers": None}}, name)


def running_and_ready(pod: Obj) -> bool:
    """Running with a Ready condition that is True: what the fake kubelet makes of a pod it starts."""
    return (pod.get("status") or {}).get("phase") == "Running" and any(
        c["type"] == "Ready" and c["status"] == "True" for c in pod["status"].get("conditions") or [])


class FakeKubelet:
    """Plays the node agent for the pods of one namespace, every `interval` seconds:

    - a pod without a node is bound to `node` (if given; otherwise pods stay unbound);
    - a Pending pod becomes Running and Ready `delay` seconds after it is first seen Pending,
      unless it is held: it carries `hold_annotation` or `hold(pod)` is true (then it stays Pending);
    - a pod being deleted is deleted for good `finish_deletion` seconds later (if given; otherwise
      it is left terminating, as for unbound pods, which the API server deletes at once).

    With `snapshot` given, `snapshots` holds `snapshot(pods)` of the namespace's pods at every round.
    Used as `async with FakeKubelet(client, ns, ...) as kubelet:`; stops (and re-raises a crash of
    its loop) when the block ends.
    """

    def __init__(self, client: ApiClient, namespace: str, *, delay: float = 0.0, hold_annotation: str | None = None,
                 hold: Callable[[Obj], bool] | None = None, node: str | None = None,
                 finish_deletion: float | None = None, snapshot: Callable[[list[Obj]], Any] | None = None,
                 interval: float = 0.03):
        self.client, self.namespace = client, namespace
        self.delay, self.hold_annotation, self.hold, self.node = delay, hold_annotation, hold, node
        self.finish_deletion, self.snapshot, self.interval = finish_deletion, snapshot, interval
        self.snapshots: list[Any] = []
        self.first_pending: dict[str, float] = {}        # uid -> when first seen Pending
        self.deleting: dict[str, asyncio.Task] = {}      # name -> its deletion being finished
        self._task: asyncio.Task | None = None

    def held(self, pod: Obj) -> bool:
        annotations = pod["metadata"].get("annotations") or {}
        return (self.hold_annotation is not None and self.hold_annotation in annotations) or \
            (self.hold is not None and self.hold(pod))

    async def run(self) -> None:
        while True:
            pods = (await self.client.list(PODS, self.namespace))["items"]
            if self.snapshot is not None:
                self.snapshots.append(self.snapshot(pods))
            for pod in pods:
                try:
                    await self._tend(pod)
                except ApiError as e:
                    if not (e.is_not_found or e.is_conflict):     # a pod gone or changed meanwhile: next round
                        raise
            await asyncio.sleep(self.interval)

    async def _tend(self, pod: Obj) -> None:
        meta, status = pod["metadata"], pod.get("status") or {}
        if meta.get("deletionTimestamp"):
            if self.finish_deletion is not None and meta["name"] not in self.deleting:
                self.deleting[meta["name"]] = asyncio.create_task(self._finish(meta["name"]))
            return
        if self.node is not None and not (pod.get("spec") or {}).get("nodeName"):
            await self.client.bind(meta["name"], self.namespace, self.node)
            return
        if status.get("phase") != "Pending" or self.held(pod):
            return
        now = asyncio.get_running_loop().time()
        if now - self.first_pending.setdefault(meta["uid"], now) < self.delay:
            return
        at = now_rfc3339()
        pod["status"] = {**status, "phase": "Running", "conditions": [
            {"type": "Ready", "status": "True", "lastTransitionTime": at},
            {"type": "ContainersReady", "status": "True", "lastTransitionTime": at}]}
        await self.client.replace_status(PODS, pod)

    async def _finish(self, name: str) -> None:
        await asyncio.sleep(self.finish_deletion)
        with contextlib.suppress(ApiError):
            await self.client.delete(PODS, name, self.namespace, grace_period_seconds=0)

    async def __aenter__(self) -> "FakeKubelet":
        self._task = asyncio.create_task(self.run(), name=f"fake-kubelet-{self.namespace}")
        return self

    async def __aexit__(self, *exc: object) -> None:
        tasks = [self._task, *self.deleting.values()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if not self._task.cancelled() and self._task.exception() is not None:
            raise self._task.exception()        # it crashed: what the block waited for never came
