"""The portable backend of :mod:`interlock.file_lock`: the two calls of the native core's file
lock (``file_lock_open`` and ``file_lock_apply``) in Python, over ``flock(2)``.

flock locks belong to the open file description, as the native backend's OFD locks do, so a
FileLock object is still the holder (two objects in two threads exclude each other) and the
kernel still drops a dead holder's lock. They cover whole files only: a byte range raises
``OSError(ENOTSUP)``, as the native backend's own flock fallback does. An untimed wait sleeps
in the kernel; a timed one polls, 1 ms at first and at most every 50 ms. Converting a hold
(upgrade, downgrade) is not atomic under flock: another process may take the file between
the two states. On Windows, which has no flock, FileLock raises NotImplementedError
(docs/platforms.md).
"""

from __future__ import annotations

import errno
import os
import time
from typing import Optional

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]

_SHARED, _EXCLUSIVE, _UNLOCK = 0, 1, 2
_FIRST_POLL, _LONGEST_POLL = 0.001, 0.05

UNSUPPORTED = ("FileLock and lockf need fcntl's flock(), which this system lacks "
               "(docs/platforms.md)")


def _require_flock() -> None:
    if fcntl is None:
        raise NotImplementedError(UNSUPPORTED)


def file_lock_open(path: str, mode: int) -> int:
    """Opens (creating with `mode`) the file a FileLock locks; a symbolic link is refused."""
    _require_flock()
    flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOFOLLOW", 0)
    return os.open(path, flags, mode)


def file_lock_apply(fd: int, mode: int, start: int, length: int, whence: int, wait: bool,
                    timeout: Optional[float]) -> bool:
    """Takes (`mode` shared or exclusive) or drops (`mode` unlock) the lock on the file of `fd`.
    Without `wait`, one attempt; with it, until `timeout` (None: for as long as it takes).
    Returns False when the lock was not had."""
    _require_flock()
    if start != 0 or length != 0:
        raise OSError(errno.ENOTSUP, "flock locks whole files only: no byte ranges here")
    if mode == _UNLOCK:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return True
    operation = fcntl.LOCK_SH if mode == _SHARED else fcntl.LOCK_EX
    if wait and timeout is None:
        fcntl.flock(fd, operation)  # in the kernel; signal handlers run on EINTR (PEP 475)
        return True
    deadline = None if not wait else time.monotonic() + (timeout or 0.0)
    poll = _FIRST_POLL
    while True:
        try:
            fcntl.flock(fd, operation | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            pass
        if deadline is None:
            return False
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        time.sleep(min(poll, remaining))
        poll = min(poll * 2, _LONGEST_POLL)
