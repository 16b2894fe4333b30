"""The cluster config file of `boxkube create cluster --config FILE`.

    apiVersion: boxkube.dev/v1alpha1
    kind: Cluster
    nodes:
      - role: control-plane
      - role: worker
        count: 3                      # boxkube: several alike nodes in one entry
        labels: {disk: ssd}
        taints: [{key: dedicated, value: gpu, effect: NoSchedule}]
        capacity: {cpu: "4", memory: 8Gi, pods: "110"}
        extraPortMappings: [{containerPort: 30080, hostPort: 8080}]
    networking: {podSubnet: 10.244.0.0/16, serviceSubnet: 10.96.0.0/12}
    timings: {nodeMonitorGracePeriod: 10s, podEvictionTimeout: 20s}
    components: {scheduler: true, controllerManager: true}   # controllers: [namespace, ...] for a subset

Like kind's config it is read strictly: an unknown field or a bad value is one
line naming the field, never a traceback, and nothing is created.

The timings default faster than upstream's (40 s grace, 300 s toleration):
in a classroom a node that is gone should look gone, and its pods should come
back elsewhere, in well under a minute.
"""
from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator

from boxkube.api.quantity import QuantityError, parse_quantity
from boxkube.api.times import parse_duration
from boxkube.apiserver.validation import is_label_value, is_qualified_name
from boxkube.cluster.errors import ClusterError

API_VERSION = "boxkube.dev/v1alpha1"
KIND = "Cluster"


def _duration(value: str | int | float) -> float:
    seconds = parse_duration(value) if isinstance(value, str) else float(value)
    if seconds <= 0:
        raise ValueError("must be a positive duration")
    return seconds


Duration = Annotated[str | int | float, AfterValidator(_duration)]


def _cidr(value: str) -> str:
    try:
        return str(ipaddress.ip_network(value, strict=True))
    except ValueError as e:
        raise ValueError(f'invalid CIDR "{value}": {e}') from None


CIDR = Annotated[str, AfterValidator(_cidr)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)


class Taint(_Strict):
    key: str
    value: str = ""
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"]

    @field_validator("key")
    @classmethod
    def _key(cls, key: str) -> str:
        if errs := is_qualified_name(key):
            raise ValueError("; ".join(errs))
        return key


class PortMapping(_Strict):
    container_port: int = Field(alias="containerPort", ge=1, le=65535)
    host_port: int = Field(alias="hostPort", ge=0, le=65535)
    listen_address: str = Field("127.0.0.1", alias="listenAddress")
    protocol: Literal["TCP", "UDP", "SCTP"] = "TCP"


class NodeConfig(_Strict):
    role: Literal["control-plane", "worker"] = "worker"
    count: int = Field(1, ge=1)
    labels: dict[str, str] = {}
    taints: list[Taint] = []
    # Simulated nodes report this as capacity (and allocatable); Docker nodes measure their own.
    capacity: dict[str, str] = {}
    extra_port_mappings: list[PortMapping] = Field([], alias="extraPortMappings")

    @field_validator("labels")
    @classmethod
    def _labels(cls, labels: dict[str, str]) -> dict[str, str]:
        for key, value in labels.items():
            if errs := is_qualified_name(key) or is_label_value(value):
                raise ValueError(f'label "{key}={value}": ' + "; ".join(errs))
        return labels

    @field_validator("capacity", mode="before")
    @classmethod
    def _capacity(cls, capacity: object) -> object:
        if isinstance(capacity, dict):
            capacity = {k: str(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else v
                        for k, v in capacity.items()}
            for name, value in capacity.items():
                try:
                    parse_quantity(value) if isinstance(value, str) else None
                except QuantityError as e:
                    raise ValueError(f'{name}: "{value}": {e}') from None
        return capacity


def _ip(value: str) -> str:
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        raise ValueError(f'invalid IP address "{value}"') from None


class Networking(_Strict):
    pod_subnet: CIDR = Field("10.244.0.0/16", alias="podSubnet")
    service_subnet: CIDR = Field("10.96.0.0/12", alias="serviceSubnet")
    # Where the API server is reached from this machine, as kind's fields: the address it listens on
    # (the local provider) or the host address its port is published on (the docker provider), and
    # the port (0: a free one).
    api_server_address: Annotated[str, AfterValidator(_ip)] = Field("127.0.0.1", alias="apiServerAddress")
    api_server_port: int = Field(0, alias="apiServerPort", ge=0, le=65535)


class Timings(_Strict):
    # How long a node may miss its Lease renewals before it is marked NotReady/Unknown.
    node_monitor_grace_period: Duration = Field(10.0, alias="nodeMonitorGracePeriod")
    # How long pods stay bound to a NotReady/unreachable node before they are evicted
    # (the default tolerationSeconds of the not-ready and unreachable taints).
    pod_eviction_timeout: Duration = Field(20.0, alias="podEvictionTimeout")


class Components(_Strict):
    """Control-plane components to run beside the API server. Turning one off lets you test
    your own scheduler or controllers against boxkube without the built-in ones interfering."""
    scheduler: bool = True
    controller_manager: bool = Field(True, alias="controllerManager")
    # Which controllers the controller manager runs (None: all), like kube-controller-manager's --controllers.
    controllers: list[str] | None = None

    @field_validator("controllers")
    @classmethod
    def _known(cls, names: list[str] | None) -> list[str] | None:
        from boxkube.controllers.manager import available_controllers   # imports every controller module
        known = available_controllers()
        unknown = [n for n in names or [] if n not in known]
        if unknown:
            raise ValueError(f"unknown controller(s) {', '.join(unknown)}; known: {', '.join(known)}")
        return names


class ClusterConfig(_Strict):
    api_version: Literal["boxkube.dev/v1alpha1"] = Field(alias="apiVersion")
    kind: Literal["Cluster"]
    name: str | None = None
    nodes: list[NodeConfig] = []
    networking: Networking = Networking()
    timings: Timings = Timings()
    components: Components = Components()

    def workers(self) -> list[NodeConfig]:
        return [n for n in self.nodes if n.role == "worker"]

    def worker_count(self) -> int:
        return sum(n.count for n in self.workers())


def _location(loc: tuple) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part not in ("function-after", "str", "int", "float"):  # pydantic's union branch labels
            out += f".{part}" if out else str(part)
    return out


def _explain(e: ValidationError) -> str:
    first = e.errors()[0]
    where = _location(first["loc"])
    message = first["msg"].removeprefix("Value error, ")
    if first["type"] == "extra_forbidden":
        message = "unknown field"
    elif first["type"] == "missing":
        message = "required field is missing"
    more = f" (and {e.error_count() - 1} more)" if e.error_count() > 1 else ""
    return f"{where}: {message}{more}" if where else message + more


def parse_config(text: str, source: str = "config") -> ClusterConfig:
    """A ClusterConfig from YAML text, or a ClusterError naming the file and the field."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ClusterError(f"{source}: not valid YAML: {' '.join(str(e).split())}") from None
    if not isinstance(data, dict):
        raise ClusterError(f"{source}: expected a mapping with apiVersion: {API_VERSION} and kind: {KIND}")
    if data.get("apiVersion") != API_VERSION or data.get("kind") != KIND:
        raise ClusterError(f"{source}: expected apiVersion: {API_VERSION} and kind: {KIND}, "
                           f"got apiVersion: {data.get('apiVersion')} and kind: {data.get('kind')}")
    try:
        return ClusterConfig.model_validate(data)
    except ValidationError as e:
        raise ClusterError(f"{source}: {_explain(e)}") from None


def load_config(path: Path) -> ClusterConfig:
    try:
        text = path.read_text()
    except OSError as e:
        raise ClusterError(f"cannot read cluster config {path}: {e.strerror}") from None
    return parse_config(text, str(path))
