"""Properties: hypothesis drives random sequences of steps on a Deployment behind a Service — scale it,
change its pod template, roll back to the revision before, delete one of its pods — and after each step
waits until the cluster has converged (the rollout complete, every pod ready, the Endpoints caught up),
then checks what must hold in every converged state:

- each of the Deployment's ReplicaSets has exactly its desired count of live pods, and every pod
  belongs to one of them;
- only the newest ReplicaSet has replicas, its pod template is the Deployment's, and its revision
  is the Deployment's revision (the highest); no more old ReplicaSets than revisionHistoryLimit;
- the Service's Endpoints hold exactly the ready pods' addresses.

While a template change or a rollback rolls, watches check the rolling-update bounds at every event:
the ReplicaSets' desired replicas together never exceed `replicas + maxSurge`, and the Deployment never
reports fewer than `replicas - maxUnavailable` available pods.

These are the invariants of boxkube's own property tests, run here through the official client only.
`--conformance-examples N` sets the number of random sequences (default 2, each of
`--conformance-steps` steps, default 5). A failing sequence is printed as hypothesis found it, not
shrunk: shrinking replays steps on a live cluster for many minutes.
"""
from __future__ import annotations

import math
import threading
import uuid
from typing import Any

from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule, run_state_machine_as_test

from boxkube.conformance.support import SUITE_LABEL, conformance, is_ready, live, retry_on_conflict, until

REVISION = "deployment.kubernetes.io/revision"
HISTORY_LIMIT = 1   # with three templates, old ReplicaSets really go
CONVERGE_TIMEOUT = 180.0
# (maxSurge, maxUnavailable) of the Deployment's RollingUpdate strategy
STRATEGIES = [(1, 0), (0, 1), (2, 1), ("25%", "25%"), ("50%", 0)]
# Pod templates differ by an environment variable: every web image runs with any value of it.
VARIANTS = ["v1", "v2", "v3"]


def scaled(value: int | str, replicas: int, round_up: bool) -> int:
    if isinstance(value, int):
        return value
    exact = int(value.rstrip("%")) * replicas / 100
    return math.ceil(exact) if round_up else math.floor(exact)


def rolling_bounds(replicas: int, surge: int | str, unavailable: int | str) -> tuple[int, int]:
    """(least available, most desired) while a RollingUpdate of `replicas` pods runs."""
    s, u = scaled(surge, replicas, True), scaled(unavailable, replicas, False)
    if s == 0 and u == 0:       # upstream's rule when both round down to nothing
        u = 1
    return max(replicas - u, 0), replicas + s


def revision(rs: Any) -> int:
    return int((rs.metadata.annotations or {}).get(REVISION, "0"))


def variant(template: Any) -> str:
    env = {e.name: e.value for e in template.spec.containers[0].env or []}
    return env.get("VARIANT", "?")


class Watcher:
    """A watch on one kind of object in a namespace, in a thread, calling `check(objects)` with every
    object it holds after each event; the first few problems it returns are kept."""

    def __init__(self, list_fn: Any, namespace: str, check: Any):
        self.list_fn, self.namespace, self.check = list_fn, namespace, check
        self.objects: dict[str, Any] = {}
        self.problems: list[str] = []
        self.stopped = threading.Event()
        listed = list_fn(namespace)
        self.objects = {o.metadata.name: o for o in listed.items}
        self.rv = listed.metadata.resource_version
        self.thread = threading.Thread(target=self._run, daemon=True, name=f"watch {namespace}")
        self.thread.start()

    def _run(self) -> None:
        from kubernetes import watch
        from kubernetes.client.exceptions import ApiException

        while not self.stopped.is_set():
            try:
                # Short server-side timeouts: the loop looks at `stopped` between them.
                for event in watch.Watch().stream(self.list_fn, self.namespace, resource_version=self.rv,
                                                  timeout_seconds=2, allow_watch_bookmarks=True):
                    obj = event["object"]
                    self.rv = obj.metadata.resource_version
                    if event["type"] == "BOOKMARK":
                        continue
                    if event["type"] == "DELETED":
                        self.objects.pop(obj.metadata.name, None)
                    else:
                        self.objects[obj.metadata.name] = obj
                    problem = self.check(self.objects)
                    if problem and len(self.problems) < 3:
                        self.problems.append(problem)
            except ApiException as e:
                if e.status != 410:
                    self.problems.append(f"the watch of {self.list_fn.__name__} broke: {e.status} {e.reason}")
                    return
                listed = self.list_fn(self.namespace)       # too old a revision: start again from a list
                self.objects = {o.metadata.name: o for o in listed.items}
                self.rv = listed.metadata.resource_version

    def caught_up(self) -> None:
        """Wait until the watch has seen every object as a list shows it now (resourceVersions compared
        for equality only), so that no event of an earlier step is checked during the next one."""
        def same() -> bool:
            listed = {o.metadata.name: o.metadata.resource_version for o in self.list_fn(self.namespace).items}
            seen = {name: o.metadata.resource_version for name, o in list(self.objects.items())}
            return listed == seen or not self.thread.is_alive()
        until(same, timeout=30, what=f"the watch of {self.list_fn.__name__} catching up with a list")

    def stop(self) -> None:
        self.stopped.set()
        self.thread.join(timeout=10)


def machine_for(core: Any, apps: Any, images: Any) -> type[RuleBasedStateMachine]:
    class DeploymentSteps(RuleBasedStateMachine):
        """A Deployment `web` behind a Service `web`, in a namespace of its own per example."""

        def __init__(self) -> None:
            super().__init__()
            self.ns = f"conf-properties-{uuid.uuid4().hex[:6]}"
            self.watchers: list[Watcher] = []
            self.rolling: tuple[str, int, int] | None = None    # (step, least available, most desired)
            # Preconditions read only the machine's own state: hypothesis replays a failing example and
            # must draw the same steps again, whatever the cluster does.
            self.used = {"v1"}

        # -- set-up and clean-up --

        @initialize(replicas=st.integers(1, 3), strategy=st.sampled_from(STRATEGIES))
        def create(self, replicas: int, strategy: tuple[int | str, int | str]) -> None:
            self.replicas, (self.surge, self.unavailable) = replicas, strategy
            core.create_namespace({"metadata": {"name": self.ns, "labels": {SUITE_LABEL: "true"}}})
            core.create_namespaced_service(self.ns, {
                "metadata": {"name": "web"},
                "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": images.web_port}]}})
            apps.create_namespaced_deployment(self.ns, {
                "metadata": {"name": "web"},
                "spec": {"replicas": replicas, "revisionHistoryLimit": HISTORY_LIMIT,
                         "selector": {"matchLabels": {"app": "web"}},
                         "strategy": {"type": "RollingUpdate",
                                      "rollingUpdate": {"maxSurge": self.surge, "maxUnavailable": self.unavailable}},
                         "template": self._template("v1")}})
            self.watchers = [Watcher(apps.list_namespaced_replica_set, self.ns, self._check_surge),
                             Watcher(apps.list_namespaced_deployment, self.ns, self._check_available)]
            self.converge("create")

        def _template(self, name: str) -> dict:
            return {"metadata": {"labels": {"app": "web"}},
                    "spec": {"terminationGracePeriodSeconds": 1, "containers": [{
                        "name": "web", "image": images.web, "imagePullPolicy": "IfNotPresent",
                        "ports": [{"containerPort": images.web_port}],
                        "readinessProbe": {"tcpSocket": {"port": images.web_port}, "periodSeconds": 1},
                        "env": [{"name": "VARIANT", "value": name},
                                {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}]}]}}

        def teardown(self) -> None:
            for w in self.watchers:
                w.stop()
            from kubernetes.client.exceptions import ApiException
            try:
                core.delete_namespace(self.ns, propagation_policy="Background")
            except ApiException as e:
                if e.status != 404:
                    raise

        # -- steps --

        @rule(replicas=st.integers(0, 4))
        def scale(self, replicas: int) -> None:
            self.replicas = replicas
            apps.patch_namespaced_deployment_scale("web", self.ns, {"spec": {"replicas": replicas}})
            self.converge(f"scale(replicas={replicas})")

        @rule(name=st.sampled_from(VARIANTS))
        def set_template(self, name: str) -> None:
            def change() -> None:
                apps.patch_namespaced_deployment("web", self.ns, {"spec": {"template": self._template(name)}})
            self.used.add(name)
            self.roll(change, f"set_template({name!r})")

        @precondition(lambda self: len(self.used) >= 2)     # so an old ReplicaSet is kept (HISTORY_LIMIT >= 1)
        @rule()
        def rollback(self) -> None:
            """What `kubectl rollout undo` does: the template of the revision before the current one."""
            def change() -> None:
                def attempt() -> None:
                    d = apps.read_namespaced_deployment("web", self.ns)
                    current = int((d.metadata.annotations or {}).get(REVISION, "0"))
                    previous = max((rs for rs in self._replica_sets() if revision(rs) < current), key=revision)
                    template = previous.spec.template
                    template.metadata.labels.pop("pod-template-hash", None)
                    d.spec.template = template
                    apps.replace_namespaced_deployment("web", self.ns, d)
                retry_on_conflict(attempt)
            self.roll(change, "rollback()")

        @precondition(lambda self: self.replicas > 0)
        @rule(pick=st.integers(0, 3))
        def delete_pod(self, pick: int) -> None:
            pods = sorted(live(self._pods()), key=lambda p: p.metadata.name)
            core.delete_namespaced_pod(pods[pick % len(pods)].metadata.name, self.ns)
            self.converge(f"delete_pod(pick={pick})")

        # -- how a step is made and waited for --

        def roll(self, change: Any, step: str) -> None:
            least, most = rolling_bounds(self.replicas, self.surge, self.unavailable)
            self.rolling = (step, least, most)
            try:
                change()
                self.converge(step)
            finally:
                self.rolling = None

        def _check_surge(self, replica_sets: dict[str, Any]) -> str | None:
            rolling = self.rolling
            if rolling is None:
                return None
            step, _, most = rolling
            desired = {name: rs.spec.replicas or 0 for name, rs in replica_sets.items()}
            if sum(desired.values()) > most:
                return f"{step}: the ReplicaSets want {sorted(desired.items())}, more than {most} pods"
            return None

        def _check_available(self, deployments: dict[str, Any]) -> str | None:
            rolling, d = self.rolling, deployments.get("web")
            if rolling is None or d is None or d.status is None:
                return None
            step, least, _ = rolling
            available = d.status.available_replicas or 0
            if available < least:
                return f"{step}: the Deployment reports {available} available pods, fewer than {least}"
            return None

        def converge(self, step: str) -> None:
            until(self._unconverged, ok=lambda unmet: not unmet, timeout=CONVERGE_TIMEOUT,
                  what=f"after {step}, the cluster converged (what differs shown as last seen)")
            for w in self.watchers:
                w.caught_up()

        def _unconverged(self) -> list[str]:
            d = apps.read_namespaced_deployment("web", self.ns)
            s, unmet = d.status, []
            if (s.observed_generation or 0) < d.metadata.generation:
                unmet.append("generation not observed")
            counts = (s.replicas or 0, s.updated_replicas or 0, s.ready_replicas or 0, s.available_replicas or 0)
            if counts != (self.replicas,) * 4:
                unmet.append(f"status replicas/updated/ready/available {counts}, want {self.replicas}")
            pods = self._pods()
            if len(live(pods)) != len(pods):
                unmet.append("pods still terminating")
            if len(pods) != self.replicas or not all(map(is_ready, pods)):
                unmet.append(f"{len(pods)} pods, {sum(map(is_ready, pods))} ready, want {self.replicas}")
            old = [rs for rs in self._replica_sets() if variant(rs.spec.template) != variant(d.spec.template)]
            if len(old) > HISTORY_LIMIT:
                unmet.append(f"{len(old)} old ReplicaSets kept, more than revisionHistoryLimit {HISTORY_LIMIT}")
            if self._endpoint_mismatch(pods):
                unmet.append(self._endpoint_mismatch(pods))
            return unmet

        def _endpoint_mismatch(self, pods: list[Any]) -> str:
            ep = core.read_namespaced_endpoints("web", self.ns)
            ready = sorted(a.ip for s in ep.subsets or [] for a in s.addresses or [])
            unready = sorted(a.ip for s in ep.subsets or [] for a in s.not_ready_addresses or [])
            want = sorted(p.status.pod_ip for p in pods if is_ready(p))
            return "" if (ready, unready) == (want, []) else f"Endpoints {ready} (not ready {unready}), ready pods {want}"

        def _pods(self) -> list[Any]:
            return core.list_namespaced_pod(self.ns, label_selector="app=web").items

        def _replica_sets(self) -> list[Any]:
            return apps.list_namespaced_replica_set(self.ns).items

        # -- what holds in every converged state --

        @invariant()
        def no_rolling_bound_crossed(self) -> None:
            problems = [p for w in self.watchers for p in w.problems]
            assert not problems, "; ".join(problems)

        @invariant()
        def every_replica_set_has_its_pods(self) -> None:
            rses = {rs.metadata.uid: rs for rs in self._replica_sets()}
            pods = self._pods()
            for p in pods:
                owner = next((r.uid for r in p.metadata.owner_references or [] if r.controller), None)
                assert owner in rses, f"pod {p.metadata.name} is owned by no ReplicaSet of the Deployment"
            for uid, rs in rses.items():
                mine = [p for p in pods if any(r.uid == uid for r in p.metadata.owner_references or [])]
                assert len(mine) == rs.spec.replicas, \
                    f"ReplicaSet {rs.metadata.name} wants {rs.spec.replicas} pods and has {len(mine)}"
                assert all(variant(p) == variant(rs.spec.template) for p in mine), \
                    f"a pod of ReplicaSet {rs.metadata.name} has another template"

        @invariant()
        def only_the_newest_replica_set_runs(self) -> None:
            d = apps.read_namespaced_deployment("web", self.ns)
            rses = sorted(self._replica_sets(), key=revision)
            if not rses:
                return
            newest = rses[-1]
            assert variant(newest.spec.template) == variant(d.spec.template), \
                f"the newest ReplicaSet {newest.metadata.name} has template {variant(newest.spec.template)}, " \
                f"the Deployment {variant(d.spec.template)}"
            assert (d.metadata.annotations or {}).get(REVISION) == str(revision(newest)), \
                f"the Deployment's revision {(d.metadata.annotations or {}).get(REVISION)}, the newest ReplicaSet's {revision(newest)}"
            assert len({revision(rs) for rs in rses}) == len(rses), \
                f"two ReplicaSets share a revision: {[(rs.metadata.name, revision(rs)) for rs in rses]}"
            running = {rs.metadata.name: rs.spec.replicas for rs in rses[:-1] if rs.spec.replicas}
            assert not running, f"old ReplicaSets still want pods: {running}"

    return DeploymentSteps


@conformance(area="Properties", upstream=None)
def test_random_scale_update_rollback_and_pod_deletion_sequences_keep_the_invariants(core, apps, images, pytestconfig):
    examples = pytestconfig.getoption("conformance_examples")
    steps = pytestconfig.getoption("conformance_steps")
    run_state_machine_as_test(machine_for(core, apps, images), settings=settings(
        max_examples=examples, stateful_step_count=steps, deadline=None, database=None,
        phases=[Phase.explicit, Phase.generate], print_blob=True,
        suppress_health_check=list(HealthCheck)))
