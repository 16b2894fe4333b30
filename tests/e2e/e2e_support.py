"""What the end-to-end tests share."""
from __future__ import annotations

import time


def until(check, timeout: float = 30.0, what: str = "condition"):
    """Poll `check()` until it returns something truthy; fail naming `what` and the last value."""
    deadline, last = time.monotonic() + timeout, None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.2)
    raise AssertionError(f"{what} not reached within {timeout} s (last: {last!r})")
