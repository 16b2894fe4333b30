"""The controller framework on the real API server: informers -> queue -> level-triggered reconcile."""
from __future__ import annotations

from boxkube.client import ApiError, resource
from boxkube.controllers.base import Controller
from boxkube.controllers.manager import available_controllers
from boxkube.controllers.ownership import controller_ref, is_controlled_by

from controller_harness import eventually, running

CONFIGMAPS = resource("configmaps")


class Mirror(Controller):
    """Keeps a `<name>-copy` of every ConfigMap labelled mirror=yes; fails its first reconcile on purpose."""

    name = "mirror-test"

    def setup(self) -> None:
        self.failed_once: set[str] = set()
        self.originals = self.watch("configmaps", label_selector="mirror=yes")
        self.copies = self.watch_owned("configmaps", "ConfigMap", label_selector="copy=yes")

    async def reconcile(self, key: str) -> None:
        if key not in self.failed_once:
            self.failed_once.add(key)
            raise RuntimeError("first try fails")       # retried with back-off
        original = self.originals.store.get(key)
        if original is None:
            return
        ns, name = original["metadata"]["namespace"], original["metadata"]["name"]
        if self.copies.store.get(f"{ns}/{name}-copy") is not None:
            return
        copy = {"metadata": {"name": f"{name}-copy", "labels": {"copy": "yes"},
                             "ownerReferences": [controller_ref(original, "v1", "ConfigMap")]},
                "data": original.get("data") or {}}
        try:
            await self.client.create(CONFIGMAPS, copy, ns)
        except ApiError as e:
            if not e.is_already_exists:
                raise
        self.recorder.event(original, "Normal", "Mirrored", f"copied to {name}-copy")


async def test_reconcile_retries_and_heals_what_it_owns(client, ns):
    await client.create(CONFIGMAPS, {"metadata": {"name": "a", "labels": {"mirror": "yes"}}, "data": {"k": "v"}}, ns)
    async with running(client, Mirror):
        async def copy_exists():
            try:
                return await client.get(CONFIGMAPS, "a-copy", ns)
            except ApiError:
                return None
        copy = await eventually(copy_exists)
        original = await client.get(CONFIGMAPS, "a", ns)
        assert copy["data"] == {"k": "v"} and is_controlled_by(copy, original)
        # Deleting what it owns requeues the owner (watch_owned), which makes it again.
        await client.delete(CONFIGMAPS, "a-copy", ns)
        healed = await eventually(copy_exists)
        assert healed["metadata"]["uid"] != copy["metadata"]["uid"]


def test_controllers_are_found_by_module():
    found = available_controllers()
    assert all(issubclass(c, Controller) and c.name == name for name, c in found.items())
    assert "mirror-test" not in found   # only modules of boxkube.controllers count
