"""Background processes of a cluster: start detached, check, stop.

A process is started through a short-lived launcher so that it is never a
child of the caller: the `boxkube` command exits right after creating a
cluster, and a test process that creates clusters must not collect zombies.
Each process leads its own session (and process group), so stopping it also
stops anything it started.

A started process is remembered as a `ProcessRecord` (pid plus the kernel's
start time of that pid), so a later `boxkube delete cluster` never signals an
unrelated process that happens to reuse the pid.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from boxkube.cluster.errors import ClusterError

log = logging.getLogger(__name__)

_PROC = Path("/proc")

# Runs in a separate interpreter: starts the real process in a new session
# with its output appended to the log file, prints its pid and exits, so the
# real process is re-parented to init and never becomes our zombie.
_LAUNCHER = """
import json, subprocess, sys
spec = json.loads(sys.argv[1])
with open(spec["log"], "ab") as out:
    proc = subprocess.Popen(
        spec["argv"], cwd=spec["cwd"], env=spec["env"], stdin=subprocess.DEVNULL,
        stdout=out, stderr=subprocess.STDOUT, start_new_session=True, close_fds=True,
    )
print(proc.pid)
"""


@dataclass
class ProcessRecord:
    """What is remembered about a started process."""

    name: str
    pid: int
    argv: list[str]
    log: str
    start_time: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "ProcessRecord":
        return cls(
            name=str(data["name"]),
            pid=int(data["pid"]),
            argv=[str(a) for a in data.get("argv", [])],
            log=str(data.get("log", "")),
            start_time=data.get("start_time"),
            extra=dict(data.get("extra") or {}),
        )


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on `host` that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _stat_fields(pid: int) -> list[str] | None:
    """Fields of /proc/PID/stat after the command name (state is [0]); None if unknown."""
    try:
        raw = (_PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    # The command name is in parentheses and may itself contain spaces or ')'.
    return raw[raw.rfind(")") + 2 :].split()


def process_start_time(pid: int) -> int | None:
    """The kernel's start time of `pid` (clock ticks since boot), None where /proc is missing."""
    fields = _stat_fields(pid)
    if fields is None or len(fields) < 20:
        return None
    return int(fields[19])


def _is_zombie(pid: int) -> bool:
    fields = _stat_fields(pid)
    return fields is not None and fields[0] in ("Z", "X")


def _reap(pid: int) -> None:
    """Collect `pid` if it happens to be our own exited child."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass
    except OSError as e:  # pragma: no cover - unexpected platform behaviour
        log.debug("waitpid(%d): %s", pid, e)


def pid_alive(pid: int) -> bool:
    """Whether `pid` is a running (not zombie) process."""
    _reap(pid)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return not _is_zombie(pid)


def is_running(record: ProcessRecord) -> bool:
    """Whether the process of `record` (not some later user of its pid) still runs."""
    if not pid_alive(record.pid):
        return False
    if record.start_time is not None:
        current = process_start_time(record.pid)
        if current is not None and current != record.start_time:
            return False
    return True


def _group_members(pgid: int) -> list[int] | None:
    """Live (non-zombie) pids of process group `pgid`; None where /proc is missing."""
    if not _PROC.is_dir():
        return None
    members = []
    for entry in _PROC.iterdir():
        if not entry.name.isdigit():
            continue
        fields = _stat_fields(int(entry.name))
        if fields is None or len(fields) < 3 or fields[0] in ("Z", "X"):
            continue
        if int(fields[2]) == pgid:
            members.append(int(entry.name))
    return members


def _group_alive(pgid: int) -> bool:
    _reap(pgid)
    members = _group_members(pgid)
    if members is not None:
        for pid in members:
            _reap(pid)
        return any(pid_alive(pid) for pid in members)
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _wait_group_gone(pgid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        if not _group_alive(pgid):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        pass


def stop_process(record: ProcessRecord, timeout: float = 10.0) -> bool:
    """Stop the process of `record` and its process group: SIGTERM, then SIGKILL after `timeout`.

    Returns True if something was running and was stopped, False if it was gone already.
    Raises ClusterError if it survives SIGKILL.
    """
    if not is_running(record):
        log.debug("%s (pid %d) is not running", record.name, record.pid)
        return False
    pgid = record.pid  # started with start_new_session: the pid leads its group
    log.debug("stopping %s (pid %d) with SIGTERM", record.name, record.pid)
    _signal_group(pgid, signal.SIGTERM)
    if _wait_group_gone(pgid, timeout):
        return True
    log.warning("%s (pid %d) did not stop within %.0fs; sending SIGKILL", record.name, record.pid, timeout)
    _signal_group(pgid, signal.SIGKILL)
    if _wait_group_gone(pgid, 5.0):
        return True
    raise ClusterError(f"could not stop {record.name} (pid {record.pid}), even with SIGKILL")


def start_detached(
    name: str,
    argv: Sequence[str],
    log_path: Path,
    *,
    cwd: Path,
    env: Mapping[str, str] | None = None,
) -> ProcessRecord:
    """Start `argv` in the background in its own session, output appended to `log_path`."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    if not Path(argv[0]).is_file() or not os.access(argv[0], os.X_OK):
        raise ClusterError(f"cannot start {name}: {argv[0]} is not an executable file")
    spec = {
        "argv": list(argv),
        "log": str(log_path),
        "cwd": str(cwd),
        "env": dict(os.environ if env is None else env),
    }
    log.debug("starting %s: %s (log %s)", name, " ".join(argv), log_path)
    launched = subprocess.run(
        [sys.executable, "-c", _LAUNCHER, json.dumps(spec)],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        check=False,
    )
    if launched.returncode != 0 or not launched.stdout.strip().isdigit():
        reason = (launched.stderr.strip().splitlines() or ["no output"])[-1]
        raise ClusterError(f"cannot start {name}: {reason}")
    pid = int(launched.stdout.strip())
    record = ProcessRecord(
        name=name, pid=pid, argv=list(argv), log=str(log_path), start_time=process_start_time(pid)
    )
    log.debug("%s started with pid %d", name, pid)
    return record
