"""Helpers of the conformance suite: the `conformance` marker, waiting, watching, and object builders.

Everything here speaks to a cluster only through the official `kubernetes` client (a cluster is a
kubeconfig, nothing more), so the suite runs against boxkube and against any other Kubernetes.
"""
from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

import pytest

T = TypeVar("T")

AREAS = ("API", "Self-healing", "Rollouts", "Service routing", "StatefulSets", "Garbage collection",
         "Properties")

# The label every object the suite makes carries (and its namespaces), to find leftovers by.
SUITE_LABEL = "conformance.boxkube.dev/suite"


def conformance(*, area: str, upstream: str | None) -> pytest.MarkDecorator:
    """Declare a test's area and its upstream counterpart.

    `upstream` is the full name of the Kubernetes e2e conformance test that checks the same
    behaviour (as in kubernetes/kubernetes test/conformance/testdata/conformance.yaml), or None
    where upstream has no conformance test for it. Usable as a decorator or in `pytest.param(marks=)`.
    """
    if area not in AREAS:
        raise ValueError(f"unknown conformance area {area!r} (one of {', '.join(AREAS)})")
    return pytest.mark.conformance(area=area, upstream=upstream)


# Tests that need a cluster whose pods really run containers (and reach each other): skipped,
# with the reason, when a probe pod shows that the cluster's nodes only simulate containers.
real_nodes = pytest.mark.real_nodes


def until(check: Callable[[], T], *, timeout: float = 60.0, what: str = "condition",
          interval: float = 0.5, ok: Callable[[T], Any] = bool) -> T:
    """Call `check()` until `ok` of its value is true (by default: the value is truthy) and return that
    value; fail naming `what` and the last value seen when `timeout` seconds pass first."""
    deadline = time.monotonic() + timeout
    while True:
        last = check()
        if ok(last):
            return last
        if time.monotonic() >= deadline:
            seen = repr(last)
            seen = seen if len(seen) <= 500 else seen[:500] + " ..."
            raise AssertionError(f"{what}: not reached within {timeout:g} s (last seen: {seen})")
        time.sleep(interval)


def hold(check: Callable[[], Any], seconds: float, interval: float = 0.3) -> None:
    """Call `check()` again and again for `seconds`: what must stay true, it asserts (its value is not
    looked at), and the first failure ends the wait."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        check()
        time.sleep(interval)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def watch_events(list_fn: Callable[..., Any], *, count: int, timeout: float = 30.0,
                 **kwargs: Any) -> list[tuple[str, dict]]:
    """Open a watch with `list_fn` (e.g. CoreV1Api.list_namespaced_config_map) and collect its
    first `count` events (bookmarks aside) as (type, raw object) pairs, or fewer if `timeout`
    seconds pass first. The watch is closed after it."""
    from kubernetes import watch
    from urllib3.exceptions import ProtocolError, ReadTimeoutError

    events: list[tuple[str, dict]] = []
    w = watch.Watch()
    try:
        for event in w.stream(list_fn, timeout_seconds=max(1, int(timeout)), _request_timeout=timeout + 5,
                              **kwargs):
            if event["type"] == "BOOKMARK":
                continue
            events.append((event["type"], event["raw_object"]))
            if len(events) >= count:
                break
    except (ReadTimeoutError, ProtocolError):
        pass
    finally:
        w.stop()
    return events


def describe(events: Iterable[tuple[str, dict]]) -> list[tuple[str, str, str]]:
    """Watch events as (type, name, resourceVersion), for readable assertion messages."""
    return [(t, o.get("metadata", {}).get("name", "?"), o.get("metadata", {}).get("resourceVersion", "?"))
            for t, o in events]


def labels_for(app: str) -> dict[str, str]:
    return {"app": app, SUITE_LABEL: "true"}


def web_container(image: str, port: int, **extra: Any) -> dict:
    """The web image's container: it answers GET / on `port` with its pod's name."""
    return {"name": "web", "image": image, "imagePullPolicy": "IfNotPresent",
            "ports": [{"containerPort": port, "name": "http"}],
            "env": [{"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
            **extra}


def web_pod(name: str, app: str, image: str, port: int, **container: Any) -> dict:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "labels": labels_for(app)},
            "spec": {"containers": [web_container(image, port, **container)],
                     "terminationGracePeriodSeconds": 1}}


def pod_template(app: str, image: str, port: int) -> dict:
    return {"metadata": {"labels": labels_for(app)},
            "spec": {"containers": [web_container(image, port)], "terminationGracePeriodSeconds": 1}}


def deployment(name: str, app: str, image: str, port: int, replicas: int) -> dict:
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "labels": labels_for(app)},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": app}},
                     "template": pod_template(app, image, port)}}


def replicaset(name: str, app: str, image: str, port: int, replicas: int) -> dict:
    return {"apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": name, "labels": labels_for(app)},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": app}},
                     "template": pod_template(app, image, port)}}


def service(name: str, app: str, port: int) -> dict:
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "labels": {SUITE_LABEL: "true"}},
            "spec": {"type": "ClusterIP", "selector": {"app": app},
                     "ports": [{"name": "http", "port": 80, "targetPort": port, "protocol": "TCP"}]}}


def is_ready(pod: Any) -> bool:
    """Whether a pod (a client model) is Running with its Ready condition True."""
    status = pod.status
    if not status or status.phase != "Running" or pod.metadata.deletion_timestamp:
        return False
    return any(c.type == "Ready" and c.status == "True" for c in status.conditions or [])


def live(pods: Iterable[Any]) -> list[Any]:
    """The pods not being deleted."""
    return [p for p in pods if not p.metadata.deletion_timestamp]


def api_error(call: Callable[[], Any]) -> Any:
    """Run a call that must fail with an API error; the ApiException (a plain failure if it succeeds)."""
    from kubernetes.client.exceptions import ApiException

    try:
        call()
    except ApiException as e:
        return e
    raise AssertionError("the API server accepted a request it should have refused")


def retry_on_conflict(attempt: Callable[[], T], *, timeout: float = 30.0) -> T:
    """Run `attempt` (a read-modify-write of one object) again while it fails with 409 Conflict:
    the controllers of a live cluster write the same objects (their status) meanwhile."""
    from kubernetes.client.exceptions import ApiException

    deadline = time.monotonic() + timeout
    while True:
        try:
            return attempt()
        except ApiException as e:
            if e.status != 409 or time.monotonic() >= deadline:
                raise
        time.sleep(0.2)


def poll(read: Callable[[], T], ok: Callable[[T], bool], **kwargs: Any) -> T:
    """`until` for the common case: call `read()` until `ok(value)`, and return that value."""
    return until(read, ok=ok, **kwargs)
