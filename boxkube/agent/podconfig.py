"""What the kubelet works out for a container before any runtime starts it: its environment and its command line.

This is runtime-independent kubelet work (upstream's kubelet_pods.go), done by
the pod worker for the simulated and the Docker runtime alike; the result goes
to the runtime in a `ContainerConfig`.

- environment (upstream's makeEnvironmentVariables): `envFrom` ConfigMaps and
  Secrets first (with their prefix), then `env` in order, a later name
  replacing an earlier one: literal values with `$(VAR)` references to the
  variables declared before them expanded, `valueFrom` ConfigMap and Secret
  keys, downward API fields (`fieldRef`) and container resources
  (`resourceFieldRef`, limits defaulting to the node's allocatable);
- command and args: `$(VAR)` references expanded with that environment
  (upstream's ExpandContainerCommandAndArgs).

A reference that cannot be resolved (a missing ConfigMap, Secret or key that
is not optional) raises ConfigError with upstream's message, e.g.
`configmap "x" not found` or `couldn't find key k in ConfigMap ns/x`: the
container waits with the kubelet's CreateContainerConfigError.

ConfigMaps and Secrets are read with a GET each time a container starts
(ObjectSource). Upstream's kubelet keeps them in a cache fed by a watch per
referenced object (ConfigMapAndSecretChangeDetectionStrategy: Watch, its
default); a GET per start is enough while volumes are written once per pod
and nothing updates them — when they are kept up to date, this becomes a
watch-fed cache.

Service environment variables (upstream's envvars.FromServices and
getServiceEnvVarMap): `<SVC>_SERVICE_HOST`, `<SVC>_SERVICE_PORT`,
`<SVC>_SERVICE_PORT_<PORTNAME>` and Docker's link variables (`<SVC>_PORT`,
`<SVC>_PORT_<port>_<PROTO>` and its `_PROTO`, `_PORT`, `_ADDR`) of every
Service of the pod's namespace that has a ClusterIP (headless and
ExternalName Services have none), as the node's Service cache shows them when
the container starts; with `enableServiceLinks: false`, only those of the
`kubernetes` Service of `default`, which every pod gets. A Service of the
pod's namespace hides one of `default` of the same name. They are added after
the container's own variables, which win, and `$(VAR)` in env values, command
and args can refer to them.

Downward API values (`field_value`, `resource_value`) serve both the
environment and downwardAPI volumes (boxkube.agent.volumes).
"""
from __future__ import annotations

import base64
import math
import re
from collections import ChainMap
from collections.abc import Iterable, Mapping
from fractions import Fraction
from typing import Any

from boxkube.api.quantity import QuantityError, parse_quantity
from boxkube.client import ApiClient, ApiError, resource

Obj = dict[str, Any]
CONFIGMAPS, SECRETS = resource("configmaps"), resource("secrets")

_SUBSCRIPT = re.compile(r"^(metadata\.(?:labels|annotations))\['(.*)'\]$")


class ConfigError(Exception):
    """A container's configuration cannot be made; str() is the kubelet's message for CreateContainerConfigError."""


class ObjectSource:
    """The ConfigMaps and Secrets of one namespace, read with a GET on first use and kept for the
    caller's one job (one container start, one pod's volumes)."""

    def __init__(self, client: ApiClient, namespace: str):
        self.client, self.namespace = client, namespace
        self._configmaps: dict[str, Obj | None] = {}
        self._secrets: dict[str, Obj | None] = {}

    async def configmap(self, name: str, optional: bool = False) -> dict[str, bytes] | None:
        """The ConfigMap's keys (data and binaryData) as bytes; None when it is missing and optional.
        ConfigError `configmap "x" not found` (upstream's cache says it in the singular) otherwise."""
        obj = await self._get(CONFIGMAPS, self._configmaps, name)
        if obj is None:
            if optional:
                return None
            raise ConfigError(f'configmap "{name}" not found')
        out = {k: str(v).encode() for k, v in (obj.get("data") or {}).items()}
        for k, v in (obj.get("binaryData") or {}).items():
            out[k] = _b64(v)
        return out

    async def secret(self, name: str, optional: bool = False) -> dict[str, bytes] | None:
        """The Secret's keys, decoded; None when it is missing and optional, else ConfigError `secret "x" not found`."""
        obj = await self._get(SECRETS, self._secrets, name)
        if obj is None:
            if optional:
                return None
            raise ConfigError(f'secret "{name}" not found')
        out = {k: str(v).encode() for k, v in (obj.get("stringData") or {}).items()}
        out.update({k: _b64(v) for k, v in (obj.get("data") or {}).items()})
        return out

    async def _get(self, rt: Any, cache: dict[str, Obj | None], name: str) -> Obj | None:
        if name not in cache:
            try:
                cache[name] = await self.client.get(rt, name, self.namespace)
            except ApiError as e:
                if not e.is_not_found:
                    raise
                cache[name] = None
        return cache[name]


def _b64(value: Any) -> bytes:
    try:
        return base64.b64decode(str(value), validate=False)
    except ValueError:
        return str(value).encode()


def _text(value: bytes) -> str:
    return value.decode("utf-8", errors="replace")


# -- $(VAR) expansion (upstream third_party/forked/golang/expansion) ------------------------------------


def expand(text: str, env: Mapping[str, str]) -> str:
    """Replace `$(NAME)` by its value when NAME is defined (kept as written when not); `$$` is a
    literal `$`, so `$$(NAME)` gives `$(NAME)`."""
    out: list[str] = []
    checkpoint, cursor, n = 0, 0, len(text)
    while cursor < n:
        if text[cursor] == "$" and cursor + 1 < n:
            out.append(text[checkpoint:cursor])
            nxt = text[cursor + 1]
            advance = 1
            if nxt == "$":
                out.append("$")
            elif nxt == "(":
                close = text.find(")", cursor + 2)
                if close == -1:
                    out.append("$(")
                else:
                    name = text[cursor + 2:close]
                    out.append(env[name] if name in env else f"$({name})")
                    advance = close - cursor
            else:
                out.append("$" + nxt)
            cursor += advance
            checkpoint = cursor + 1
        cursor += 1
    out.append(text[checkpoint:])
    return "".join(out)


def command_line(container: Obj, env: list[tuple[str, str]]) -> tuple[list[str] | None, list[str] | None]:
    """The container's command and args with `$(VAR)` expanded; None for what the image decides."""
    mapping = dict(env)
    command = [expand(str(c), mapping) for c in container.get("command") or []] or None
    args = [expand(str(a), mapping) for a in container.get("args") or []] or None
    return command, args


# -- the downward API -----------------------------------------------------------------------------------


def format_map(values: Mapping[str, str]) -> str:
    """Labels or annotations as a downwardAPI volume shows them: `key="value"` lines, sorted (fieldpath.FormatMap)."""
    return "\n".join(f"{k}={_go_quote(str(values[k]))}" for k in sorted(values))


def _go_quote(text: str) -> str:
    """Go's %q for the strings that labels and annotations hold."""
    out = ['"']
    for ch in text:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\r":
            out.append("\\r")
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def field_value(pod: Obj, path: str, *, pod_ip: str = "", host_ip: str = "", volume: bool = False) -> str:
    """A downward API fieldRef's value (upstream podFieldSelectorRuntimeValue / ExtractFieldPathAsString).
    A downwardAPI volume may also take whole `metadata.labels` and `metadata.annotations`."""
    meta, spec = pod.get("metadata") or {}, pod.get("spec") or {}
    simple = {
        "metadata.name": meta.get("name", ""), "metadata.namespace": meta.get("namespace", ""),
        "metadata.uid": meta.get("uid", ""),
    }
    if not volume:
        simple.update({"spec.nodeName": spec.get("nodeName", ""),
                       "spec.serviceAccountName": spec.get("serviceAccountName", ""),
                       "status.hostIP": host_ip, "status.hostIPs": host_ip,
                       "status.podIP": pod_ip, "status.podIPs": pod_ip})
    if path in simple:
        return str(simple[path])
    if path in ("metadata.labels", "metadata.annotations"):
        return format_map(meta.get(path.split(".")[1]) or {})
    m = _SUBSCRIPT.match(path)
    if m:
        return str((meta.get(m.group(1).split(".")[1]) or {}).get(m.group(2), ""))
    raise ConfigError(f"unsupported fieldPath: {path}")


def resource_value(pod: Obj, container: Obj | None, ref: Obj, allocatable: Mapping[str, str]) -> str:
    """A resourceFieldRef's value: the container's limit or request divided by the divisor, rounded up;
    a limit the container does not set is the node's allocatable (upstream defaultPodLimitsForDownwardAPI)."""
    name = ref.get("containerName") or ""
    if name:
        spec = pod.get("spec") or {}
        container = next((c for c in (spec.get("containers") or []) + (spec.get("initContainers") or [])
                          if c.get("name") == name), None)
        if container is None:
            raise ConfigError(f"container {name} not found")
    if container is None:
        raise ConfigError("resourceFieldRef needs a containerName here")
    what = ref.get("resource") or ""
    kind, _, res = what.partition(".")
    if kind not in ("limits", "requests") or not res:
        raise ConfigError(f"unsupported container resource : {what}")
    resources = container.get("resources") or {}
    text = (resources.get(kind) or {}).get(res)
    if text is None and kind == "limits":
        text = allocatable.get(res)
    try:
        value = parse_quantity(str(text)).value if text is not None else Fraction(0)
        divisor = parse_quantity(str(ref.get("divisor") or "1")).value
    except QuantityError as e:
        raise ConfigError(f"{what}: {e}") from None
    if divisor <= 0:
        raise ConfigError(f"{what}: the divisor must be positive")
    if res == "cpu":     # upstream divides milli-values, each rounded up first
        value, divisor = Fraction(math.ceil(value * 1000)), Fraction(math.ceil(divisor * 1000))
    else:
        value, divisor = Fraction(math.ceil(value)), Fraction(math.ceil(divisor))
    return str(math.ceil(value / divisor))


# -- Service environment variables (upstream pkg/kubelet/envvars) ---------------------------------------

# Services of `default` whose variables every pod gets, enableServiceLinks or not (upstream masterServices).
MASTER_SERVICES = frozenset({"kubernetes"})


def env_var_name(name: str) -> str:
    """A Service or port name as part of a variable name: dashes to underscores, upper case (makeEnvVariableName)."""
    return name.replace("-", "_").upper()


def has_cluster_ip(service: Obj) -> bool:
    """Whether the Service has a ClusterIP: not headless (None), not ExternalName (empty) (IsServiceIPSet)."""
    ip = (service.get("spec") or {}).get("clusterIP") or ""
    return ip not in ("", "None")


def _host_port(ip: str, port: int) -> str:
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def service_variables(services: Iterable[Obj]) -> list[tuple[str, str]]:
    """The variables of `services`, in their order (upstream FromServices); Services without a ClusterIP
    or without ports give none."""
    out: list[tuple[str, str]] = []
    for service in services:
        spec = service.get("spec") or {}
        ports = spec.get("ports") or []
        if not has_cluster_ip(service) or not ports:
            continue
        ip, prefix = spec["clusterIP"], env_var_name((service.get("metadata") or {}).get("name", ""))
        out.append((f"{prefix}_SERVICE_HOST", ip))
        # the first port has the backwards-compatible name; every named port (only the first may be unnamed) its own
        out.append((f"{prefix}_SERVICE_PORT", str(ports[0].get("port", ""))))
        for sp in ports:
            if sp.get("name"):
                out.append((f"{prefix}_SERVICE_PORT_{env_var_name(sp['name'])}", str(sp.get("port", ""))))
        # Docker's link variables (makeLinkVariables)
        for i, sp in enumerate(ports):
            protocol = sp.get("protocol") or "TCP"
            port = str(sp.get("port", ""))
            url = f"{protocol.lower()}://{_host_port(ip, port)}"
            if i == 0:
                out.append((f"{prefix}_PORT", url))
            port_prefix = f"{prefix}_PORT_{port}_{protocol.upper()}"
            out += [(port_prefix, url), (f"{port_prefix}_PROTO", protocol.lower()), (f"{port_prefix}_PORT", port),
                    (f"{port_prefix}_ADDR", ip)]
    return out


def service_environment(services: Iterable[Obj], namespace: str, enable_service_links: bool = True) -> dict[str, str]:
    """The Service variables of a pod of `namespace` (upstream getServiceEnvVarMap), from `services`
    (any namespaces; those of other namespaces than `namespace` and `default` are ignored)."""
    chosen: dict[str, Obj] = {}
    for service in services:
        if not has_cluster_ip(service):
            continue
        meta = service.get("metadata") or {}
        name, of = meta.get("name", ""), meta.get("namespace", "")
        if of == "default" and name in MASTER_SERVICES:
            chosen.setdefault(name, service)
        elif of == namespace and enable_service_links:
            chosen[name] = service      # the pod's own namespace wins over default's
    return dict(service_variables(chosen[name] for name in sorted(chosen)))


# -- the environment ------------------------------------------------------------------------------------


async def environment(pod: Obj, container: Obj, source: ObjectSource, *, pod_ip: str = "", host_ip: str = "",
                      allocatable: Mapping[str, str] | None = None,
                      services: Mapping[str, str] | None = None) -> list[tuple[str, str]]:
    """The container's environment, every value resolved, in declaration order (envFrom first), then the
    `services` variables (service_environment) that the container does not set itself."""
    namespace = (pod.get("metadata") or {}).get("namespace", "")
    service_env = dict(services or {})
    env: dict[str, str] = {}
    for entry in container.get("envFrom") or []:
        prefix = entry.get("prefix") or ""
        if entry.get("configMapRef") is not None:
            ref = entry["configMapRef"]
            data = await source.configmap(ref.get("name", ""), bool(ref.get("optional")))
        elif entry.get("secretRef") is not None:
            ref = entry["secretRef"]
            data = await source.secret(ref.get("name", ""), bool(ref.get("optional")))
        else:
            continue
        for k, v in (data or {}).items():
            env[prefix + k] = _text(v)
    for var in container.get("env") or []:
        name, value, source_ref = var.get("name", ""), var.get("value") or "", var.get("valueFrom")
        if value:
            # $(VAR): the variables declared so far, then the Service variables (upstream MappingFuncFor)
            env[name] = expand(value, ChainMap(env, service_env))
            continue
        if not source_ref:
            env[name] = ""
            continue
        if source_ref.get("fieldRef") is not None:
            env[name] = field_value(pod, source_ref["fieldRef"].get("fieldPath", ""), pod_ip=pod_ip, host_ip=host_ip)
        elif source_ref.get("resourceFieldRef") is not None:
            env[name] = resource_value(pod, container, source_ref["resourceFieldRef"], allocatable or {})
        elif source_ref.get("configMapKeyRef") is not None or source_ref.get("secretKeyRef") is not None:
            is_configmap = source_ref.get("configMapKeyRef") is not None
            ref = source_ref["configMapKeyRef" if is_configmap else "secretKeyRef"]
            optional, of, key = bool(ref.get("optional")), ref.get("name", ""), ref.get("key", "")
            data = await (source.configmap if is_configmap else source.secret)(of, optional)
            if data is None:
                continue
            if key not in data:
                if optional:
                    continue
                raise ConfigError(f"couldn't find key {key} in {'ConfigMap' if is_configmap else 'Secret'} "
                                  f"{namespace}/{of}")
            env[name] = _text(data[key])
        else:
            env[name] = ""
    for name, value in service_env.items():
        env.setdefault(name, value)
    return list(env.items())
