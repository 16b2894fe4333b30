"""Waiting until a started process answers over HTTP."""

from __future__ import annotations

import json
import logging
import os
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path

from boxkube.cluster.errors import ClusterError
from boxkube.cluster.files import tail_lines
from boxkube.cluster.process import ProcessRecord, is_running

log = logging.getLogger(__name__)

LOG_TAIL_LINES = 20


def http_get(
    url: str,
    headers: Mapping[str, str] | None = None,
    timeout: float = 2.0,
    ca_file: str | os.PathLike[str] | None = None,
) -> tuple[int, str]:
    """GET `url` (https checked against `ca_file` if given); (status, body). OSError when nothing answers."""
    request = urllib.request.Request(url, headers=dict(headers or {}))
    context = ssl.create_default_context(cafile=str(ca_file)) if ca_file else None
    try:
        with urllib.request.urlopen(request, timeout=timeout, context=context) as response:
            return response.status, response.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode("utf-8", "replace")


def ready_node_names(status: int, body: str) -> set[str]:
    """The names of the Ready nodes in the answer to GET /api/v1/nodes (none unless it is a 200)."""
    if status != 200:
        return set()
    return {node["metadata"]["name"] for node in json.loads(body).get("items") or []
            if any(c.get("type") == "Ready" and c.get("status") == "True"
                   for c in (node.get("status") or {}).get("conditions") or [])}


def log_details(record: ProcessRecord, count: int = LOG_TAIL_LINES) -> list[str]:
    """Lines for an error message: where the log is and its last lines."""
    lines = tail_lines(Path(record.log), count)
    if not lines:
        return [f"(the log {record.log} is empty)"]
    return [f"last lines of {record.log}:", *(f"  {line}" for line in lines)]


def wait_until_ready(
    what: str,
    url: str,
    record: ProcessRecord,
    deadline: float,
    *,
    headers: Mapping[str, str] | None = None,
    ca_file: str | os.PathLike[str] | None = None,
    is_ready: Callable[[int, str], bool] = lambda status, _body: status == 200,
    interval: float = 0.1,
) -> None:
    """Poll `url` until `is_ready(status, body)`, the process exits, or `deadline` (monotonic) passes."""
    last = "no answer yet"
    while True:
        try:
            timeout = max(0.2, min(2.0, deadline - time.monotonic()))
            status, body = http_get(url, headers, timeout=timeout, ca_file=ca_file)
            if is_ready(status, body):
                log.debug("%s is ready (%s answered %d)", what, url, status)
                return
            last = f"{url} answered {status}: {body.strip()[:200]}"
        except (OSError, ValueError) as e:
            last = f"{url}: {getattr(e, 'reason', e)}"
        if not is_running(record):
            raise ClusterError(f"{what} exited before it was ready ({last})", log_details(record))
        if time.monotonic() >= deadline:
            raise ClusterError(f"{what} was not ready in time ({last})", log_details(record))
        time.sleep(interval)
