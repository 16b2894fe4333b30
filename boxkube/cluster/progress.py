"""Progress output for people, like kind's: one line per step, on stderr.

On a terminal a step shows as `` • Starting etcd ...`` while it runs and is
rewritten as `` ✓ Starting etcd`` (or `` ✗``) when it ends; elsewhere only
the final line is printed.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TextIO


def _can_encode(stream: TextIO, text: str) -> bool:
    try:
        text.encode(getattr(stream, "encoding", None) or "utf-8")
    except (UnicodeEncodeError, LookupError):
        return False
    return True


class Progress:
    """Prints steps and messages to `stream` (stderr by default)."""

    def __init__(self, stream: TextIO | None = None, tty: bool | None = None) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.tty = bool(self.stream.isatty()) if tty is None else tty
        fancy = _can_encode(self.stream, "✓✗•≤")
        self.ok, self.failed, self.running = ("✓", "✗", "•") if fancy else ("OK", "FAIL", "..")

    def info(self, message: str) -> None:
        print(message, file=self.stream, flush=True)

    @contextmanager
    def step(self, title: str) -> Iterator[None]:
        """Show `title` as a running step, then as done or failed."""
        if self.tty:
            self.stream.write(f" {self.running} {title} ...")
            self.stream.flush()
        try:
            yield
        except BaseException:
            self._end(self.failed, title)
            raise
        self._end(self.ok, title)

    def done(self, title: str) -> None:
        """Show a step that has already happened."""
        self._end(self.ok, title)

    def _end(self, mark: str, title: str) -> None:
        prefix = "\r\x1b[K" if self.tty else ""
        self.stream.write(f"{prefix} {mark} {title}\n")
        self.stream.flush()


class SilentProgress(Progress):
    """Progress that prints nothing (for clean-up after a failure, and for library use)."""

    def __init__(self) -> None:
        super().__init__(stream=sys.stderr, tty=False)

    def info(self, message: str) -> None:
        pass

    def _end(self, mark: str, title: str) -> None:
        pass
