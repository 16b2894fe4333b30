"""Expectations: what a controller has asked for and not yet seen in its informer (client-go's
ControllerExpectations and UIDTrackingControllerExpectations, pkg/controller/controller_utils.go).

A controller that creates 3 pods reads the world from a cache that lags behind
the API server. Until the cache shows those 3 pods, a second reconcile would
count too few and create 3 more. So before writing, the controller records what
it expects (`expect_creations(key, 3)`); its informer handlers lower the count
as the pods show up (`creation_observed(key)`), and `satisfied(key)` tells the
reconcile whether the cache can be trusted to act on again. Deletions are
tracked by pod key, so a pod seen both as "deletionTimestamp set" and as
"deleted" counts once.

Expectations that are never met (a watch event lost for good) expire after
five minutes, so a controller can never sleep forever. Everything runs on one
event loop: no locks.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

# upstream's ExpectationsTimeout: how long a controller waits for events it expects before acting anyway
EXPECTATIONS_TIMEOUT = 300.0


@dataclass
class _Expected:
    adds: int
    deletes: set[str] = field(default_factory=set)
    since: float = 0.0

    @property
    def fulfilled(self) -> bool:
        return self.adds <= 0 and not self.deletes


class Expectations:
    """Pending creations (a count) and deletions (pod keys) per controller key (`namespace/name`)."""

    def __init__(self, timeout: float = EXPECTATIONS_TIMEOUT, clock: Callable[[], float] = time.monotonic):
        self.timeout, self._clock = timeout, clock
        self._by_key: dict[str, _Expected] = {}

    def satisfied(self, key: str) -> bool:
        """Whether the cache can be acted on: nothing pending, never set, or waited for too long."""
        expected = self._by_key.get(key)
        if expected is None or expected.fulfilled:
            return True
        if self._clock() - expected.since > self.timeout:
            log.info("expectations of %s expired (still waiting for %d creations, %d deletions)",
                     key, max(expected.adds, 0), len(expected.deletes))
            return True
        return False

    def expect(self, key: str, creations: int = 0, deletions: Iterable[str] = ()) -> None:
        """Forget what was expected before; wait for `creations` new objects and for each of the
        `deletions` keys to go (upstream's SetExpectations: a sync may do both)."""
        self._by_key[key] = _Expected(creations, set(deletions), self._clock())

    def expect_creations(self, key: str, count: int) -> None:
        self.expect(key, creations=count)

    def expect_deletions(self, key: str, object_keys: Iterable[str]) -> None:
        self.expect(key, deletions=object_keys)

    def creation_observed(self, key: str) -> None:
        """One expected object showed up (or will not: its create failed or was skipped)."""
        expected = self._by_key.get(key)
        if expected is not None:
            expected.adds -= 1

    def deletion_observed(self, key: str, object_key: str) -> None:
        """`object_key` is gone or going; counted once however often it is reported."""
        expected = self._by_key.get(key)
        if expected is not None:
            expected.deletes.discard(object_key)

    def pending(self, key: str) -> tuple[int, int]:
        """(creations, deletions) still expected for `key`."""
        expected = self._by_key.get(key)
        return (max(expected.adds, 0), len(expected.deletes)) if expected else (0, 0)

    def delete(self, key: str) -> None:
        """The controller object is gone: a new one of the same name starts clean."""
        self._by_key.pop(key, None)
