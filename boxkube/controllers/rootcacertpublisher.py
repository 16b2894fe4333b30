"""The root CA publisher: a ConfigMap `kube-root-ca.crt` in every namespace
(pkg/controller/certificates/rootcacertpublisher).

Its key `ca.crt` is the cluster CA certificate (PEM), which a pod uses to check
the API server it reaches at `kubernetes.default.svc` (upstream's projected
service-account token volumes mount it). As upstream's publisher:

- a namespace is looked at when it appears, and when it changes while Active;
- the ConfigMap is made when missing, and made again when deleted;
- a changed ConfigMap gets its data back (exactly `ca.crt`) and the
  `kubernetes.io/description` annotation, other fields (labels, other
  annotations) are left as the user made them;
- a namespace that is gone or terminating is left alone (the create's
  NotFound or NamespaceTerminating is not retried).

The CA is the file of `--root-ca-file` (Settings.root_ca_file), else the one
the controller manager's own kubeconfig trusts (upstream: the client config's
CAData). A cluster served over plain HTTP has none: nothing is published then.
"""
from __future__ import annotations

from pathlib import Path

from boxkube.client import ApiError, DeletedFinalStateUnknown, resource
from boxkube.client.config import ConfigError, pem_text
from boxkube.controllers.base import Controller, Obj

CONFIGMAPS = resource("configmaps")
ROOT_CA_CONFIGMAP = "kube-root-ca.crt"
DESCRIPTION_ANNOTATION = "kubernetes.io/description"
DESCRIPTION = ("Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints "
               "such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across "
               "distributions of Kubernetes clusters.")


class RootCACertPublisher(Controller):
    name = "root-ca-cert-publisher"

    def setup(self) -> None:
        self.root_ca = self._root_ca()
        if not self.root_ca:
            self.log.warning("no cluster CA (no --root-ca-file, and the kubeconfig trusts none): "
                             "no %s ConfigMap is published", ROOT_CA_CONFIGMAP)
        scope = self.informers.namespace
        self.namespaces = self.informers.informer("namespaces",
                                                  field_selector=f"metadata.name={scope}" if scope else "")
        self.namespaces.add_event_handler(on_add=self.enqueue, on_update=self._namespace_updated)
        # Only the published ConfigMaps are of interest: the cache holds one per namespace, not all of them.
        self.configmaps = self.informers.informer("configmaps", field_selector=f"metadata.name={ROOT_CA_CONFIGMAP}")
        self.configmaps.add_event_handler(on_update=lambda old, new: self._configmap_changed(new),
                                          on_delete=self._configmap_changed)

    def _root_ca(self) -> str:
        if self.settings.root_ca_file:
            # Unreadable is fatal, as upstream's "error parsing root-ca-file".
            return Path(self.settings.root_ca_file).read_text()
        config = getattr(self.client, "config", None)
        try:
            if config is not None and config.ca_data:
                return pem_text(config.ca_data)
            if config is not None and config.ca_file:
                return Path(config.ca_file).read_text()
        except (ConfigError, OSError) as e:
            self.log.warning("cannot read the kubeconfig's CA: %s", e)
        return ""

    def _namespace_updated(self, old: Obj, new: Obj) -> None:
        if (new.get("status") or {}).get("phase") == "Active":
            self.enqueue(new)

    def _configmap_changed(self, cm: Obj | DeletedFinalStateUnknown) -> None:
        cm = cm.obj if isinstance(cm, DeletedFinalStateUnknown) else cm
        meta = cm.get("metadata") or {}
        if meta.get("name") == ROOT_CA_CONFIGMAP and meta.get("namespace"):
            self.queue.add(meta["namespace"])

    async def reconcile(self, key: str) -> None:
        if not self.root_ca:
            return
        namespace = self.namespaces.store.get(key)
        if namespace is None or (namespace.get("status") or {}).get("phase") not in (None, "Active"):
            return
        data = {"ca.crt": self.root_ca}
        cm = self.configmaps.store.get(f"{key}/{ROOT_CA_CONFIGMAP}")
        if cm is None:
            try:
                await self.client.create(CONFIGMAPS, {
                    "metadata": {"name": ROOT_CA_CONFIGMAP, "annotations": {DESCRIPTION_ANNOTATION: DESCRIPTION}},
                    "data": data}, key)
            except ApiError as e:
                # The namespace is gone or terminating: not retried (upstream).
                terminating = any(c.get("reason") == "NamespaceTerminating" for c in e.details.get("causes") or [])
                if e.is_not_found or terminating:
                    return
                raise
            self.log.info("created ConfigMap %s/%s", key, ROOT_CA_CONFIGMAP)
            return
        meta = cm.get("metadata") or {}
        annotations = dict(meta.get("annotations") or {})
        if cm.get("data") == data and annotations.get(DESCRIPTION_ANNOTATION):
            return
        annotations[DESCRIPTION_ANNOTATION] = DESCRIPTION
        # An update with the cached resourceVersion: a Conflict (someone wrote meanwhile) is retried.
        fixed = {**cm, "metadata": {**meta, "annotations": annotations}, "data": data}
        await self.client.replace(CONFIGMAPS, fixed)
        self.log.info("updated ConfigMap %s/%s", key, ROOT_CA_CONFIGMAP)
