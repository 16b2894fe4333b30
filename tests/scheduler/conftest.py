"""Fixtures for the scheduler tests that run against the session cluster (see live_helpers);
`client` comes from tests/conftest.py."""
from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator

import pytest

from live_helpers import NAMESPACES, Pool


@pytest.fixture
async def pool(client) -> AsyncIterator[Pool]:
    namespace = f"s-{uuid.uuid4().hex[:8]}"
    await client.create(NAMESPACES, {"metadata": {"name": namespace}})
    p = Pool(client, namespace)
    yield p
    await p.cleanup()
    with contextlib.suppress(Exception):
        await client.delete(NAMESPACES, namespace)
