"""The ServiceAccount controller live on the real API server."""
from __future__ import annotations

from boxkube.client import resource
from boxkube.controllers.serviceaccount import ServiceAccountsController

from controller_harness import assert_nothing_made_in_a_terminating_namespace, eventually, get_or_none, running

SERVICE_ACCOUNTS = resource("serviceaccounts")


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
    await assert_nothing_made_in_a_terminating_namespace(client, ServiceAccountsController, lambda ns: default_account(client, ns))
