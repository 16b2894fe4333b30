"""StatefulSets: OrderedReady pods are made one at a time in ordinal order, each only once the one
before it is Running and Ready, and removed from the highest ordinal down; both halt while a pod is
unhealthy. A pod keeps its identity (name, hostname, subdomain, its name in the governing Service)
when it is replaced.

Health is switched through the API alone, so the same tests run on any cluster: the pods carry a
readiness gate, and a pod is Ready only while the test sets that condition True in its status."""
from __future__ import annotations

import threading
from dataclasses import dataclass

from boxkube.conformance.support import (SUITE_LABEL, conformance, hold, is_ready, labels_for, live, poll,
                                         pod_template, retry_on_conflict, until)

# The readiness gate of the gated pods: Ready only while the test says the pod is healthy.
GATE = "conformance.boxkube.dev/healthy"
# How long "nothing happens" is watched for, while a pod is not ready.
HOLD = 3.0


def headless_service(name: str, app: str, port: int) -> dict:
    """The governing Service of a StatefulSet: headless, selecting its pods."""
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "labels": {SUITE_LABEL: "true"}},
            "spec": {"clusterIP": "None", "selector": {"app": app},
                     "ports": [{"name": "http", "port": 80, "targetPort": port, "protocol": "TCP"}]}}


def statefulset(name: str, app: str, service_name: str, images, replicas: int, *, gated: bool = False) -> dict:
    template = pod_template(app, images.web, images.web_port)
    if gated:
        template["spec"]["readinessGates"] = [{"conditionType": GATE}]
    return {"apiVersion": "apps/v1", "kind": "StatefulSet",
            "metadata": {"name": name, "labels": labels_for(app)},
            "spec": {"replicas": replicas, "serviceName": service_name, "podManagementPolicy": "OrderedReady",
                     "selector": {"matchLabels": {"app": app}}, "template": template}}


def set_healthy(core, namespace: str, pod: str, healthy: bool) -> None:
    """Set the readiness gate's condition of a pod (a strategic merge on status.conditions, by type)."""
    body = {"status": {"conditions": [{"type": GATE, "status": "True" if healthy else "False"}]}}
    retry_on_conflict(lambda: core.patch_namespaced_pod_status(pod, namespace, body))


def ordinal(name: str) -> int:
    return int(name.rsplit("-", 1)[1])


def pods_by_name(core, namespace: str, app: str, *, terminating: bool = True) -> dict:
    pods = core.list_namespaced_pod(namespace, label_selector=f"app={app}").items
    return {p.metadata.name: p for p in (pods if terminating else live(pods))}


@dataclass
class Seen:
    """One pod as a watch event showed it."""
    type: str
    name: str
    uid: str
    ready: bool
    deleting: bool


class PodRecorder:
    """Records, in a thread, every watch event of the pods of one label selector (from before the
    test makes any), so the order in which things happened can be checked afterwards."""

    def __init__(self, core, namespace: str, selector: str):
        self.core, self.namespace, self.selector = core, namespace, selector
        self.seen: list[Seen] = []
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._rv = core.list_namespaced_pod(namespace, label_selector=selector).metadata.resource_version
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> PodRecorder:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=15)
        if self.error is not None and exc[0] is None:
            raise AssertionError(f"the pod watch failed: {self.error!r}")

    def _run(self) -> None:
        from kubernetes import watch
        try:
            while not self._stop.is_set():
                w = watch.Watch()
                for event in w.stream(self.core.list_namespaced_pod, self.namespace, label_selector=self.selector,
                                      resource_version=self._rv, timeout_seconds=2, _request_timeout=10):
                    pod = event["object"]
                    if event["type"] == "ERROR":
                        raise RuntimeError(f"watch error: {event['raw_object']}")
                    self._rv = pod.metadata.resource_version
                    if event["type"] == "BOOKMARK":
                        continue
                    self.seen.append(Seen(event["type"], pod.metadata.name, pod.metadata.uid, is_ready(pod),
                                          bool(pod.metadata.deletion_timestamp)))
        except BaseException as e:     # reported by __exit__
            self.error = e

    def wait_for(self, check, what: str, timeout: float = 15.0) -> None:
        """Wait until the events recorded so far satisfy `check(seen)`."""
        def done():
            assert self.error is None, f"the pod watch failed: {self.error!r}"
            return check(self.seen)
        until(done, timeout=timeout, what=f"the pod watch: {what}")

    def first(self, name: str, pred) -> int | None:
        """The index of the first event of pod `name` satisfying `pred`, None if none did."""
        return next((i for i, s in enumerate(self.seen) if s.name == name and pred(s)), None)

    def story(self) -> list[tuple[str, str, str]]:
        return [(s.type, s.name, "ready" if s.ready else "deleting" if s.deleting else "-") for s in self.seen]


def _only(core, namespace: str, app: str, names: set[str], why: str) -> bool:
    now = set(pods_by_name(core, namespace, app))
    assert now == names, f"{why}: the pods are {sorted(now)}, not {sorted(names)}"
    return True


def _read(core, namespace: str, name: str):
    """The pod, None while there is none of that name."""
    from kubernetes.client.exceptions import ApiException
    try:
        return core.read_namespaced_pod(name, namespace)
    except ApiException as e:
        if e.status == 404:
            return None
        raise


def _running_not_ready(core, namespace: str, name: str):
    return poll(lambda: _read(core, namespace, name),
                lambda p: p is not None and p.status.phase == "Running" and not is_ready(p)
                and not p.metadata.deletion_timestamp,
                timeout=120, what=f"pod {name} Running (not Ready: its readiness gate is unset)")


def _ready(core, namespace: str, name: str):
    return poll(lambda: _read(core, namespace, name), lambda p: p is not None and is_ready(p),
                timeout=120, what=f"pod {name} Running and Ready")


@conformance(area="StatefulSets",
             upstream="[sig-apps] StatefulSet Basic StatefulSet functionality [StatefulSetBasic] Scaling should "
                      "happen in predictable order and halt if any stateful pod is unhealthy [Slow] [Conformance]")
def test_pods_come_in_ordinal_order_each_after_the_last_is_ready_and_go_from_the_highest(core, apps, namespace,
                                                                                        images):
    app = "ordered"
    core.create_namespaced_service(namespace, headless_service("ordered", app, images.web_port))
    with PodRecorder(core, namespace, f"app={app}") as rec:
        apps.create_namespaced_stateful_set(namespace, statefulset("ordered", app, "ordered", images, 3, gated=True))

        # Scaling up: pod i is made only once pod i-1 is Running and Ready.
        for i in range(3):
            name = f"ordered-{i}"
            _running_not_ready(core, namespace, name)
            hold(lambda: _only(core, namespace, app, {f"ordered-{j}" for j in range(i + 1)},
                               f"while ordered-{i} is not ready"), HOLD)
            set_healthy(core, namespace, name, True)
            _ready(core, namespace, name)
        poll(lambda: apps.read_namespaced_stateful_set("ordered", namespace).status,
             lambda s: s.ready_replicas == 3 and s.replicas == 3, timeout=60, what="status.readyReplicas 3")

        # An unhealthy pod halts scaling up.
        set_healthy(core, namespace, "ordered-1", False)
        poll(lambda: core.read_namespaced_pod("ordered-1", namespace), lambda p: not is_ready(p),
             timeout=60, what="ordered-1 not Ready")
        apps.patch_namespaced_stateful_set_scale("ordered", namespace, {"spec": {"replicas": 4}})
        hold(lambda: _only(core, namespace, app, {f"ordered-{j}" for j in range(3)},
                           "scaled to 4 while ordered-1 is not ready"), HOLD)
        set_healthy(core, namespace, "ordered-1", True)
        _running_not_ready(core, namespace, "ordered-3")
        set_healthy(core, namespace, "ordered-3", True)
        _ready(core, namespace, "ordered-3")

        # An unhealthy pod halts scaling down, too.
        for i in range(4):
            set_healthy(core, namespace, f"ordered-{i}", False)
        for i in range(4):
            poll(lambda: core.read_namespaced_pod(f"ordered-{i}", namespace), lambda p: not is_ready(p),
                 timeout=60, what=f"ordered-{i} not Ready")
        apps.patch_namespaced_stateful_set_scale("ordered", namespace, {"spec": {"replicas": 0}})

        def none_deleting():
            pods = pods_by_name(core, namespace, app)
            deleting = sorted(n for n, p in pods.items() if p.metadata.deletion_timestamp)
            assert len(pods) == 4 and not deleting, f"scaled to 0 while all are unhealthy: {sorted(pods)}, " \
                                                    f"deleting {deleting}"
            return True
        hold(none_deleting, HOLD)
        for i in range(4):
            set_healthy(core, namespace, f"ordered-{i}", True)
        until(lambda: not pods_by_name(core, namespace, app), timeout=120, what="every pod gone after scaling to 0")
        rec.wait_for(lambda seen: sum(s.type == "DELETED" for s in seen) >= 4, "4 pods DELETED")

    story = rec.story()
    names = [f"ordered-{i}" for i in range(4)]
    # Made in order, each only after the one before it was seen Ready.
    added = [s.name for s in rec.seen if s.type == "ADDED"]
    assert added == names, f"pods made in the order {added}, not {names}: {story}"
    for before, after in zip(names, names[1:]):
        ready_at, made_at = rec.first(before, lambda s: s.ready), rec.first(after, lambda s: s.type == "ADDED")
        assert ready_at is not None and ready_at < made_at, f"{after} made before {before} was Ready: {story}"
    # Removed from the highest ordinal down, each only once the one above it was gone.
    deleted = [s.name for s in rec.seen if s.type == "DELETED"]
    assert deleted == names[::-1], f"pods deleted in the order {deleted}, not {names[::-1]}: {story}"
    for above, below in zip(names[::-1], names[::-1][1:]):
        gone_at = rec.first(above, lambda s: s.type == "DELETED")
        condemned_at = rec.first(below, lambda s: s.deleting or s.type == "DELETED")
        assert gone_at < condemned_at, f"{below} deleted before {above} was gone: {story}"


@conformance(area="StatefulSets", upstream=None)
def test_a_deleted_pod_comes_back_with_its_name_hostname_subdomain_and_dns_name(core, apps, namespace, images):
    app = "stable"
    core.create_namespaced_service(namespace, headless_service("stable-svc", app, images.web_port))
    sts = apps.create_namespaced_stateful_set(namespace, statefulset("stable", app, "stable-svc", images, 3))
    names = [f"stable-{i}" for i in range(3)]

    def all_ready():
        pods = pods_by_name(core, namespace, app, terminating=False)
        return pods if set(pods) == set(names) and all(map(is_ready, pods.values())) else None
    first = until(all_ready, timeout=180, what=f"the pods {names} Running and Ready")

    def identity(pod) -> None:
        name = pod.metadata.name
        assert (pod.spec.hostname, pod.spec.subdomain) == (name, "stable-svc"), \
            f"{name}: hostname {pod.spec.hostname!r}, subdomain {pod.spec.subdomain!r}"
        assert pod.metadata.labels.get("statefulset.kubernetes.io/pod-name") == name, pod.metadata.labels
        [owner] = [o for o in pod.metadata.owner_references or [] if o.controller]
        assert (owner.kind, owner.name, owner.uid) == ("StatefulSet", "stable", sts.metadata.uid), owner

    for pod in first.values():
        identity(pod)

    def endpoints_name_the_pods(pods):
        """The governing Service's endpoints: one per pod, under the pod's hostname, at its IP (the
        records of `<hostname>.<service>.<namespace>.svc` in cluster DNS)."""
        def check():
            ep = core.read_namespaced_endpoints("stable-svc", namespace)
            found = {(a.hostname, a.ip) for s in ep.subsets or [] for a in s.addresses or []}
            want = {(p.metadata.name, p.status.pod_ip) for p in pods.values()}
            return found if found == want else None
        return until(check, timeout=60, what="the governing Service's endpoints: each pod's hostname and IP")

    endpoints_name_the_pods(first)

    victim = first["stable-1"]
    core.delete_namespaced_pod("stable-1", namespace)

    def replaced():
        pods = all_ready()
        return pods if pods and pods["stable-1"].metadata.uid != victim.metadata.uid else None
    now = until(replaced, timeout=180, what="stable-1 replaced by a new pod of the same name, Running and Ready")
    identity(now["stable-1"])
    for name in ("stable-0", "stable-2"):
        assert now[name].metadata.uid == first[name].metadata.uid, f"{name} was replaced too"
    endpoints_name_the_pods(now)
