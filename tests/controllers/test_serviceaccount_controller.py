"""The ServiceAccount controller live on the real API server."""
from __future__ import annotations

import uuid

from boxkube.client import resource
from boxkube.controllers.serviceaccount import ServiceAccountsController

from controller_harness import eventually, get_or_none, running

SERVICE_ACCOUNTS, NAMESPACES, CONFIGMAPS = resource("serviceaccounts"), resource("namespaces"), resource("configmaps")


async def default_account(client, ns):
    return await get_or_none(client, SERVICE_ACCOUNTS, "default", ns)


async def test_default_service_account_is_made_and_made_again(client, ns):
    async with running(client, ServiceAccountsController, namespace=ns):
        first = await eventually(lambda: default_account(client, ns))
        await client.delete(SERVICE_ACCOUNTS, "default", ns)

        async def remade():
            account = await default_account(client, ns)
            return account if account and account["metadata"]["uid"] != first["metadata"]["uid"] else None
        await eventually(remade)
        # Other accounts are the user's: deleting one changes nothing.
        await client.create(SERVICE_ACCOUNTS, {"metadata": {"name": "mine"}}, ns)
        await client.delete(SERVICE_ACCOUNTS, "mine", ns)


async def test_terminating_namespaces_get_none(client):
    name = f"sa-{uuid.uuid4().hex[:8]}"
    await client.create(NAMESPACES, {"metadata": {"name": name}})
    # A held object keeps the namespace Terminating while the test looks.
    await client.create(CONFIGMAPS, {"metadata": {"name": "hold", "finalizers": ["test.boxkube.dev/hold"]}}, name)
    try:
        async with running(client, ServiceAccountsController, namespace=name) as controller:
            await eventually(lambda: default_account(client, name))
            await client.delete(NAMESPACES, name)

            async def emptied():
                ns = controller.namespaces.store.get(name)
                return ns["status"]["phase"] == "Terminating" and await default_account(client, name) is None
            await eventually(emptied)
            await controller.reconcile(name)
            assert await default_account(client, name) is None
    finally:
        await client.patch(CONFIGMAPS, "hold", {"metadata": {"finalizers": None}}, name)
