"""Providers: the ways boxkube brings a cluster up (see base.Provider)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

from boxkube.cluster.errors import ClusterError, NotSupportedError
from boxkube.cluster.providers.base import Provider
from boxkube.cluster.providers.docker import DockerProvider
from boxkube.cluster.providers.local import LocalProvider

PROVIDER_NAMES = ("docker", "local")
DEFAULT_PROVIDER = "docker"

ProviderFactory = Callable[[str], Provider]


def get_provider(name: str, home: Path, environ: Mapping[str, str]) -> Provider:
    """The provider called `name`; NotSupportedError for one that does not exist yet."""
    if name == "local":
        return LocalProvider(home, environ)
    if name == "docker":
        return DockerProvider(home, environ)
    raise ClusterError(f"unknown provider {name!r} (known: {', '.join(PROVIDER_NAMES)})")


def provider_factory(home: Path, environ: Mapping[str, str]) -> ProviderFactory:
    return lambda name: get_provider(name, home, environ)


def available_providers(factory: ProviderFactory) -> list[Provider]:
    """The providers that exist now (those not supported yet are left out)."""
    providers = []
    for name in PROVIDER_NAMES:
        try:
            providers.append(factory(name))
        except NotSupportedError:
            continue
    return providers


__all__ = [
    "DEFAULT_PROVIDER",
    "DockerProvider",
    "LocalProvider",
    "PROVIDER_NAMES",
    "Provider",
    "ProviderFactory",
    "available_providers",
    "get_provider",
    "provider_factory",
]
