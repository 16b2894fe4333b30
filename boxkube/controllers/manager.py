"""The controller manager: every controller of boxkube.controllers over one client and shared informers.

Controllers are found, not listed: each module of this package that defines a
`Controller` subclass with a `name` is one (adding a controller is adding a
module). The manager starts the informers they asked for, waits for every
cache to be synced — a controller acting on a half-filled cache would, say,
create pods that already exist — then runs their workers.

With leader election (a Lease, kube-system/kube-controller-manager in
`python -m boxkube.controllers`), several managers can run: the one holding
the Lease runs the controllers, the others wait to take over. Each term of
leadership gets controllers, work queues and informers of its own, made when
it starts and dropped when it ends (see `run`).
"""
from __future__ import annotations

import asyncio
import importlib
import logging
import pkgutil
from collections.abc import Iterable

import boxkube.controllers as package
from boxkube.client import ApiClient, EventRecorder, InformerFactory
from boxkube.client.leaderelection import LeaderElectionConfig, LeaderElector
from boxkube.controllers.base import Controller, Settings

log = logging.getLogger(__name__)

_NOT_CONTROLLERS = {"base", "manager", "ownership", "__main__"}


def available_controllers() -> dict[str, type[Controller]]:
    """name -> class of every controller module in boxkube.controllers."""
    found: dict[str, type[Controller]] = {}
    for info in pkgutil.iter_modules(package.__path__):
        if info.name in _NOT_CONTROLLERS:
            continue
        module = importlib.import_module(f"{package.__name__}.{info.name}")
        for value in vars(module).values():
            if isinstance(value, type) and issubclass(value, Controller) and value.name \
                    and value.__module__ == module.__name__:
                found[value.name] = value
    return dict(sorted(found.items()))


class ControllerManager:
    """The controllers `names` (default: all) over `client`. `namespace` scopes every informer to one
    namespace (tests, and a manager in charge of one namespace); `leader_election` makes `run()`
    campaign for that Lease first."""

    def __init__(self, client: ApiClient, names: Iterable[str] | None = None, settings: Settings = Settings(),
                 host: str = "", *, namespace: str | None = None,
                 leader_election: LeaderElectionConfig | None = None):
        self._classes = available_controllers()
        self.names = list(self._classes) if names is None else list(names)
        unknown = [n for n in self.names if n not in self._classes]
        if unknown:
            raise ValueError(f"unknown controller(s): {', '.join(unknown)} (known: {', '.join(self._classes)})")
        self.client, self.settings, self.host, self.namespace = client, settings, host, namespace
        self.elector = LeaderElector(client, leader_election) if leader_election is not None else None
        # the current term's controllers: none while waiting for the Lease or stopped
        self.controllers: list[Controller] = []

    @property
    def running(self) -> bool:
        """Whether controllers are at work in this manager now."""
        return bool(self.controllers)

    async def run(self, sync_timeout: float | None = None) -> None:
        """Run until cancelled; with leader election, only while holding the Lease.

        Leadership lost, every controller stops and the caches go; the manager
        then campaigns again and starts afresh if it wins. Upstream exits instead
        and its kubelet restarts it; nothing restarts a boxkube process, and
        going on with the old caches is not safe: while another manager led,
        the world moved on, and a queue or cache from before (pod creations
        expected, an endpoints write not seen back yet) would make the
        controllers act on what no longer holds.
        """
        if self.elector is None:
            await self._run_term(sync_timeout)
            return
        while True:
            await self.elector.run(lambda: self._run_term(sync_timeout))
            log.warning("leader election lost; campaigning again")

    async def _run_term(self, sync_timeout: float | None) -> None:
        informers = InformerFactory(self.client, namespace=self.namespace)
        recorders = [EventRecorder(self.client, self._classes[n].event_component(), self.host) for n in self.names]
        self.controllers = [self._classes[n](self.client, informers, recorder, self.settings)
                            for n, recorder in zip(self.names, recorders)]
        informers.start()
        try:
            if not await informers.wait_for_sync(sync_timeout):
                raise TimeoutError("the controllers' caches did not sync")
            log.info("caches synced; running %s", ", ".join(c.name for c in self.controllers))
            await asyncio.gather(*(c.run() for c in self.controllers))
        finally:
            self.controllers = []
            await informers.stop()
            for recorder in recorders:
                await recorder.close()
