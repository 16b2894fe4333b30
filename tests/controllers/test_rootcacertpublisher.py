"""The root CA publisher (kube-root-ca.crt in every namespace) live on the real API server."""
from __future__ import annotations

from boxkube.client import resource
from boxkube.client.config import pem_text
from boxkube.controllers.base import Settings
from boxkube.controllers.rootcacertpublisher import (
    DESCRIPTION,
    DESCRIPTION_ANNOTATION,
    ROOT_CA_CONFIGMAP,
    RootCACertPublisher,
)

from controller_harness import assert_nothing_made_in_a_terminating_namespace, eventually, get_or_none, running

CONFIGMAPS = resource("configmaps")

OTHER_CA = "-----BEGIN CERTIFICATE-----\nnot really a certificate\n-----END CERTIFICATE-----\n"


async def root_ca(client, ns):
    return await get_or_none(client, CONFIGMAPS, ROOT_CA_CONFIGMAP, ns)


async def test_published_with_the_kubeconfigs_ca_and_kept_so(client, ns):
    """No --root-ca-file: the CA the controller manager's kubeconfig trusts (upstream: the client's CAData)."""
    ca = pem_text(client.config.ca_data)
    assert "BEGIN CERTIFICATE" in ca
    async with running(client, RootCACertPublisher, namespace=ns):
        first = await eventually(lambda: root_ca(client, ns))
        assert first["data"] == {"ca.crt": ca}
        assert first["metadata"]["annotations"] == {DESCRIPTION_ANNOTATION: DESCRIPTION}

        # Deleted: made again.
        await client.delete(CONFIGMAPS, ROOT_CA_CONFIGMAP, ns)

        async def remade():
            cm = await root_ca(client, ns)
            return cm if cm and cm["metadata"]["uid"] != first["metadata"]["uid"] else None
        second = await eventually(remade)
        assert second["data"] == {"ca.crt": ca}

        # Changed: the data and the description come back; the user's label and annotation stay.
        await client.patch(CONFIGMAPS, ROOT_CA_CONFIGMAP, {
            "metadata": {"labels": {"mine": "yes"}, "annotations": {DESCRIPTION_ANNOTATION: None, "note": "x"}},
            "data": {"ca.crt": "tampered", "extra": "1"}}, ns)

        async def fixed():
            cm = await root_ca(client, ns)
            return cm if cm["data"] == {"ca.crt": ca} and cm["metadata"]["annotations"].get(DESCRIPTION_ANNOTATION) \
                else None
        cm = await eventually(fixed)
        assert cm["metadata"]["uid"] == second["metadata"]["uid"]
        assert cm["metadata"]["labels"] == {"mine": "yes"}
        assert cm["metadata"]["annotations"] == {DESCRIPTION_ANNOTATION: DESCRIPTION, "note": "x"}


async def test_root_ca_file_wins(client, ns, tmp_path):
    ca_file = tmp_path / "ca.crt"
    ca_file.write_text(OTHER_CA)
    async with running(client, RootCACertPublisher, namespace=ns, settings=Settings(root_ca_file=str(ca_file))):
        cm = await eventually(lambda: root_ca(client, ns))
        assert cm["data"] == {"ca.crt": OTHER_CA}


async def test_terminating_namespaces_get_none(client):
    await assert_nothing_made_in_a_terminating_namespace(client, RootCACertPublisher, lambda ns: root_ca(client, ns))
