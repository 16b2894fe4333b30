"""Load balancers of the cluster's own nodes for Services of type LoadBalancer (k3s's ServiceLB, klipper-lb).

A cloud's service controller (or kind's cloud-provider-kind) gives a
LoadBalancer Service an address outside the cluster. boxkube has no cloud;
as k3s's ServiceLB does, the nodes themselves are the load balancer: a
LoadBalancer Service's `status.loadBalancer.ingress` lists the InternalIP of
every node that can take traffic (Ready, not cordoned, not labelled
`node.kubernetes.io/exclude-from-external-load-balancers`, as upstream's
service controller picks its nodes), each with `ipMode: VIP`, so that
`kubectl get svc` shows them as EXTERNAL-IP. Every node's service proxy
(boxkube.agent.proxy) forwards what arrives for ingress IP:port to the
Service's endpoints, as kube-proxy does for a cloud load balancer's VIP.

As upstream, only Services without `spec.loadBalancerClass` are ours (a
class names another implementation); a Service that is no longer of type
LoadBalancer has its ingress cleared. The list follows the nodes: a node
joining, leaving, turning NotReady or cordoned changes every LoadBalancer
Service's ingress.
"""
from __future__ import annotations

import copy
import ipaddress

from boxkube.client import resource
from boxkube.controllers.base import Controller, Obj
from boxkube.controllers.nodelifecycle import ready_status

SERVICES = resource("services")
LABEL_EXCLUDE = "node.kubernetes.io/exclude-from-external-load-balancers"


def node_ingress_ip(node: Obj) -> str | None:
    """The address a node serves load-balanced traffic on (its IPv4 InternalIP), None if it takes none."""
    meta, spec = node.get("metadata") or {}, node.get("spec") or {}
    if LABEL_EXCLUDE in (meta.get("labels") or {}) or spec.get("unschedulable") or ready_status(node) != "True":
        return None
    return next((a["address"] for a in (node.get("status") or {}).get("addresses") or []
                 if a.get("type") == "InternalIP" and "." in (a.get("address") or "")), None)


def wanted_ingress(service: Obj, nodes: list[Obj]) -> list[Obj] | None:
    """The service's status.loadBalancer.ingress as it should be; None when it is not ours to set."""
    spec = service.get("spec") or {}
    if spec.get("type") != "LoadBalancer":
        return []
    if spec.get("loadBalancerClass"):
        return None
    ips = {ip for ip in map(node_ingress_ip, nodes) if ip}
    return [{"ip": ip, "ipMode": "VIP"} for ip in sorted(ips, key=ipaddress.IPv4Address)]


class ServiceLBController(Controller):
    name = "service-lb"

    def setup(self) -> None:
        self.services = self.watch("services")
        self.nodes = self.informers.informer("nodes")
        self.nodes.add_event_handler(on_add=lambda n: self._nodes_changed(),
                                     on_update=self._node_updated, on_delete=lambda n: self._nodes_changed())

    def _node_updated(self, old: Obj, new: Obj) -> None:
        # nodes post status every few seconds: only a change of what they offer counts
        if node_ingress_ip(old) != node_ingress_ip(new):
            self._nodes_changed()

    def _nodes_changed(self) -> None:
        for service in self.services.store.list():
            if (service.get("spec") or {}).get("type") == "LoadBalancer":
                self.enqueue(service)

    async def reconcile(self, key: str) -> None:
        service = self.services.store.get(key)
        if service is None:
            return
        wanted = wanted_ingress(service, self.nodes.store.list())
        status = service.get("status") or {}
        if wanted is None or ((status.get("loadBalancer") or {}).get("ingress") or []) == wanted:
            return
        # the cached object carries its resourceVersion: a Service changed meanwhile is a conflict, retried
        updated = copy.deepcopy(service)
        updated["status"] = {**status, "loadBalancer": {"ingress": wanted} if wanted else {}}
        await self.client.replace_status(SERVICES, updated)
        meta = service["metadata"]
        self.log.info("service %s/%s: load balancer ingress %s", meta["namespace"], meta["name"],
                      ",".join(i["ip"] for i in wanted) or "cleared")


__all__ = ["ServiceLBController", "node_ingress_ip", "wanted_ingress"]
