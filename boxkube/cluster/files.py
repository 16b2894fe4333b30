"""Small file helpers shared by the state, token and kubeconfig modules."""

from __future__ import annotations

import os
import tempfile
from collections import deque
from pathlib import Path


def write_text_atomic(path: Path, text: str, mode: int = 0o600) -> None:
    """Write `text` to `path` so that readers see the old or the new file, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def tail_lines(path: Path, count: int = 20) -> list[str]:
    """The last `count` lines of a text file; empty if it cannot be read."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return [line.rstrip("\n") for line in deque(f, maxlen=count)]
    except OSError:
        return []
