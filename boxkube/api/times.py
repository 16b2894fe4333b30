"""Kubernetes timestamps: RFC 3339 in UTC with second precision, as metav1.Time serialises."""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any


def now_rfc3339(at: datetime | None = None) -> str:
    return (at or datetime.now(timezone.utc)).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(value: Any) -> datetime | None:
    """An aware datetime from a timestamp field, None when unset or unreadable."""
    if not value or not isinstance(value, str):
        return None
    try:
        t = datetime.fromisoformat(value)
    except ValueError:
        return None
    return t if t.tzinfo else t.replace(tzinfo=timezone.utc)
