"""A process's etcd lease: every key it creates for a hold, a wait or an arrival is attached to
it, so that all of them vanish when the process dies or stays cut off for longer than the TTL.

The lease is granted on first use and kept alive by a thread every TTL/3. If it is lost anyway
(the process was stopped or cut off for longer than the TTL), the next key goes on a new one,
and the old one is remembered as lost: a hold on it may be gone.
"""

from __future__ import annotations

import threading
import time
from typing import Optional, Set

from ._errors import ClusterError
from ._transport import Transport


class Lease:
    """This process's lease on one cluster."""

    def __init__(self, transport: Transport, ttl: float, timeout: float) -> None:
        self.transport = transport
        self.ttl = ttl
        self.timeout = timeout
        self._lock = threading.Lock()
        self._grant_lock = threading.Lock()
        self._id = 0
        self._renewed_at = 0.0  # when the lease was last confirmed alive (monotonic)
        self._lost: Set[int] = set()
        self.granted: Set[int] = set()  # every lease this process was granted here
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None

    def current(self) -> int:
        """The lease that new keys go on (granted on first use, and again after a loss; one
        grant at a time, so that no key lands on a lease that nobody keeps alive)."""
        with self._grant_lock:
            with self._lock:
                if self._id and self._id not in self._lost:
                    return self._id
            sent = time.monotonic()
            answer = self.transport.call("/v3/lease/grant",
                                         {"TTL": str(max(1, round(self.ttl))), "ID": "0"})
            lease_id = int(answer["ID"])
            with self._lock:
                if self._stop.is_set():
                    raise ClusterError("this cluster connection is closed")
                self._id = lease_id
                self.granted.add(lease_id)
                self._renewed_at = sent
                if self._thread is None:
                    self._thread = threading.Thread(target=self._keep_alive, daemon=True,
                                                    name="interlock-cluster-lease")
                    self._thread.start()
            return lease_id

    def gone(self) -> None:
        """etcd no longer knows the current lease (it expired while this process was stopped
        or cut off, before the keep-alive noticed): the next key goes on a new one."""
        with self._lock:
            if self._id:
                self._lost.add(self._id)

    def alive(self, lease_id: int) -> bool:
        """Whether etcd still has `lease_id` (one request, to the leader through the member in
        use; ClusterUnavailableError if none answers): keys on a live lease can only have
        been deleted by a transaction."""
        answer = self.transport.call("/v3/lease/timetolive", {"ID": str(lease_id)})
        return int(answer.get("TTL", -1)) > 0

    def lost(self, lease_id: int) -> bool:
        """True when keys on `lease_id` may be gone: etcd said the lease expired, or it has not
        confirmed the lease for longer than its TTL (it may have expired it meanwhile)."""
        with self._lock:
            if lease_id in self._lost or lease_id != self._id:
                return True
            return time.monotonic() - self._renewed_at > self.ttl

    def _keep_alive(self) -> None:
        """Renews the lease every TTL/3, counted from the last renewal; a renewal that fails
        is tried again at once, on another member."""
        period = self.ttl / 3
        retry_at = 0.0
        while True:
            due = max(self._renewed_at + period, retry_at)
            if self._stop.wait(max(0.0, due - time.monotonic())):
                return
            with self._lock:
                lease_id = self._id if self._id not in self._lost else 0
            if not lease_id:
                retry_at = time.monotonic() + period
                continue
            sent = time.monotonic()  # the lease lives at least TTL from here if renewed
            try:
                # A renewal that a silent member (stopped, cut off) swallows must not cost the
                # lease: each attempt gets a quarter of the period, the next goes elsewhere.
                answer = self.transport.call("/v3/lease/keepalive", {"ID": str(lease_id)},
                                             deadline=sent + period,
                                             attempt_seconds=max(0.2, period / 4))
                ttl = int(answer.get("TTL", 0))
            except (ClusterError, ValueError):
                retry_at = time.monotonic() + min(0.2, period)
                continue
            if ttl > 0:
                with self._lock:
                    self._renewed_at = sent
                continue
            # "Not found" from a keep-alive is not always the truth: a member that has just
            # become leader, or one forwarding to a leader that is changing, can say it of a
            # live lease. Giving the lease up then would let it expire for real, with the
            # holds on it, so the leader is asked first.
            try:
                alive = self.alive(lease_id)
            except ClusterError:
                alive = True  # unknown: keep renewing, the lease's own TTL still decides
            if alive:
                retry_at = time.monotonic() + min(0.2, period)
            else:
                with self._lock:
                    self._lost.add(lease_id)  # expired: its keys are gone

    def revoke(self) -> None:
        """Ends the current lease now: every key on it goes at once, and the next key goes on
        a new lease."""
        with self._lock:
            lease_id = self._id if self._id not in self._lost else 0
        if lease_id:
            try:
                self.transport.call("/v3/lease/revoke", {"ID": str(lease_id)},
                                    deadline=time.monotonic() + min(self.timeout, 2.0))
            except ClusterError:
                pass  # unreachable: the lease will expire by itself
            with self._lock:
                self._lost.add(lease_id)

    def close(self) -> None:
        """Revokes the lease (closing the cluster) and stops the keep-alive thread."""
        with self._lock:
            self._stop.set()
            thread = self._thread
        self.revoke()
        if thread is not None and thread is not threading.current_thread():
            thread.join(self.timeout)
