"""Which pods this scheduler takes: spec.schedulerName, unbound, not finished, not being deleted."""
from __future__ import annotations

from collections.abc import Container, Mapping
from typing import Any

from boxkube.scheduler.framework import DEFAULT_SCHEDULER_NAME


def scheduler_name(pod: Mapping[str, Any]) -> str:
    # the API server defaults the field; a pod built by hand may lack it
    return (pod.get("spec") or {}).get("schedulerName") or DEFAULT_SCHEDULER_NAME


def is_responsible_for(pod: Mapping[str, Any], names: Container[str] = (DEFAULT_SCHEDULER_NAME,)) -> bool:
    """responsibleForPod: the pod names one of our profiles."""
    return scheduler_name(pod) in names


def needs_scheduling(pod: Mapping[str, Any], names: Container[str] = (DEFAULT_SCHEDULER_NAME,)) -> bool:
    """Whether the pod belongs in our queue: ours, not yet bound, not terminal, not being deleted."""
    if not is_responsible_for(pod, names) or (pod.get("spec") or {}).get("nodeName"):
        return False
    if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
        return False
    return not (pod.get("metadata") or {}).get("deletionTimestamp")
