"""What the generic registry asks of a resource type.

A strategy holds only what is special about a resource (defaults, extra
validation, status handling, side effects such as IP allocation); the
registry does create/get/list/update/delete/watch for all of them, as
kube-apiserver's generic store does with its RESTCreateStrategy & co.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from boxkube.apiserver.resources import ResourceType

if TYPE_CHECKING:
    from boxkube.apiserver.registry import Registry

Obj = dict[str, Any]
Cause = dict[str, str]


@dataclass(frozen=True)
class Admission:
    """Settings of the admission steps that shape defaults (kube-apiserver flags of the same names)."""
    not_ready_toleration_seconds: int = 300      # --default-not-ready-toleration-seconds
    unreachable_toleration_seconds: int = 300    # --default-unreachable-toleration-seconds


class Strategy:
    # Spec changes bump metadata.generation (resources that report observedGeneration).
    tracks_generation = False
    # On create, status is what the server says (empty/initial), not what the client sent.
    reset_status_on_create = True
    # PUT to a missing object creates it (upstream AllowCreateOnUpdate).
    allow_create_on_update = False
    # DELETE answers with the deleted object rather than a Success Status (upstream ReturnDeletedObject).
    return_deleted_object = False

    def __init__(self, rt: ResourceType, admission: Admission = Admission()):
        self.rt, self.admission = rt, admission

    @property
    def has_status(self) -> bool:
        return "status" in self.rt.subresources

    def default(self, obj: Obj) -> None:
        """Fill in upstream defaults in place (SetDefaults_*)."""

    def initial_status(self, obj: Obj) -> Obj | None:
        """The status a new object starts with when `reset_status_on_create`."""
        return None

    def validate(self, obj: Obj) -> list[Cause]:
        """Rules beyond boxkube.apiserver.validation (which the registry applies to every resource)."""
        return []

    def validate_update(self, new: Obj, old: Obj) -> list[Cause]:
        return []

    def prepare_for_create(self, obj: Obj) -> None:
        """Adjust a new object before defaults and validation (upstream PrepareForCreate)."""

    def prepare_for_update(self, new: Obj, old: Obj, subresource: str = "") -> None:
        """Adjust an update before validation (e.g. keep fields the client may not change)."""

    async def before_create(self, registry: "Registry", obj: Obj, dry_run: bool) -> None:
        """Side effects a create needs before it is stored (allocations); undone by `after_delete`."""

    async def before_update(self, registry: "Registry", new: Obj, old: Obj, dry_run: bool) -> None:
        """Side effects an update needs before it is stored (allocations); settled by `after_update`."""

    async def after_update(self, registry: "Registry", new: Obj, old: Obj, written: bool) -> None:
        """After the store write: release what `old` held and `new` gave up, or, when the write
        failed, what `before_update` took for `new` (nothing is freed before it is really free)."""

    async def after_delete(self, registry: "Registry", obj: Obj) -> None:
        """Release what `before_create`/`before_update` took; also called when a create fails."""

    def check_delete(self, obj: Obj) -> None:
        """Raise an APIError to refuse deleting `obj` at all (upstream does this in admission)."""

    def holds_deletion(self, obj: Obj) -> bool:
        """Something besides metadata.finalizers keeps a deleted object (a namespace's spec.finalizers)."""
        return False

    def on_deletion_marked(self, obj: Obj) -> None:
        """Adjust an object that was just given a deletionTimestamp (e.g. phase Terminating)."""

    def graceful_delete(self, obj: Obj, grace: int | None) -> int:
        """Seconds the object lingers with deletionTimestamp before removal (0: at once)."""
        return 0
