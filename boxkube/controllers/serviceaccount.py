"""The ServiceAccount controller: a `default` ServiceAccount in every active namespace (pkg/controller/serviceaccount).

A namespace is looked at when it appears or changes, and again when one of
its managed ServiceAccounts is deleted, which is then made again. Terminating
namespaces are left alone. A manager scoped to one namespace
(`InformerFactory(namespace=...)`) looks after that namespace only.
"""
from __future__ import annotations

from typing import ClassVar

from boxkube.client import ApiError, DeletedFinalStateUnknown, resource
from boxkube.controllers.base import Controller, Obj

SERVICE_ACCOUNTS = resource("serviceaccounts")


class ServiceAccountsController(Controller):
    name = "serviceaccount"
    accounts: ClassVar[tuple[str, ...]] = ("default",)

    def setup(self) -> None:
        scope = self.informers.namespace
        self.namespaces = self.watch("namespaces", field_selector=f"metadata.name={scope}" if scope else "")
        self.service_accounts = self.informers.informer("serviceaccounts")
        self.service_accounts.add_event_handler(on_delete=self._deleted)

    def _deleted(self, account: Obj | DeletedFinalStateUnknown) -> None:
        account = account.obj if isinstance(account, DeletedFinalStateUnknown) else account
        meta = account.get("metadata") or {}
        if meta.get("name") in self.accounts and meta.get("namespace"):
            self.queue.add(meta["namespace"])

    async def reconcile(self, key: str) -> None:
        namespace = self.namespaces.store.get(key)
        if namespace is None or (namespace.get("status") or {}).get("phase") != "Active":
            return
        failures = []
        for name in self.accounts:
            if self.service_accounts.store.get(f"{key}/{name}") is not None:
                continue
            try:
                await self.client.create(SERVICE_ACCOUNTS, {"metadata": {"name": name}}, key)
            except ApiError as e:
                # Made meanwhile, or the namespace began terminating: nothing left to do.
                terminating = any(c.get("reason") == "NamespaceTerminating" for c in e.details.get("causes") or [])
                if not e.is_already_exists and not terminating:
                    failures.append(f"{name}: {e}")
            else:
                self.log.info("created ServiceAccount %s/%s", key, name)
        if failures:
            raise RuntimeError(f"namespace {key}: " + "; ".join(failures))
