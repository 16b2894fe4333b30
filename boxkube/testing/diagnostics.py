"""What a failed test's report shows of its namespace: the events, the pods, and the pods' logs.

Read with the official client from whatever cluster the test ran against, so that it works for a
boxkube cluster and for any other; a part that cannot be read says why instead of failing the report.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from kubernetes.client import ApiClient, CoreV1Api

# The last lines of each container's log that a report shows.
LOG_TAIL_LINES = 100


def namespace_report(api_client: ApiClient, namespace: str) -> list[tuple[str, str]]:
    """(title, text) sections about `namespace`: its events, its pods, then each container's log."""
    core = CoreV1Api(api_client)
    sections = [(f"events of namespace {namespace}", _read(lambda: _events(core, namespace)))]
    try:
        pods = core.list_namespaced_pod(namespace).items
    except Exception as e:  # the cluster is gone or refuses: say so in the report
        return [*sections, (f"pods of namespace {namespace}", f"(cannot list them: {_reason(e)})")]
    sections.append((f"pods of namespace {namespace}", _pods(pods)))
    for pod in pods:
        for container in pod.spec.containers:
            sections.append((
                f"log of pod {pod.metadata.name}, container {container.name}",
                _read(lambda: core.read_namespaced_pod_log(
                    pod.metadata.name, namespace, container=container.name, tail_lines=LOG_TAIL_LINES)
                    or "(empty)"),
            ))
    return sections


def _read(read: Callable[[], str]) -> str:
    """The text `read()` gives, or why it could not be read."""
    try:
        return read()
    except Exception as e:
        return f"({_reason(e)})"


def _reason(error: Exception) -> str:
    """The message of an API error's Status (not the whole HTTP exchange), else the error itself."""
    try:
        return json.loads(error.body)["message"]  # type: ignore[attr-defined]
    except Exception:
        return str(error).strip()


def _events(core: CoreV1Api, namespace: str) -> str:
    """The events as lines `TIME TYPE REASON KIND/NAME: MESSAGE`, oldest first."""
    events = core.list_namespaced_event(namespace).items
    if not events:
        return "(no events)"

    def when(event: Any) -> Any:
        return event.last_timestamp or event.event_time or event.metadata.creation_timestamp

    lines = []
    for event in sorted(events, key=lambda e: (when(e) is None, when(e))):
        stamp = when(event).strftime("%H:%M:%S") if when(event) else "-"
        count = f" (x{event.count})" if (event.count or 1) > 1 else ""
        subject = f"{event.involved_object.kind}/{event.involved_object.name}"
        lines.append(f"{stamp} {event.type or '-'} {event.reason or '-'} {subject}: {event.message or ''}{count}")
    return "\n".join(lines)


def _pods(pods: list[Any]) -> str:
    """One line per pod: name, phase, node, and per container its state, readiness and restarts."""
    if not pods:
        return "(no pods)"
    lines = []
    for pod in pods:
        status = pod.status
        containers = []
        for c in (status.container_statuses or []) if status else []:
            state = next((f"{kind}{'(' + s.reason + ')' if getattr(s, 'reason', None) else ''}"
                          for kind in ("running", "waiting", "terminated")
                          if (s := getattr(c.state, kind, None)) is not None), "unknown")
            containers.append(f"{c.name}={state} ready={c.ready} restarts={c.restart_count}")
        phase = (status.phase if status else None) or "Unknown"
        lines.append(f"{pod.metadata.name} {phase} node={pod.spec.node_name or '-'} {' '.join(containers)}".rstrip())
    return "\n".join(lines)
