"""Leader election on a coordination.k8s.io/v1 Lease, as client-go's tools/leaderelection does it.

Several copies of a component run; the one holding the Lease does the work,
the others wait to take over:

    elector = LeaderElector(client, LeaderElectionConfig("kube-system", "kube-scheduler", identity))
    await elector.run(on_started_leading=scheduler.run)

- A candidate tries every `retry_period` (with jitter) to take the Lease: it
  succeeds when the Lease does not exist, names nobody (released), or has not
  changed for `lease_duration` by this copy's own clock. Expiry is judged from
  when this copy last saw the record change, never from the timestamps in it,
  so clocks of different machines need not agree.
- The leader renews every `retry_period`; if no renewal succeeds for
  `renew_deadline`, leadership is lost. The deadline is shorter than the lease
  duration so a leader stops working before anyone else may start.
- Every write carries the resourceVersion of the read before it: of two
  candidates racing for an expired Lease, one gets 409 Conflict and loses.
- On a clean shutdown (run() cancelled) the leader releases the Lease (empty
  holderIdentity) so another copy takes over at its next try, not after
  the lease duration.
"""
from __future__ import annotations

import asyncio
import logging
import random
import socket
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from typing import Any


from boxkube.client.api import ApiClient
from boxkube.client.errors import ApiError, TransportError
from boxkube.client.resources import resource

log = logging.getLogger(__name__)

LEASES = resource("leases")

# client-go's defaults (and kube-scheduler's --leader-elect-* flags)
DEFAULT_LEASE_DURATION = 15.0
DEFAULT_RENEW_DEADLINE = 10.0
DEFAULT_RETRY_PERIOD = 2.0
# wait.JitterUntil's factor: a candidate waits retry_period x [1, 2.2) between tries
JITTER_FACTOR = 1.2


def default_identity() -> str:
    """hostname_uuid, as kube-scheduler and kube-controller-manager name themselves."""
    return f"{socket.gethostname()}_{uuid.uuid4()}"


def micro_time(at: datetime | None = None) -> str:
    """metav1.MicroTime's JSON form (RFC 3339 with microseconds), as Lease timestamps are written."""
    return (at or datetime.now(timezone.utc)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True)
class LeaderElectionConfig:
    namespace: str
    name: str
    identity: str
    lease_duration: float = DEFAULT_LEASE_DURATION
    renew_deadline: float = DEFAULT_RENEW_DEADLINE
    retry_period: float = DEFAULT_RETRY_PERIOD
    release_on_cancel: bool = True

    def __post_init__(self) -> None:
        # NewLeaderElector's checks: a leader must give up before a rival may consider the lease expired
        if not self.identity:
            raise ValueError("leader election requires an identity")
        if self.lease_duration <= self.renew_deadline:
            raise ValueError("lease duration must be greater than the renew deadline")
        if self.renew_deadline <= JITTER_FACTOR * self.retry_period:
            raise ValueError(f"renew deadline must be greater than retry period x {JITTER_FACTOR}")
        if self.retry_period < 0 or self.lease_duration < 1:
            raise ValueError("retry period must be positive and lease duration at least 1 s")


@dataclass(frozen=True)
class LeaderElectionRecord:
    """The Lease spec fields leader election uses (resourcelock.LeaderElectionRecord)."""

    holder_identity: str = ""
    lease_duration_seconds: int = 0
    acquire_time: str | None = None
    renew_time: str | None = None
    lease_transitions: int = 0

    @classmethod
    def from_spec(cls, spec: dict[str, Any] | None) -> "LeaderElectionRecord":
        spec = spec or {}
        return cls(spec.get("holderIdentity") or "", int(spec.get("leaseDurationSeconds") or 0),
                   spec.get("acquireTime"), spec.get("renewTime"), int(spec.get("leaseTransitions") or 0))

    def to_spec(self) -> dict[str, Any]:
        spec: dict[str, Any] = {"holderIdentity": self.holder_identity,
                                "leaseDurationSeconds": self.lease_duration_seconds,
                                "leaseTransitions": self.lease_transitions}
        if self.acquire_time:
            spec["acquireTime"] = self.acquire_time
        if self.renew_time:
            spec["renewTime"] = self.renew_time
        return spec


class LeaderElector:
    """One candidate for one Lease. `run()` campaigns, leads, and hands over; see the module doc."""

    def __init__(self, client: ApiClient, config: LeaderElectionConfig, *,
                 clock: Callable[[], float] = time.monotonic):
        self.client, self.config = client, config
        self._clock = clock
        self._observed = LeaderElectionRecord()
        self._observed_time = 0.0
        self._lease: dict[str, Any] | None = None   # the last Lease read or written, for its resourceVersion

    @property
    def identity(self) -> str:
        return self.config.identity

    @property
    def leader(self) -> str:
        """The holder this copy last saw ("" when none)."""
        return self._observed.holder_identity

    @property
    def is_leader(self) -> bool:
        return self._observed.holder_identity == self.config.identity

    async def run(self, on_started_leading: Callable[[], Awaitable[Any]],
                  on_stopped_leading: Callable[[], Any] | None = None) -> None:
        """Campaign until this copy holds the Lease, then run `on_started_leading()` as a task while renewing.

        Returns when leadership is lost (the task is cancelled first) or when the
        task ends by itself (the Lease is released; its exception, if any, is
        raised). Cancelling run() cancels the task, waits for it, releases the
        Lease, and re-raises CancelledError. As in client-go,
        `on_stopped_leading()` is called whenever run() ends, led or not.
        """
        leading: asyncio.Task | None = None
        try:
            await self._acquire()
            log.info("%s: acquired lease %s/%s", self.identity, self.config.namespace, self.config.name)
            leading = asyncio.create_task(on_started_leading(), name=f"leading {self.config.name}")
            if await self._renew_while(leading):
                await self._release()
                leading.result()   # the work ended by itself: its error is the caller's
            else:
                log.info("%s: failed to renew lease %s/%s: leadership lost", self.identity,
                         self.config.namespace, self.config.name)
        except asyncio.CancelledError:
            if leading is not None:
                await _cancel(leading)
            if self.config.release_on_cancel:
                await self._release()
            raise
        finally:
            if leading is not None and not leading.done():
                await _cancel(leading)
            if on_stopped_leading is not None:
                on_stopped_leading()

    # -- the loops ----------------------------------------------------------

    async def _acquire(self) -> None:
        log.info("%s: attempting to acquire leader lease %s/%s", self.identity, self.config.namespace,
                 self.config.name)
        while not await self.try_acquire_or_renew():
            await asyncio.sleep(self.config.retry_period * (1 + random.random() * JITTER_FACTOR))

    async def _renew_while(self, leading: asyncio.Task) -> bool:
        """Renew every retry period until a renewal misses the deadline (False) or `leading` ends (True)."""
        while True:
            done, _ = await asyncio.wait({leading}, timeout=self.config.retry_period)
            if done:
                return True
            try:
                async with asyncio.timeout(self.config.renew_deadline):
                    while not await self.try_acquire_or_renew():
                        await asyncio.sleep(self.config.retry_period)
            except TimeoutError:
                return False

    async def try_acquire_or_renew(self) -> bool:
        """One attempt to take or renew the Lease; whether this copy holds it now."""
        stamp = micro_time()
        desired = LeaderElectionRecord(self.identity, int(self.config.lease_duration), stamp, stamp)
        try:
            lease = await self.client.get(LEASES, self.config.name, self.config.namespace)
        except ApiError as e:
            if not e.is_not_found:
                log.warning("%s: error retrieving lease %s/%s: %s", self.identity, self.config.namespace,
                            self.config.name, e)
                return False
            return await self._create(desired)
        except TransportError as e:
            log.warning("%s: error retrieving lease %s/%s: %s", self.identity, self.config.namespace,
                        self.config.name, e or type(e).__name__)
            return False

        current = LeaderElectionRecord.from_spec(lease.get("spec"))
        now = self._clock()
        if current != self._observed:
            self._observed, self._observed_time = current, now
        self._lease = lease
        if current.holder_identity and not self.is_leader \
                and self._observed_time + self.config.lease_duration > now:
            return False   # held by another and not expired
        if self.is_leader:
            desired = replace(desired, acquire_time=current.acquire_time,
                              lease_transitions=current.lease_transitions)
        else:
            desired = replace(desired, lease_transitions=current.lease_transitions + 1)
        return await self._update(lease, desired)

    # -- writes -------------------------------------------------------------

    async def _create(self, record: LeaderElectionRecord) -> bool:
        body = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                "metadata": {"name": self.config.name, "namespace": self.config.namespace},
                "spec": record.to_spec()}
        try:
            self._lease = await self.client.create(LEASES, body, self.config.namespace)
        except (ApiError, TransportError) as e:
            # AlreadyExists: another candidate created it first
            log.info("%s: could not create lease %s/%s: %s", self.identity, self.config.namespace,
                     self.config.name, e or type(e).__name__)
            return False
        self._observed, self._observed_time = record, self._clock()
        return True

    async def _update(self, lease: dict[str, Any], record: LeaderElectionRecord) -> bool:
        body = dict(lease, spec=record.to_spec())   # keeps metadata.resourceVersion: a stale write is a 409
        try:
            self._lease = await self.client.replace(LEASES, body, self.config.namespace)
        except ApiError as e:
            if e.is_conflict:
                log.info("%s: lost the race for lease %s/%s", self.identity, self.config.namespace,
                         self.config.name)
            else:
                log.warning("%s: failed to update lease %s/%s: %s", self.identity, self.config.namespace,
                            self.config.name, e)
            return False
        except TransportError as e:
            log.warning("%s: failed to update lease %s/%s: %s", self.identity, self.config.namespace,
                        self.config.name, e or type(e).__name__)
            return False
        self._observed, self._observed_time = record, self._clock()
        return True

    async def _release(self) -> None:
        """Hand the Lease back (no holder, 1 s duration) if this copy holds it, so a rival takes over now."""
        if not self.is_leader or self._lease is None:
            return
        stamp = micro_time()
        record = LeaderElectionRecord("", 1, stamp, stamp, self._observed.lease_transitions)
        released = False
        try:
            async with asyncio.timeout(self.config.renew_deadline):
                released = await self._update(self._lease, record)
                if not released:
                    # A renewal cut short by the cancel may have been stored without our seeing its
                    # answer: our copy of the Lease is then stale. Still ours on a fresh read: release that.
                    fresh = await self.client.get(LEASES, self.config.name, self.config.namespace)
                    if LeaderElectionRecord.from_spec(fresh.get("spec")).holder_identity == self.identity:
                        released = await self._update(fresh, record)
        except (TimeoutError, ApiError, TransportError):
            pass
        if released:
            log.info("%s: released lease %s/%s", self.identity, self.config.namespace, self.config.name)


async def _cancel(task: asyncio.Task) -> None:
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        if not task.cancelled():   # the cancellation was ours (run() itself is being cancelled)
            raise
    except Exception:
        log.exception("%s failed while stopping", task.get_name())
