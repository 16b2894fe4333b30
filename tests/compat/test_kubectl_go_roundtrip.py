"""roundtrip.normalize against Go itself: `kubectl set image --local` and `kubectl set selector --local`
decode a manifest into kubectl 1.37's Go structs and print it again, which is what kube-apiserver does
to a written object. Manifests with every field of a Pod, Deployment and Service at its zero value, or
null, must come out of the normaliser as they come out of Go, but for the fields Go always prints and
the manifest lacks (roundtrip.py does not add those)."""
from __future__ import annotations

import copy
import json
import subprocess

import pytest

from boxkube.apiserver import protobuf, roundtrip
from boxkube.cluster.binaries import kubectl_binary

_ZERO = {"string": "", "int32": 0, "int64": 0, "bool": False, "bytes": ""}


def _fields(definition: str) -> dict[str, tuple[str, str]]:
    out = {}
    for name, kind, flags in protobuf.table()[definition].values():
        if name == "":
            out.update(_fields(kind))
        else:
            out[name] = (kind, flags)
    return out


def _every_field(definition: str, mode: str, depth: int = 0) -> dict:
    """Each field of a message at its zero value (zero) or null; messages two levels deep as {}."""
    obj = {}
    for name, (kind, flags) in _fields(definition).items():
        if mode == "null":
            obj[name] = None
        elif flags[:1] == "r":
            obj[name] = []
        elif flags[:1] == "m":
            obj[name] = {}
        elif kind in _ZERO:
            obj[name] = _ZERO[kind]
        elif kind in protobuf.table():
            obj[name] = _every_field(kind, mode, depth + 1) if depth < 1 else {}
    return obj


def _go(args: list[str], obj: dict) -> dict:
    done = subprocess.run([str(kubectl_binary()), "set", *args, "--local", "-f", "-", "-o", "json"],
                          input=json.dumps(obj), capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def _compare(sent, ours, go, path: str = "") -> None:
    """`ours` must equal `go`, except where Go added a field that `sent` did not have."""
    if isinstance(go, dict) and isinstance(ours, dict):
        sent = sent if isinstance(sent, dict) else {}        # a null that became {}
        for key in set(ours) | set(go):
            if key not in go:
                raise AssertionError(f"{path}.{key}: Go drops {json.dumps(ours[key])[:80]}, boxkube keeps it")
            if key not in ours:
                assert key not in sent, f"{path}.{key}: Go keeps {json.dumps(go[key])[:80]}, boxkube drops it"
                continue
            _compare(sent.get(key), ours[key], go[key], f"{path}.{key}")
    elif isinstance(go, list) and isinstance(ours, list) and len(go) == len(ours):
        for i, (o, g) in enumerate(zip(ours, go)):
            _compare(sent[i] if isinstance(sent, list) and i < len(sent) else None, o, g, f"{path}[{i}]")
    else:
        assert (ours, type(ours)) == (go, type(go)), f"{path}: boxkube {ours!r}, Go {go!r}"


def _check(definition: str, obj: dict, args: list[str], fix) -> None:
    ours = copy.deepcopy(obj)
    roundtrip.normalize(definition, ours)
    fix(ours)                          # what the kubectl command itself changed
    _compare(obj, ours, _go(args, obj))


@pytest.mark.parametrize("mode", ["zero", "null"])
def test_pod_as_go_prints_it(mode):
    container = {**_every_field("io.k8s.api.core.v1.Container", mode), "name": "c", "image": "img"}
    meta = {**_every_field("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta", mode), "name": "p"}
    del meta["managedFields"]          # kubectl's printer leaves them out
    spec = {**_every_field("io.k8s.api.core.v1.PodSpec", mode), "containers": [container],
            "initContainers": [{**container, "name": "i"}]}
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec,
           "status": _every_field("io.k8s.api.core.v1.PodStatus", mode)}
    _check("io.k8s.api.core.v1.Pod", pod, ["image", "c=img2"],
           lambda o: o["spec"]["containers"][0].update(image="img2"))


@pytest.mark.parametrize("mode", ["zero", "null"])
def test_deployment_as_go_prints_it(mode):
    spec = {**_every_field("io.k8s.api.apps.v1.DeploymentSpec", mode),
            "template": {"spec": {"containers": [{"name": "c", "image": "img", "args": [None, "a"]}]}}}
    deployment = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"}, "spec": spec,
                  "status": _every_field("io.k8s.api.apps.v1.DeploymentStatus", mode)}
    _check("io.k8s.api.apps.v1.Deployment", deployment, ["image", "c=img2"],
           lambda o: o["spec"]["template"]["spec"]["containers"][0].update(image="img2"))


@pytest.mark.parametrize("mode", ["zero", "null"])
def test_service_as_go_prints_it(mode):
    spec = {**_every_field("io.k8s.api.core.v1.ServiceSpec", mode),
            "ports": [{**_every_field("io.k8s.api.core.v1.ServicePort", mode), "port": 80}]}
    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s", "labels": {"a": None}},
               "spec": spec, "status": _every_field("io.k8s.api.core.v1.ServiceStatus", mode)}
    _check("io.k8s.api.core.v1.Service", service, ["selector", "c=d"],
           lambda o: o["spec"].update(selector={"c": "d"}))
