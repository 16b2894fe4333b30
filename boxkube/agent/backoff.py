"""Container restart back-off, as the kubelet's (client-go flowcontrol.Backoff keyed per container).

The first restart of a container that exited is immediate; each exit within
the current window doubles the window (10 s, 20 s, 40 s ... up to 300 s) and
the container waits in CrashLoopBackOff until it is over. A container that has
not needed a restart for twice the maximum (10 minutes upstream) starts again
from the initial delay.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass


@dataclass
class _Entry:
    backoff: float
    last_update: float


class Backoff:
    def __init__(self, initial: float = 10.0, maximum: float = 300.0, clock: Callable[[], float] = time.time):
        self.initial, self.maximum, self.clock = initial, maximum, clock
        self._entries: dict[Hashable, _Entry] = {}

    def get(self, key: Hashable) -> float:
        entry = self._entries.get(key)
        return entry.backoff if entry else 0.0

    def _expired(self, entry: _Entry, at: float) -> bool:
        return at - entry.last_update > 2 * self.maximum

    def in_backoff_since(self, key: Hashable, event_time: float) -> bool:
        """Whether a container that exited at `event_time` must still wait before it is restarted."""
        entry = self._entries.get(key)
        if entry is None or self._expired(entry, self.clock()):
            return False
        return self.clock() - event_time < entry.backoff

    def last_update(self, key: Hashable) -> float:
        """When the back-off of `key` last grew (0 when it has none)."""
        entry = self._entries.get(key)
        return entry.last_update if entry else 0.0

    def until(self, key: Hashable, event_time: float) -> float:
        """When the wait of a container that exited at `event_time` is over (epoch seconds)."""
        return event_time + self.get(key)

    def next(self, key: Hashable, event_time: float) -> None:
        """Record a restart of the container that exited at `event_time`: the next window doubles."""
        entry = self._entries.get(key)
        if entry is None or self._expired(entry, event_time):
            self._entries[key] = _Entry(self.initial, event_time)
        else:
            entry.backoff, entry.last_update = min(entry.backoff * 2, self.maximum), event_time

    def forget(self, key: Hashable) -> None:
        self._entries.pop(key, None)


def go_duration(seconds: float) -> str:
    """Go's time.Duration String(): 10s, 1m20s, 5m0s, 500ms — the CrashLoopBackOff message shows it."""
    if seconds <= 0:
        return "0s"
    if seconds < 1:
        ms = seconds * 1000
        return f"{ms:g}ms" if ms >= 1 else f"{seconds * 1e6:g}µs"
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    text = f"{secs:.9f}".rstrip("0").rstrip(".") + "s"
    if hours:
        return f"{int(hours)}h{int(minutes)}m{text}"
    if minutes:
        return f"{int(minutes)}m{text}"
    return text
