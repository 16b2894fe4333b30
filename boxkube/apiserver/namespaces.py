"""Emptying a deleted namespace, then letting it go.

Upstream runs this in kube-controller-manager's namespace controller; boxkube
runs it beside the API server until the controller manager takes it over.
"""
from __future__ import annotations

import asyncio
import logging

from boxkube.apiserver.errors import APIError
from boxkube.apiserver.registry import Registry, WriteOptions
from boxkube.apiserver.resources import RESOURCES, by_kind

log = logging.getLogger(__name__)

_OPTS = WriteOptions(field_manager="namespace-controller", field_validation="Ignore")
_RETRY = 1.0


class NamespaceFinalizer:
    def __init__(self, registry: Registry):
        self.registry = registry
        self.rt = by_kind("", "v1", "Namespace")
        self._active: dict[str, asyncio.Task] = {}

    async def run(self) -> None:
        listed = await self.registry.list(self.rt, None)
        for ns in listed.items:
            self._consider(ns)
        sub = self.registry.cache.subscribe(self.rt.key(None), int(listed.resource_version))
        try:
            while True:
                change = await sub.next(None)
                if change.type != "DELETE":
                    self._consider(change.obj)
        finally:
            sub.close()
            for task in self._active.values():
                task.cancel()

    def _consider(self, ns: dict) -> None:
        name = ns["metadata"]["name"]
        if ns["metadata"].get("deletionTimestamp") and name not in self._active:
            self._active[name] = asyncio.create_task(self._finalize(name), name=f"finalize-ns-{name}")

    async def _finalize(self, name: str) -> None:
        try:
            while not await self._empty(name):
                await asyncio.sleep(_RETRY)

            def drop_kubernetes(ns: dict) -> dict:
                spec = ns.setdefault("spec", {})
                spec["finalizers"] = [f for f in spec.get("finalizers") or [] if f != "kubernetes"]
                return ns
            await self.registry.guaranteed_update(self.rt, None, name, drop_kubernetes, _OPTS, subresource="finalize")
        except APIError as e:
            if e.code != 404:
                log.warning("finalizing namespace %s: %s", name, e.message)
        except Exception:
            log.exception("finalizing namespace %s", name)
        finally:
            self._active.pop(name, None)

    async def _empty(self, name: str) -> bool:
        """Delete what is left in the namespace; True once nothing is."""
        left = 0
        for rt in RESOURCES:
            if not rt.namespaced or "delete" not in rt.verbs:
                continue
            result = await self.registry.list(rt, name)
            for obj in result.items:
                left += 1
                if not obj["metadata"].get("deletionTimestamp"):
                    try:
                        await self.registry.delete(rt, name, obj["metadata"]["name"], {"propagationPolicy": "Background"}, _OPTS)
                    except APIError as e:
                        if e.code != 404:
                            raise
        return left == 0
