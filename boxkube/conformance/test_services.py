"""Service routing: a Service's Endpoints and EndpointSlices follow its ready pods, its ClusterIP
sends requests to every ready pod and to no other, a NodePort answers on every node, and cluster DNS
names Services and the pods of StatefulSets."""
from __future__ import annotations

import pytest

from boxkube.conformance.support import (SUITE_LABEL, conformance, is_ready, poll, pod_template, real_nodes, service,
                                         until, web_pod)


def _endpoints(core, namespace: str, name: str) -> dict[str, set]:
    """The Endpoints object's addresses as {"ready": {(pod, ip, port)}, "notReady": {...}}; None if
    it does not exist yet."""
    from kubernetes.client.exceptions import ApiException
    try:
        ep = core.read_namespaced_endpoints(name, namespace)
    except ApiException as e:
        if e.status == 404:
            return None
        raise
    found: dict[str, set] = {"ready": set(), "notReady": set()}
    for subset in ep.subsets or []:
        ports = [p.port for p in subset.ports or []]
        for key, addresses in (("ready", subset.addresses), ("notReady", subset.not_ready_addresses)):
            for a in addresses or []:
                for port in ports:
                    found[key].add((a.target_ref.name if a.target_ref else None, a.ip, port))
    return found


def _slices(discovery, namespace: str, name: str) -> dict[str, set]:
    """The Service's EndpointSlices' endpoints, as {"ready": {(pod, ip, port)}, "other": {...}}; None
    if it has no slice yet."""
    slices = discovery.list_namespaced_endpoint_slice(
        namespace, label_selector=f"kubernetes.io/service-name={name}").items
    if not slices:
        return None
    found: dict[str, set] = {"ready": set(), "other": set()}
    for s in slices:
        assert s.address_type in ("IPv4", "IPv6"), s.address_type
        ports = [p.port for p in s.ports or []]
        for e in s.endpoints or []:
            ready = e.conditions is not None and e.conditions.ready
            for ip in e.addresses:
                for port in ports:
                    found["ready" if ready else "other"].add((e.target_ref.name if e.target_ref else None, ip, port))
    return found


def _ready_pod(core, namespace: str, name: str, timeout: float = 120):
    return poll(lambda: core.read_namespaced_pod(name, namespace), is_ready,
                timeout=timeout, what=f"pod {name} Running and Ready")


@pytest.mark.parametrize("kind", [
    pytest.param("Endpoints", marks=conformance(
        area="Service routing",
        upstream="[sig-network] Services should serve a basic endpoint from pods [Conformance]")),
    pytest.param("EndpointSlices", marks=conformance(
        area="Service routing",
        upstream="[sig-network] EndpointSlice should create Endpoints and EndpointSlices for Pods matching a "
                 "Service [Conformance]")),
])
def test_endpoints_start_empty_track_pods_and_end_empty(kind, core, discovery, namespace, images):
    port = images.web_port
    core.create_namespaced_service(namespace, service("tracked", "tracked", port))
    if kind == "Endpoints":
        def read():
            return _endpoints(core, namespace, "tracked")
    else:
        def read():
            return _slices(discovery, namespace, "tracked")

    def expect(pods: dict[str, str], what: str):
        want = {(name, ip, port) for name, ip in pods.items()}

        def check():
            found = read()
            return found if found is not None and found["ready"] == want and not (
                kind == "EndpointSlices" and want == set() and found["other"]) else None
        return until(check, timeout=90, what=f"{kind} of the Service: {what} ({sorted(want)})")

    expect({}, "exists, with no endpoints")
    ips: dict[str, str] = {}
    for name in ("tracked-1", "tracked-2"):
        core.create_namespaced_pod(namespace, web_pod(name, "tracked", images.web, port))
        ips[name] = _ready_pod(core, namespace, name).status.pod_ip
        expect(dict(ips), f"the ready pods {', '.join(ips)}")
    # A pod that does not match the selector is never an endpoint.
    stranger = web_pod("stranger", "someone-else", images.web, port)
    core.create_namespaced_pod(namespace, stranger)
    _ready_pod(core, namespace, "stranger")
    expect(dict(ips), "still only the matching pods")

    for name in ("tracked-1", "tracked-2"):
        core.delete_namespaced_pod(name, namespace, grace_period_seconds=1)
        del ips[name]
        expect(dict(ips), f"{name} gone after its deletion")


def _web_pods(core, namespace: str, app: str, images, count: int, **container) -> list[str]:
    names = [f"{app}-{i}" for i in range(count)]
    for name in names:
        core.create_namespaced_pod(namespace, web_pod(name, app, images.web, images.web_port, **container))
    return names


def _client_log(core, namespace: str, images, script: str, client: str = "client") -> list[str]:
    """Run `script` (sh) in a client pod of the tools image and return the lines it printed: it ends
    them with a line DONE, then sleeps, so the pod stays up while its log is read."""
    core.create_namespaced_pod(namespace, {
        "metadata": {"name": client, "labels": {SUITE_LABEL: "true"}},
        "spec": {"restartPolicy": "Never", "terminationGracePeriodSeconds": 0,
                 "containers": [{"name": "client", "image": images.tools, "imagePullPolicy": "IfNotPresent",
                                 "command": ["sh", "-c", f"{script}; echo DONE; sleep 3600"]}]}})
    poll(lambda: core.read_namespaced_pod(client, namespace), is_ready, timeout=120,
         what=f"the client pod {client} Running")
    log = poll(lambda: core.read_namespaced_pod_log(client, namespace), lambda text: "DONE" in text.split(),
               timeout=120, interval=1, what=f"the requests of the client pod {client} done")
    return [line.strip() for line in log.splitlines() if line.strip() and line.strip() != "DONE"]


def _requests_through(core, namespace: str, images, host: str, count: int, client: str = "client") -> list[str]:
    """GET http://HOST/ (a ClusterIP or a DNS name) `count` times from a client pod; the names that
    answered, one per request. (`timeout 5 wget` rather than `wget -T 5`: the busybox 1.35 of Debian's
    busybox-static crashes on -T.)"""
    script = f"for i in $(seq 1 {count}); do timeout 5 wget -q -O - http://{host}/ || echo FAILED; done"
    return _client_log(core, namespace, images, script, client)


@real_nodes
@conformance(area="Service routing",
             upstream="[sig-network] Services should be able to switch session affinity for service with type "
                      "clusterIP [LinuxOnly] [Conformance]")
def test_a_cluster_ip_spreads_requests_over_every_ready_endpoint(core, namespace, images):
    # Upstream checks it as the "no session affinity" half of that test: requests reach many pods.
    svc = core.create_namespaced_service(namespace, service("spread", "spread", images.web_port))
    names = _web_pods(core, namespace, "spread", images, 3)
    for name in names:
        _ready_pod(core, namespace, name)
    poll(lambda: _endpoints(core, namespace, "spread"), lambda e: bool(e) and len(e["ready"]) == 3,
         timeout=60, what="3 ready endpoints")

    answers = _requests_through(core, namespace, images, svc.spec.cluster_ip, 60)
    assert len(answers) == 60 and "FAILED" not in answers, answers
    assert set(answers) == set(names), f"answered by {sorted(set(answers))}, not by every ready pod {names}"


@real_nodes
@conformance(area="Service routing", upstream=None)
def test_a_pod_that_is_not_ready_gets_no_traffic(core, namespace, images):
    svc = core.create_namespaced_service(namespace, service("picky", "picky", images.web_port))
    ready = _web_pods(core, namespace, "picky", images, 2)
    # Its readiness probe asks a port nobody listens on: Running, never Ready.
    unready = "picky-unready"
    core.create_namespaced_pod(namespace, web_pod(unready, "picky", images.web, images.web_port, readinessProbe={
        "tcpSocket": {"port": images.web_port + 1}, "periodSeconds": 1, "failureThreshold": 1}))
    for name in ready:
        _ready_pod(core, namespace, name)

    def running_not_ready():
        pod = core.read_namespaced_pod(unready, namespace)
        statuses = pod.status.container_statuses or []
        return pod if statuses and statuses[0].state.running and not is_ready(pod) else None
    pod = until(running_not_ready, timeout=90, what=f"{unready} Running but not Ready")
    assert not any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])

    def endpoints_split():
        e = _endpoints(core, namespace, "picky")
        return e if e and {n for n, _, _ in e["ready"]} == set(ready) and \
            {n for n, _, _ in e["notReady"]} == {unready} else None
    until(endpoints_split, timeout=60, what=f"Endpoints: {ready} ready, {unready} in notReadyAddresses")

    answers = _requests_through(core, namespace, images, svc.spec.cluster_ip, 40)
    assert len(answers) == 40 and "FAILED" not in answers, answers
    assert unready not in answers, f"the not-ready pod {unready} answered {answers.count(unready)} of 40 requests"
    assert set(answers) == set(ready), f"answered by {sorted(set(answers))}, not by both ready pods {ready}"


@real_nodes
@conformance(area="Service routing", upstream="[sig-network] DNS should provide DNS for services [Conformance]")
def test_a_service_answers_on_its_dns_names_through_the_pods_search_path(core, namespace, images):
    core.create_namespaced_service(namespace, service("named", "named", images.web_port))
    [pod] = _web_pods(core, namespace, "named", images, 1)
    _ready_pod(core, namespace, pod)
    poll(lambda: _endpoints(core, namespace, "named"), lambda e: bool(e) and len(e["ready"]) == 1,
         timeout=60, what="1 ready endpoint")
    # the short name, and the name with its namespace, complete through the pod's DNS search path
    for i, host in enumerate(("named", f"named.{namespace}", f"named.{namespace}.svc")):
        answers = _requests_through(core, namespace, images, host, 3, client=f"client-{i}")
        assert answers == [pod] * 3, f"http://{host}/ answered {answers}"


@real_nodes
@conformance(area="Service routing",
             upstream="[sig-network] Services should be able to create a functioning NodePort service [Conformance]")
def test_a_node_port_service_answers_on_every_nodes_internal_ip(core, namespace, images):
    body = service("exposed", "exposed", images.web_port)
    body["spec"]["type"] = "NodePort"
    svc = core.create_namespaced_service(namespace, body)
    node_port = svc.spec.ports[0].node_port
    assert node_port, f"no nodePort allocated: {svc.spec.ports}"
    names = _web_pods(core, namespace, "exposed", images, 2)
    for name in names:
        _ready_pod(core, namespace, name)
    poll(lambda: _endpoints(core, namespace, "exposed"), lambda e: bool(e) and len(e["ready"]) == 2,
         timeout=60, what="2 ready endpoints")
    ips = {}
    for node in core.list_node().items:
        internal = [a.address for a in node.status.addresses or [] if a.type == "InternalIP"]
        assert internal, f"node {node.metadata.name} has no InternalIP: {node.status.addresses}"
        ips[node.metadata.name] = internal[0]

    count = 12
    script = "; ".join(f"for i in $(seq 1 {count}); do echo {ip} $(timeout 5 wget -q -O - http://{ip}:{node_port}/ "
                       f"|| echo FAILED); done" for ip in ips.values())
    answers: dict[str, list[str]] = {ip: [] for ip in ips.values()}
    for line in _client_log(core, namespace, images, script):
        ip, _, answer = line.partition(" ")
        answers.setdefault(ip, []).append(answer.strip())
    for node, ip in ips.items():
        assert len(answers[ip]) == count and set(answers[ip]) <= set(names), \
            f"node {node}: http://{ip}:{node_port}/ answered {answers[ip]}, not only {names}"
    everyone = {a for said in answers.values() for a in said}
    assert everyone == set(names), f"the NodePort was answered by {sorted(everyone)}, not by every pod {names}"


@real_nodes
@conformance(area="Service routing", upstream="[sig-network] DNS should provide DNS for pods for Hostname [Conformance]")
def test_a_statefulset_pods_dns_name_resolves_to_its_ip(core, apps, namespace, images):
    # A StatefulSet's pods get hostname = their name and subdomain = its headless governing Service:
    # <pod>.<service>.<namespace>.svc.cluster.local is an A record of the pod's IP.
    core.create_namespaced_service(namespace, {
        "metadata": {"name": "members", "labels": {SUITE_LABEL: "true"}},
        "spec": {"clusterIP": "None", "selector": {"app": "member"},
                 "ports": [{"name": "http", "port": 80, "targetPort": images.web_port, "protocol": "TCP"}]}})
    apps.create_namespaced_stateful_set(namespace, {
        "metadata": {"name": "member", "labels": {SUITE_LABEL: "true"}},
        "spec": {"replicas": 2, "serviceName": "members", "selector": {"matchLabels": {"app": "member"}},
                 "template": pod_template("member", images.web, images.web_port)}})

    def both_ready():
        found = {p.metadata.name: p for p in core.list_namespaced_pod(namespace, label_selector="app=member").items
                 if is_ready(p)}
        return found if set(found) == {"member-0", "member-1"} else None
    pods = until(both_ready, timeout=180, what="the StatefulSet's pods member-0 and member-1 Running and Ready")
    want = {name: pod.status.pod_ip for name, pod in pods.items()}

    def endpoints_named():
        ep = core.read_namespaced_endpoints("members", namespace)
        return {a.hostname: a.ip for s in ep.subsets or [] for a in s.addresses or []} == want
    until(endpoints_named, timeout=60, what=f"the headless Service's endpoints named by hostname: {want}")

    fqdn = {name: f"{name}.members.{namespace}.svc.cluster.local" for name in pods}
    script = "; ".join(
        f"for i in $(seq 1 20); do nslookup {host} > /tmp/{name} 2>&1; grep -q '^Name:' /tmp/{name} && break; "
        f"sleep 1; done; echo '== {name}'; cat /tmp/{name}; "
        f"echo \"HTTP $(timeout 5 wget -q -O - http://{host}:{images.web_port}/ || echo FAILED)\""
        for name, host in fqdn.items())
    log = _client_log(core, namespace, images, script)
    sections: dict[str, list[str]] = {}
    current: list[str] = []
    for line in log:
        if line.startswith("== "):
            current = sections.setdefault(line[3:], [])
        else:
            current.append(line)
    for name, lines in sections.items():
        # busybox nslookup: the server's lines, then "Name: <name>" and "Address: <ip>" per answer
        answered = [i for i, line in enumerate(lines) if line.startswith("Name:")]
        addresses = {line.split()[-1] for line in lines[answered[0]:] if line.startswith("Address")} \
            if answered else set()
        assert addresses == {want[name]}, f"{fqdn[name]} resolved to {sorted(addresses)}, not {want[name]}: {lines}"
        assert f"HTTP {name}" in lines, f"http://{fqdn[name]}:{images.web_port}/ was not answered by {name}: {lines}"
    assert set(sections) == set(pods), log
