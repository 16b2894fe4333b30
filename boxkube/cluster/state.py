"""Where boxkube keeps its clusters, and what it remembers about each.

Every cluster has one folder, ``$BOXKUBE_HOME/clusters/NAME/`` (default
``~/.boxkube``), whatever its provider:

    cluster.json   the ClusterState below
    kubeconfig     a kubeconfig for this cluster alone
    token          the API server's --token-file (the bearer token)
    pki/           with TLS: ca.crt, apiserver.crt, apiserver.key
    logs/          one log per process (etcd.log, apiserver.log, ...)
    data/          data of the processes (data/etcd/)
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from boxkube.cluster.errors import ClusterError, ClusterExistsError, ClusterNotFoundError
from boxkube.cluster.files import write_text_atomic
from boxkube.cluster.names import validate_cluster_name
from boxkube.cluster.process import ProcessRecord

log = logging.getLogger(__name__)

STATE_FILE = "cluster.json"


def boxkube_home(environ: Mapping[str, str]) -> Path:
    """`$BOXKUBE_HOME`, else ``~/.boxkube``."""
    configured = environ.get("BOXKUBE_HOME")
    if configured:
        return Path(configured).expanduser().absolute()
    home = environ.get("HOME")
    return (Path(home) if home else Path.home()) / ".boxkube"


@dataclass
class ClusterState:
    """What boxkube remembers about one cluster (saved as cluster.json)."""

    name: str
    provider: str
    nodes: int = 0
    # Nodes of the `nodes` made at creation that `boxkube node remove` took out since.
    removed_nodes: list[str] = field(default_factory=list)
    created: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))
    server: str | None = None
    token: str | None = None
    # The CA certificate (PEM file) of an https server.
    certificate_authority: str | None = None
    ports: dict[str, int] = field(default_factory=dict)
    # In start order; stopped in reverse order.
    processes: dict[str, ProcessRecord] = field(default_factory=dict)
    # Kubeconfig files this cluster's entries were merged into.
    kubeconfig_exports: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "provider": self.provider,
            "nodes": self.nodes,
            "removedNodes": list(self.removed_nodes),
            "created": self.created,
            "server": self.server,
            "token": self.token,
            "certificateAuthority": self.certificate_authority,
            "ports": dict(self.ports),
            "processes": [p.to_dict() for p in self.processes.values()],
            "kubeconfigExports": list(self.kubeconfig_exports),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "ClusterState":
        processes = [ProcessRecord.from_dict(p) for p in data.get("processes") or []]
        return cls(
            name=str(data["name"]),
            provider=str(data["provider"]),
            nodes=int(data.get("nodes") or 0),
            removed_nodes=[str(n) for n in data.get("removedNodes") or []],
            created=str(data.get("created") or ""),
            server=data.get("server"),
            token=data.get("token"),
            certificate_authority=data.get("certificateAuthority"),
            ports={str(k): int(v) for k, v in (data.get("ports") or {}).items()},
            processes={p.name: p for p in processes},
            kubeconfig_exports=[str(p) for p in data.get("kubeconfigExports") or []],
        )


@dataclass(frozen=True)
class ClusterDir:
    """The folder of one cluster and the files in it."""

    root: Path

    @property
    def name(self) -> str:
        return self.root.name

    @property
    def state_file(self) -> Path:
        return self.root / STATE_FILE

    @property
    def kubeconfig_file(self) -> Path:
        return self.root / "kubeconfig"

    @property
    def token_file(self) -> Path:
        return self.root / "token"

    @property
    def pki_dir(self) -> Path:
        return self.root / "pki"

    @property
    def logs_dir(self) -> Path:
        return self.root / "logs"

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    def log_file(self, process: str) -> Path:
        return self.logs_dir / f"{process}.log"

    def exists(self) -> bool:
        return self.root.is_dir()

    def claim(self, state: ClusterState) -> None:
        """Create the folder and save `state`; ClusterExistsError if the folder exists.

        Creating the folder is atomic, so of two commands creating the same
        cluster at once exactly one succeeds.
        """
        self.root.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.root.mkdir(mode=0o700)
        except FileExistsError:
            raise ClusterExistsError(
                f'a cluster named "{self.name}" already exists '
                f"(delete it with: boxkube delete cluster --name {self.name})"
            ) from None
        self.save(state)

    def load(self) -> ClusterState:
        """The saved state; ClusterNotFoundError if there is no such cluster."""
        try:
            text = self.state_file.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ClusterNotFoundError(
                f'no cluster named "{self.name}" (see: boxkube get clusters)'
            ) from None
        try:
            return ClusterState.from_dict(json.loads(text))
        except (ValueError, KeyError, TypeError) as e:
            raise ClusterError(f"the state file {self.state_file} is damaged: {e}") from None

    def save(self, state: ClusterState) -> None:
        write_text_atomic(self.state_file, json.dumps(state.to_dict(), indent=2) + "\n", mode=0o600)

    def remove(self) -> None:
        """Remove the folder and all in it (gone already is fine); ClusterError if it cannot be."""
        try:
            shutil.rmtree(self.root)
        except FileNotFoundError:
            pass
        except OSError as e:
            raise ClusterError(f"cannot remove {self.root}: {e.strerror or e}") from None


def clusters_root(home: Path) -> Path:
    return home / "clusters"


def cluster_dir(home: Path, name: str) -> ClusterDir:
    """The folder of cluster `name` (validated, so it never points outside `home`)."""
    return ClusterDir(clusters_root(home) / validate_cluster_name(name))


def cluster_dirs(home: Path) -> list[ClusterDir]:
    """Folders of all clusters, sorted by name."""
    root = clusters_root(home)
    try:
        entries = sorted(os.listdir(root))
    except FileNotFoundError:
        return []
    except OSError as e:
        raise ClusterError(f"cannot list {root}: {e}") from None
    return [ClusterDir(root / entry) for entry in entries if (root / entry).is_dir() and not entry.startswith(".")]


def cluster_names(home: Path, provider: str) -> list[str]:
    """Names of the clusters in `home` that `provider` made (a folder without readable state is skipped)."""
    names = []
    for cdir in cluster_dirs(home):
        try:
            if cdir.load().provider == provider:
                names.append(cdir.name)
        except ClusterError:
            log.debug("skipping %s: no readable state", cdir.root)
    return names
