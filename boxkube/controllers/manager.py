"""The controller manager: every controller of boxkube.controllers over one client and shared informers.

Controllers are found, not listed: each module of this package that defines a
`Controller` subclass with a `name` is one (adding a controller is adding a
module). The manager starts the informers they asked for, waits for every
cache to be synced — a controller acting on a half-filled cache would, say,
create pods that already exist — then runs their workers.
"""
from __future__ import annotations

import asyncio
import importlib
import logging
import pkgutil
from collections.abc import Iterable

import boxkube.controllers as package
from boxkube.client import ApiClient, EventRecorder, InformerFactory
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
    def __init__(self, client: ApiClient, names: Iterable[str] | None = None, settings: Settings = Settings(),
                 host: str = ""):
        every = available_controllers()
        wanted = list(every) if names is None else list(names)
        unknown = [n for n in wanted if n not in every]
        if unknown:
            raise ValueError(f"unknown controller(s): {', '.join(unknown)} (known: {', '.join(every)})")
        self.client = client
        self.informers = InformerFactory(client)
        self.recorders = [EventRecorder(client, every[n].event_component(), host) for n in wanted]
        self.controllers = [every[n](client, self.informers, rec, settings) for n, rec in zip(wanted, self.recorders)]

    async def run(self, sync_timeout: float | None = None) -> None:
        """Run until cancelled."""
        self.informers.start()
        try:
            if not await self.informers.wait_for_sync(sync_timeout):
                raise TimeoutError("the controllers' caches did not sync")
            log.info("caches synced; running %s", ", ".join(c.name for c in self.controllers))
            await asyncio.gather(*(c.run() for c in self.controllers))
        finally:
            await self.informers.stop()
            for recorder in self.recorders:
                await recorder.close()
