"""`kubectl create <kind>` sends protobuf: what boxkube stores must be what kubectl meant.

Each command runs three ways: for real (a protobuf body), with `--dry-run=client -o json`
(what kubectl built), and that JSON sent back through `kubectl create -f -` into a twin
namespace (a JSON body). The protobuf object must hold everything kubectl built, and
equal the JSON twin once the fields the server sets are left out.
"""
from __future__ import annotations

import datetime
import json
import uuid

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

# What the server sets on its own: identity, bookkeeping and allocations.
SERVER_META = ("uid", "resourceVersion", "creationTimestamp", "generation", "managedFields", "namespace")


def _tls_files(tmp_path) -> tuple[str, str]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "example.test")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now)
            .not_valid_after(now + datetime.timedelta(days=1)).sign(key, hashes.SHA256()))
    cert_file, key_file = tmp_path / "tls.crt", tmp_path / "tls.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return str(cert_file), str(key_file)


def _commands(tmp_path) -> dict[str, tuple[str, str, list[str]]]:
    """id -> (resource, name, `kubectl create` arguments)."""
    cert, key = _tls_files(tmp_path)
    binary = tmp_path / "blob"
    binary.write_bytes(b"\xff\x00\x01binary")
    return {
        "deployment": ("deployment", "web", ["deployment", "web", "--image=nginx:1.25", "--replicas=0", "--port=80"]),
        "configmap": ("configmap", "cm", ["configmap", "cm", "--from-literal=a=b", f"--from-file=blob={binary}"]),
        "secret-generic": ("secret", "gen", ["secret", "generic", "gen", "--from-literal=user=admin",
                                             "--type=Opaque"]),
        "secret-tls": ("secret", "tls", ["secret", "tls", "tls", f"--cert={cert}", f"--key={key}"]),
        "secret-docker-registry": ("secret", "reg", ["secret", "docker-registry", "reg", "--docker-server=r.test",
                                                     "--docker-username=u", "--docker-password=p"]),
        "service-clusterip": ("service", "cip", ["service", "clusterip", "cip", "--tcp=80:8080", "--tcp=443"]),
        "service-headless": ("service", "headless", ["service", "clusterip", "headless", "--clusterip=None"]),
        "service-nodeport": ("service", "np", ["service", "nodeport", "np", "--tcp=80:8080"]),
        "service-loadbalancer": ("service", "lb", ["service", "loadbalancer", "lb", "--tcp=80:http"]),
        "service-externalname": ("service", "ext", ["service", "externalname", "ext",
                                                    "--external-name=example.test"]),
        "serviceaccount": ("serviceaccount", "sa", ["serviceaccount", "sa"]),
    }


COMMANDS = ["deployment", "configmap", "secret-generic", "secret-tls", "secret-docker-registry", "service-clusterip",
            "service-headless", "service-nodeport", "service-loadbalancer", "service-externalname", "serviceaccount"]


def _server_neutral(obj: dict) -> dict:
    obj = json.loads(json.dumps(obj))
    for key in SERVER_META:
        obj["metadata"].pop(key, None)
    obj.pop("status", None)
    spec = obj.get("spec") or {}
    for key in ("clusterIP", "clusterIPs"):             # allocated
        spec.pop(key, None)
    for port in spec.get("ports") or []:
        port.pop("nodePort", None)
    return obj


def _contains(whole, part, path="") -> None:
    """Every field of `part` is in `whole` with the same value (the server may add defaults)."""
    if isinstance(part, dict):
        assert isinstance(whole, dict), f"{path}: {whole!r} is not an object"
        for key, value in part.items():
            assert key in whole, f"{path}.{key} is missing from the stored object"
            _contains(whole[key], value, f"{path}.{key}")
    elif isinstance(part, list):
        assert isinstance(whole, list) and len(whole) == len(part), f"{path}: {whole!r} != {part!r}"
        for i, (w, p) in enumerate(zip(whole, part)):
            _contains(w, p, f"{path}[{i}]")
    else:
        assert whole == part, f"{path}: stored {whole!r}, kubectl built {part!r}"


@pytest.fixture
def twin(cluster):
    """A second namespace for the JSON twins."""
    name = f"t-{uuid.uuid4().hex[:8]}"
    cluster.kubectl("create", "namespace", name)
    yield name
    cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


@pytest.mark.parametrize("which", COMMANDS)
def test_create_sends_protobuf_and_stores_what_kubectl_built(cluster, namespace, twin, tmp_path, which):
    resource, name, args = _commands(tmp_path)[which]
    built = json.loads(cluster.kubectl("-n", namespace, "create", *args, "--dry-run=client", "-o", "json").stdout)
    cluster.kubectl("-n", namespace, "create", *args)
    cluster.kubectl("-n", twin, "create", "-f", "-", input=json.dumps({**built, "metadata": {
        k: v for k, v in built["metadata"].items() if k != "namespace"}}))

    def get(ns: str) -> dict:
        return json.loads(cluster.kubectl("-n", ns, "get", resource, name, "-o", "json").stdout)
    stored, from_json = get(namespace), get(twin)
    _contains(stored, {k: v for k, v in built.items() if k != "status"})
    assert _server_neutral(stored) == _server_neutral(from_json)


def test_create_namespace(cluster):
    name = f"t-{uuid.uuid4().hex[:8]}"
    built = json.loads(cluster.kubectl("create", "namespace", name, "--dry-run=client", "-o", "json").stdout)
    cluster.kubectl("create", "namespace", name)
    try:
        stored = json.loads(cluster.kubectl("get", "namespace", name, "-o", "json").stdout)
        _contains(stored, {k: v for k, v in built.items() if k != "status"})
        assert stored["metadata"]["labels"] == {"kubernetes.io/metadata.name": name}
        assert stored["status"] == {"phase": "Active"}
    finally:
        cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


def test_create_deployment_zero_replicas_is_kept(cluster, namespace):
    """replicas is a pointer: a 0 on the wire is set (defaulting would make it 1), unlike generation's 0."""
    cluster.kubectl("-n", namespace, "create", "deployment", "zero", "--image=nginx:1.25", "--replicas=0")
    d = json.loads(cluster.kubectl("-n", namespace, "get", "deployment", "zero", "-o", "json").stdout)
    assert d["spec"]["replicas"] == 0
    assert d["metadata"]["generation"] == 1
    assert "generateName" not in d["metadata"]


def test_malformed_protobuf_is_a_400(cluster):
    import httpx
    server, token, _ = cluster.server_and_token()
    body = b"k8s\x00\x0a\x0f\x0a\x02v1\x12\x09Namespace\x12\x04\x0a\x03\x0a\x01"    # metadata cut short
    r = httpx.post(f"{server}/api/v1/namespaces", content=body, verify=False,
                   headers={"Authorization": f"Bearer {token}", "Content-Type": "application/vnd.kubernetes.protobuf"})
    assert r.status_code == 400, r.text
    status = r.json()
    assert status["reason"] == "BadRequest"
    assert status["message"] == 'Namespace in version "v1" cannot be handled as a Namespace: unexpected EOF'
