"""The exceptions of interlock.cluster."""

from __future__ import annotations


class ClusterError(Exception):
    """Something went wrong talking to etcd that is not a plain outage (a refused request,
    a corrupted key)."""


class ClusterUnavailableError(ClusterError, ConnectionError):
    """No etcd member answered within the cluster's timeout. Nothing was decided by the call
    that raised it: a lock was not taken, a permit not consumed, an event not set (or, where
    it cannot be known whether a write landed, the call says so in its message)."""


class LockLostError(ClusterError):
    """This process's hold on a cluster lock or semaphore permit was lost: its lease expired
    (the process was cut off from the cluster for longer than the lease TTL, or stalled that
    long), so etcd deleted the hold and another process may hold it now. Raised by
    ``release()``, which then changes nothing: it never releases someone else's hold."""


class NotHeldError(RuntimeError, AssertionError):
    """A Condition was used without holding its lock. Both a RuntimeError (what threading
    raises) and an AssertionError (what multiprocessing raises)."""


class LeaseNotFound(ClusterError):
    """(internal) etcd refused a key on this process's lease, which has expired. The request
    changed nothing; the primitives retry it on a new lease, where that is safe."""


class AuthenticationError(ClusterError, PermissionError):
    """etcd did not accept the user and password given to ``connect()``, or it requires them
    and none were given. Raised at once: no member will accept them either."""


class PermissionDeniedError(ClusterError, PermissionError):
    """etcd's role-based access control refused a request: the user's roles do not grant
    read and write access to the namespace's keys (docs/cluster.md, "Security")."""
