"""ownerReferences: who controls an object, and the reference a controller puts on what it makes."""
from __future__ import annotations

from typing import Any

Obj = dict[str, Any]


def controller_of(obj: Obj) -> Obj | None:
    """The ownerReference with `controller: true`, if any (metav1.GetControllerOf)."""
    for ref in (obj.get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("controller"):
            return ref
    return None


def is_controlled_by(obj: Obj, owner: Obj) -> bool:
    ref = controller_of(obj)
    return ref is not None and ref.get("uid") == (owner.get("metadata") or {}).get("uid")


def controller_ref(owner: Obj, api_version: str, kind: str) -> Obj:
    """The reference a controller sets on what it creates (metav1.NewControllerRef):
    it controls the object and blocks the owner's foreground deletion until the object is gone."""
    meta = owner["metadata"]
    return {"apiVersion": api_version, "kind": kind, "name": meta["name"], "uid": meta["uid"],
            "controller": True, "blockOwnerDeletion": True}
