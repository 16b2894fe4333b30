"""Strategies of the core/v1 resources: what each adds to the generic store."""
from __future__ import annotations

from typing import TYPE_CHECKING

from boxkube.apiserver import errors
from boxkube.apiserver.allocators import Exhausted, Taken
from boxkube.api.pods import qos_class
from boxkube.apiserver.strategies.base import Cause, Obj, Strategy
from boxkube.apiserver.strategies.podspec import default_pod_spec, default_template

if TYPE_CHECKING:
    from boxkube.apiserver.registry import Registry

# Added by upstream's DefaultTolerationSeconds admission plugin to every pod.
class PodStrategy(Strategy):
    tracks_generation = True
    return_deleted_object = True

    def default(self, obj: Obj) -> None:
        spec = obj.get("spec")
        default_pod_spec(spec)
        if not isinstance(spec, dict):
            return
        # What upstream's admission chain adds on create (ServiceAccount, DefaultTolerationSeconds, Priority).
        spec.setdefault("serviceAccountName", spec.get("serviceAccount") or "default")
        spec.setdefault("serviceAccount", spec["serviceAccountName"])
        spec.setdefault("priority", 0)
        spec.setdefault("preemptionPolicy", "PreemptLowerPriority")
        tolerations = spec.setdefault("tolerations", [])
        if isinstance(tolerations, list):
            # DefaultTolerationSeconds: how long a pod stays on a node that went away (boxkube's is short).
            have = {(t.get("key"), t.get("effect")) for t in tolerations if isinstance(t, dict)}
            for key, seconds in (("node.kubernetes.io/not-ready", self.admission.not_ready_toleration_seconds),
                                 ("node.kubernetes.io/unreachable", self.admission.unreachable_toleration_seconds)):
                if (key, "NoExecute") not in have:
                    tolerations.append({"key": key, "operator": "Exists", "effect": "NoExecute",
                                        "tolerationSeconds": seconds})
        status = obj.get("status")
        if isinstance(status, dict) and "qosClass" not in status:
            status["qosClass"] = qos_class(spec)

    def initial_status(self, obj: Obj) -> Obj:
        return {"phase": "Pending"}

    def prepare_for_update(self, new: Obj, old: Obj, subresource: str = "") -> None:
        # Once scheduled, only the binding subresource or the node agent sets nodeName.
        old_spec, new_spec = old.get("spec") or {}, new.get("spec")
        if isinstance(new_spec, dict) and old_spec.get("nodeName") and "nodeName" not in new_spec:
            new_spec["nodeName"] = old_spec["nodeName"]

    def graceful_delete(self, obj: Obj, grace: int | None) -> int:
        """A pod on a node lingers for its grace period so the node can stop it; an unbound or finished pod goes at once."""
        spec, phase = obj.get("spec") or {}, (obj.get("status") or {}).get("phase")
        if not spec.get("nodeName") or phase in ("Succeeded", "Failed"):
            return 0
        if grace is None:
            grace = int(spec.get("terminationGracePeriodSeconds", 30))
        return max(int(grace), 0)


# What upstream's NamespaceLifecycle admission never lets go (kube-node-lease may be deleted).
IMMORTAL_NAMESPACES = ("default", "kube-system", "kube-public")


class NamespaceStrategy(Strategy):
    return_deleted_object = True

    def default(self, obj: Obj) -> None:
        meta = obj["metadata"]
        if meta.get("name"):
            # Upstream sets this label on every namespace so selectors can pick namespaces by name.
            meta.setdefault("labels", {})["kubernetes.io/metadata.name"] = meta["name"]

    def prepare_for_create(self, obj: Obj) -> None:
        # Every namespace starts with the `kubernetes` finalizer: the namespace controller empties
        # it before it may go. Only the finalize subresource takes it off again.
        spec = obj.setdefault("spec", {})
        if isinstance(spec, dict):
            finalizers = spec.setdefault("finalizers", [])
            if isinstance(finalizers, list) and "kubernetes" not in finalizers:
                finalizers.append("kubernetes")

    def prepare_for_update(self, new: Obj, old: Obj, subresource: str = "") -> None:
        if subresource != "finalize":
            new_spec = new.setdefault("spec", {})
            if isinstance(new_spec, dict):
                old_finalizers = (old.get("spec") or {}).get("finalizers")
                if old_finalizers is None:
                    new_spec.pop("finalizers", None)
                else:
                    new_spec["finalizers"] = old_finalizers

    def initial_status(self, obj: Obj) -> Obj:
        return {"phase": "Active"}

    def check_delete(self, obj: Obj) -> None:
        name = obj["metadata"]["name"]
        if name in IMMORTAL_NAMESPACES:
            raise errors.forbidden("namespaces", name, "this namespace may not be deleted")

    def holds_deletion(self, obj: Obj) -> bool:
        # The namespace finalizer empties the namespace, then clears spec.finalizers.
        return bool((obj.get("spec") or {}).get("finalizers"))

    def on_deletion_marked(self, obj: Obj) -> None:
        obj.setdefault("status", {})["phase"] = "Terminating"


class ServiceStrategy(Strategy):
    return_deleted_object = True

    def default(self, obj: Obj) -> None:
        spec = obj.get("spec")
        if not isinstance(spec, dict):
            return
        spec.setdefault("type", "ClusterIP")
        spec.setdefault("sessionAffinity", "None")
        for port in spec.get("ports") or []:
            if isinstance(port, dict):
                port.setdefault("protocol", "TCP")
                if "port" in port:
                    port.setdefault("targetPort", port["port"])
        if spec["type"] != "ExternalName":
            spec.setdefault("internalTrafficPolicy", "Cluster")
            spec.setdefault("ipFamilies", ["IPv4"])
            spec.setdefault("ipFamilyPolicy", "SingleStack")
        if spec["type"] in ("NodePort", "LoadBalancer"):
            spec.setdefault("externalTrafficPolicy", "Cluster")
        if spec["type"] == "LoadBalancer":
            spec.setdefault("allocateLoadBalancerNodePorts", True)
        if spec.get("clusterIP") and "clusterIPs" not in spec:
            spec["clusterIPs"] = [spec["clusterIP"]]

    def initial_status(self, obj: Obj) -> Obj:
        return {"loadBalancer": {}}

    def validate_update(self, new: Obj, old: Obj) -> list[Cause]:
        old_ip = (old.get("spec") or {}).get("clusterIP")
        new_ip = (new.get("spec") or {}).get("clusterIP")
        if old_ip and new_ip != old_ip and (new.get("spec") or {}).get("type") != "ExternalName":
            return [errors.field_cause("spec.clusterIPs[0]", f'Invalid value: []string{{"{new_ip}"}}: may not change once set')]
        return []

    def prepare_for_update(self, new: Obj, old: Obj, subresource: str = "") -> None:
        new_spec, old_spec = new.get("spec"), old.get("spec") or {}
        if isinstance(new_spec, dict):
            _drop_type_dependent_fields(new_spec, old_spec)
        # An update that leaves clusterIP out keeps the allocated one (as kubectl apply expects).
        if isinstance(new_spec, dict) and new_spec.get("type", "ClusterIP") != "ExternalName":
            for key in ("clusterIP", "clusterIPs"):
                if key not in new_spec and key in old_spec:
                    new_spec[key] = old_spec[key]
            old_ports = {(p.get("port"), p.get("protocol", "TCP")): p.get("nodePort") for p in old_spec.get("ports") or []}
            if new_spec.get("type") in ("NodePort", "LoadBalancer"):
                for p in new_spec.get("ports") or []:
                    if isinstance(p, dict) and "nodePort" not in p and old_ports.get((p.get("port"), p.get("protocol", "TCP"))):
                        p["nodePort"] = old_ports[(p.get("port"), p.get("protocol", "TCP"))]

    async def before_create(self, registry: "Registry", obj: Obj, dry_run: bool) -> None:
        await self._allocate(registry, obj, None, dry_run)

    async def before_update(self, registry: "Registry", new: Obj, old: Obj, dry_run: bool) -> None:
        await self._allocate(registry, new, old, dry_run)

    async def after_update(self, registry: "Registry", new: Obj, old: Obj, written: bool) -> None:
        # Written: what the old object held and the new one gave up (a type change drops them) is free.
        # Not written: the old object still holds its own, and what was taken for the new one goes back.
        gone, kept = (old, new) if written else (new, old)
        kept_ips, kept_ports = set(_cluster_ips(kept)), set(_node_ports(kept))
        for ip in _cluster_ips(gone):
            if ip not in kept_ips:
                await registry.cluster_ips.release(ip)
        for port in _node_ports(gone):
            if port not in kept_ports:
                await registry.node_ports.release(port)

    async def _allocate(self, registry: "Registry", obj: Obj, old: Obj | None, dry_run: bool) -> None:
        spec, meta = obj.get("spec") or {}, obj["metadata"]
        ns, name = meta.get("namespace", ""), meta.get("name", "")
        kind = spec.get("type", "ClusterIP")
        taken: list = []
        try:
            if kind != "ExternalName" and not (old and (old.get("spec") or {}).get("clusterIP")):
                ip = spec.get("clusterIP")
                if ip == "None":
                    spec["clusterIPs"] = ["None"]
                elif ip:
                    if not registry.cluster_ips.contains(ip):
                        raise errors.invalid("Service", name, [errors.field_cause(
                            "spec.clusterIPs", f'Invalid value: []string{{"{ip}"}}: failed to allocate IP {ip}: '
                            f'the provided IP ({ip}) is not in the valid range. The range of valid IPs is {registry.cluster_ips.network}')])
                    if not dry_run:
                        await registry.cluster_ips.claim(ip, ns, name)
                        taken.append(("ip", ip))
                elif not dry_run:
                    spec["clusterIP"] = await registry.cluster_ips.allocate(ns, name)
                    taken.append(("ip", spec["clusterIP"]))
                    spec["clusterIPs"] = [spec["clusterIP"]]
            if kind in ("NodePort", "LoadBalancer"):
                before = set(_node_ports(old)) if old else set()
                for i, port in enumerate(spec.get("ports") or []):
                    if not isinstance(port, dict):
                        continue
                    wanted = port.get("nodePort")
                    if wanted and wanted in before:
                        continue
                    if wanted:
                        field = f"spec.ports[{i}].nodePort"
                        if not registry.node_ports.contains(wanted):
                            raise errors.invalid("Service", name, [errors.field_cause(
                                field, f"Invalid value: {wanted}: provided port is not in the valid range. "
                                f"The range of valid ports is {registry.node_ports.first}-{registry.node_ports.last}")])
                        if not dry_run:
                            try:
                                await registry.node_ports.claim(wanted, ns, name)
                            except Taken:
                                raise errors.invalid("Service", name, [errors.field_cause(
                                    field, f"Invalid value: {wanted}: provided port is already allocated")]) from None
                            taken.append(("port", wanted))
                    elif not dry_run and (kind == "NodePort" or spec.get("allocateLoadBalancerNodePorts") is not False):
                        port["nodePort"] = await registry.node_ports.allocate(ns, name)
                        taken.append(("port", port["nodePort"]))
        except Taken as e:     # the requested cluster IP (a taken node port is answered above)
            await self._release(registry, taken)
            raise errors.invalid("Service", name, [errors.field_cause(
                "spec.clusterIPs", f'Invalid value: []string{{"{e}"}}: failed to allocate IP {e}: provided IP is already allocated')])
        except Exhausted:
            await self._release(registry, taken)
            raise errors.internal("range is full")
        except BaseException:
            await self._release(registry, taken)
            raise

    @staticmethod
    async def _release(registry: "Registry", taken: list) -> None:
        for what, value in taken:
            await (registry.cluster_ips.release(value) if what == "ip" else registry.node_ports.release(value))

    async def after_delete(self, registry: "Registry", obj: Obj) -> None:
        for ip in _cluster_ips(obj):
            await registry.cluster_ips.release(ip)
        for port in _node_ports(obj):
            await registry.node_ports.release(port)


_NODE_PORT_TYPES = ("NodePort", "LoadBalancer")


def _drop_type_dependent_fields(new: Obj, old: Obj) -> None:
    """A type change clears the fields only the old type uses, unless the client changed them too
    (then validation refuses them), as upstream's dropTypeDependentFields; what was allocated is
    released in after_update."""
    old_type, new_type = old.get("type", "ClusterIP"), new.get("type", "ClusterIP")
    if old_type == new_type:
        return

    def drop_if_same(*keys: str) -> None:
        for key in keys:
            if key in new and new.get(key) == old.get(key):
                del new[key]
    if new_type == "ExternalName":
        if new.get("clusterIP") == old.get("clusterIP") and new.get("clusterIPs") == old.get("clusterIPs"):
            drop_if_same("clusterIP", "clusterIPs")
        drop_if_same("ipFamilies", "ipFamilyPolicy")
    if old_type in _NODE_PORT_TYPES and new_type not in _NODE_PORT_TYPES:
        if set(_node_ports({"spec": new})) <= set(_node_ports({"spec": old})):
            for port in new.get("ports") or []:
                if isinstance(port, dict):
                    port.pop("nodePort", None)
        drop_if_same("externalTrafficPolicy")
    if old_type == "LoadBalancer":
        drop_if_same("healthCheckNodePort", "allocateLoadBalancerNodePorts", "loadBalancerClass")


def _cluster_ips(obj: Obj | None) -> list[str]:
    spec = (obj or {}).get("spec") or {}
    return [ip for ip in spec.get("clusterIPs") or ([spec["clusterIP"]] if spec.get("clusterIP") else []) if ip != "None"]


def _node_ports(obj: Obj | None) -> list[int]:
    return [p["nodePort"] for p in ((obj or {}).get("spec") or {}).get("ports") or []
            if isinstance(p, dict) and p.get("nodePort")]


class NodeStrategy(Strategy):
    # The node agent registers its node with the status it has measured.
    reset_status_on_create = False
    allow_create_on_update = False


class SecretStrategy(Strategy):
    def default(self, obj: Obj) -> None:
        obj.setdefault("type", "Opaque")


class EndpointsStrategy(Strategy):
    allow_create_on_update = True

    def default(self, obj: Obj) -> None:
        for subset in obj.get("subsets") or []:
            for port in (subset or {}).get("ports") or []:
                if isinstance(port, dict):
                    port.setdefault("protocol", "TCP")


class ReplicationControllerStrategy(Strategy):
    tracks_generation = True

    def default(self, obj: Obj) -> None:
        spec = obj.get("spec")
        if not isinstance(spec, dict):
            return
        spec.setdefault("replicas", 1)
        labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels")
        if labels and not spec.get("selector"):
            spec["selector"] = dict(labels)
        if labels and not obj["metadata"].get("labels"):
            obj["metadata"]["labels"] = dict(labels)
        default_template(obj)

    def initial_status(self, obj: Obj) -> Obj:
        return {"replicas": 0}


class LeaseStrategy(Strategy):
    allow_create_on_update = True


class EventStrategy(Strategy):
    allow_create_on_update = True
