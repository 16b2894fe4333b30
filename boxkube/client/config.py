"""Where the API server is and how to prove who we are: from arguments or from a kubeconfig.

Kubeconfig files are found and read as kubectl does (`--kubeconfig`, else every
file of `$KUBECONFIG`, else ``~/.kube/config``; see boxkube.cluster.kubeconfig).
With several files, the first to name a context, cluster or user wins, as does
the first `current-context`; relative file paths are relative to the file that
holds them.
"""
from __future__ import annotations

import base64
import binascii
import os
import ssl
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from boxkube.cluster.errors import ClusterError
from boxkube.cluster.kubeconfig import kubeconfig_paths, read_kubeconfig


class ConfigError(Exception):
    """A kubeconfig that cannot be used (missing, unreadable, or naming what it lacks)."""


def pem_text(data: str | bytes) -> str:
    """PEM text from PEM or from base64 of PEM (a kubeconfig's `*-data` fields)."""
    text = data.decode() if isinstance(data, bytes) else data
    if "-----BEGIN" in text:
        return text
    try:
        return base64.b64decode(text, validate=True).decode()
    except (binascii.Error, UnicodeDecodeError) as e:
        raise ConfigError(f"certificate data is neither PEM nor base64 of PEM: {e}") from None


@dataclass(frozen=True)
class ClientConfig:
    """An API server and credentials. PEM fields take PEM text or base64 of it (as in kubeconfigs)."""

    server: str
    token: str | None = None
    ca_data: str | bytes | None = None
    ca_file: str | None = None
    insecure_skip_tls_verify: bool = False
    tls_server_name: str | None = None
    client_cert_file: str | None = None
    client_key_file: str | None = None
    client_cert_data: str | bytes | None = None
    client_key_data: str | bytes | None = None
    username: str | None = None
    password: str | None = None

    @classmethod
    def from_kubeconfig(cls, path: str | os.PathLike[str] | None = None, context: str | None = None,
                        environ: Mapping[str, str] | None = None) -> "ClientConfig":
        """The server and user of `context` (default: the current context) of the kubeconfig kubectl would use."""
        environ = os.environ if environ is None else environ
        files = [p for p in kubeconfig_paths(path, environ) if p.is_file()]
        if not files:
            raise ConfigError(f"no kubeconfig found (looked at {', '.join(map(str, kubeconfig_paths(path, environ)))})")
        current = ""
        found: dict[str, dict[str, tuple[dict[str, Any], Path]]] = {"contexts": {}, "clusters": {}, "users": {}}
        for file in files:
            try:
                config = read_kubeconfig(file)
            except ClusterError as e:
                raise ConfigError(str(e)) from None
            current = current or config.get("current-context") or ""
            for section, entries in found.items():
                for entry in config.get(section) or []:
                    singular = section[:-1]
                    if isinstance(entry, dict) and entry.get("name") and entry["name"] not in entries:
                        entries[entry["name"]] = (entry.get(singular) or {}, file.parent)
        name = context or current
        if not name:
            raise ConfigError("the kubeconfig has no current-context; name a context")

        def entry(section: str, key: str) -> tuple[dict[str, Any], Path]:
            if key not in found[section]:
                raise ConfigError(f'{section[:-1]} "{key}" not found in the kubeconfig')
            return found[section][key]

        ctx, _ = entry("contexts", name)
        cluster, cluster_dir = entry("clusters", ctx.get("cluster", ""))
        user, user_dir = entry("users", ctx["user"]) if ctx.get("user") else ({}, Path.cwd())
        if not cluster.get("server"):
            raise ConfigError(f'cluster "{ctx.get("cluster")}" of context "{name}" has no server')

        def file_of(value: str | None, base: Path) -> str | None:
            return str((base / Path(value).expanduser())) if value else None

        token = user.get("token")
        if not token and user.get("tokenFile"):
            try:
                token = Path(file_of(user["tokenFile"], user_dir) or "").read_text().strip()
            except OSError as e:
                raise ConfigError(f"cannot read the token file {user['tokenFile']}: {e.strerror or e}") from None
        return cls(
            server=cluster["server"].rstrip("/"),
            token=token,
            ca_data=cluster.get("certificate-authority-data"),
            ca_file=file_of(cluster.get("certificate-authority"), cluster_dir),
            insecure_skip_tls_verify=bool(cluster.get("insecure-skip-tls-verify")),
            tls_server_name=cluster.get("tls-server-name"),
            client_cert_file=file_of(user.get("client-certificate"), user_dir),
            client_key_file=file_of(user.get("client-key"), user_dir),
            client_cert_data=user.get("client-certificate-data"),
            client_key_data=user.get("client-key-data"),
            username=user.get("username"),
            password=user.get("password"),
        )

    def ssl_context(self) -> ssl.SSLContext:
        """Trust the given CA (else the system's), and present the client certificate if any."""
        if self.ca_data:
            ctx = ssl.create_default_context(cadata=pem_text(self.ca_data))
        else:
            ctx = ssl.create_default_context(cafile=self.ca_file)
        if self.insecure_skip_tls_verify:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        if self.client_cert_file or self.client_cert_data:
            self._load_client_certificate(ctx)
        return ctx

    def _load_client_certificate(self, ctx: ssl.SSLContext) -> None:
        if self.client_cert_file:
            ctx.load_cert_chain(self.client_cert_file, self.client_key_file)
            return
        # ssl loads certificates from files only: write the PEM to a temporary folder (mode 0700).
        with tempfile.TemporaryDirectory(prefix="boxkube-client-") as folder:
            cert = Path(folder) / "client.crt"
            cert.write_text(pem_text(self.client_cert_data or ""))
            key = None
            if self.client_key_data:
                key = Path(folder) / "client.key"
                key.write_text(pem_text(self.client_key_data))
            ctx.load_cert_chain(str(cert), str(key) if key else self.client_key_file)
