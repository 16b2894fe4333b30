"""The bearer token of a cluster and the API server's token file."""

from __future__ import annotations

import secrets
from pathlib import Path

from boxkube.cluster.files import write_text_atomic


def generate_token() -> str:
    """A random token: 32 bytes from the OS's secure source, URL-safe base64 (43 characters)."""
    return secrets.token_urlsafe(32)


def write_token_file(path: Path, token: str) -> None:
    """Write the API server's --token-file: the token alone on one line, readable by its owner only."""
    write_text_atomic(path, token + "\n", mode=0o600)
