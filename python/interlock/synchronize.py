"""Drop-in counterparts of ``multiprocessing.synchronize``'s classes.

Each class takes the same arguments as multiprocessing's, with ``ctx`` optional (the default
context when None). Which implementation they have depends on the system
(:data:`interlock.native`, docs/platforms.md):

* the native backend (Linux; ``interlock._native_sync``): native types of interlock's C++ core,
  over futexes in 64-byte slots of shared memory;
* the portable backend (other systems; ``interlock._portable_sync``): multiprocessing's own
  classes with interlock's API, without robust locks.

``RWLock``, a reader-writer lock, is interlock's own (multiprocessing has none).
"""

from __future__ import annotations

from ._backend import NATIVE

if NATIVE:
    from ._native_sync import (
        SEM_VALUE_MAX, Barrier, BoundedSemaphore, Condition, Event, Lock, OwnerDiedError, RLock,
        RWLock, SegmentError, Semaphore, set_owner_check_interval)
else:
    from ._portable_sync import (  # type: ignore[assignment]
        SEM_VALUE_MAX, Barrier, BoundedSemaphore, Condition, Event, Lock, OwnerDiedError, RLock,
        SegmentError, Semaphore, set_owner_check_interval)
    from ._portable_rwlock import RWLock  # type: ignore[assignment]

__all__ = [
    "OwnerDiedError",
    "SegmentError",
    "set_owner_check_interval",
    "Lock",
    "RLock",
    "Semaphore",
    "BoundedSemaphore",
    "Condition",
    "Event",
    "Barrier",
    "RWLock",
    "SEM_VALUE_MAX",
]
