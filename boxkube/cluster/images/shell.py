"""Running a host program for an image build: its output goes to the debug log, and
its last lines into the error when it fails."""

from __future__ import annotations

import logging
import subprocess
from collections import deque
from collections.abc import Mapping, Sequence
from pathlib import Path

from boxkube.cluster.errors import ClusterError

log = logging.getLogger(__name__)

TAIL_LINES = 20


def run_logged(
    argv: Sequence[str], what: str, *, cwd: Path | None = None, env: Mapping[str, str] | None = None
) -> None:
    """Run `argv` to completion; ClusterError naming `what`, with the end of its output, if it fails."""
    log.debug("running: %s", " ".join(argv))
    tail: deque[str] = deque(maxlen=TAIL_LINES)
    try:
        proc = subprocess.Popen(
            list(argv), cwd=cwd, env=None if env is None else dict(env), stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace",
        )
    except OSError as e:
        raise ClusterError(f"{what} could not be started: {e}") from e
    assert proc.stdout is not None
    with proc:
        for line in proc.stdout:
            line = line.rstrip("\n")
            log.debug("%s: %s", what, line)
            tail.append(line)
    if proc.returncode != 0:
        raise ClusterError(f"{what} failed (exit code {proc.returncode})", details=list(tail))
