"""Inter-process file locks with ``fcntl.lockf`` semantics that belong to a lock object.

:class:`FileLock` and :func:`lockf` use Linux open-file-description (OFD) locks: a lock belongs
to the open file description (for a FileLock, to the object), not to the process. So two
FileLock objects on one path exclude each other whether they live in two threads or two
processes; closing some other descriptor of the file never drops a lock; and the kernel drops a
lock when its holder dies, even by SIGKILL. Waits happen in the kernel with the GIL released:
no polling. See docs/filelock.md.
"""

from __future__ import annotations

import errno
import operator
import os
import threading
import time
import weakref
from typing import Any, Optional, Tuple, Union

from . import _lifecycle, _portable_file_lock
from ._arguments import check_timeout as _check_timeout
from ._async_common import deadline_of, in_executor_thread
from ._backend import core as _native

__all__ = ["FileLock", "lockf", "LOCK_SH", "LOCK_EX", "LOCK_NB", "LOCK_UN"]

# fcntl's values (the same on every Unix; Windows has no fcntl module).
LOCK_SH, LOCK_EX, LOCK_NB, LOCK_UN = 1, 2, 4, 8

# The two calls that lock: the native core's (OFD locks, else flock), or the portable
# backend's (flock in Python) where there is no native core.
_core = _native if _native is not None else _portable_file_lock

_SHARED, _EXCLUSIVE, _UNLOCK = 0, 1, 2

PathLike = Union[str, bytes, "os.PathLike[str]", "os.PathLike[bytes]"]


def _check_whence(whence: Any) -> int:
    value = operator.index(whence)
    if value not in (os.SEEK_SET, os.SEEK_CUR, os.SEEK_END):
        raise ValueError(f"whence must be 0, 1 or 2, not {value}")
    return value


class _FdBox:
    """The descriptor of a FileLock, closed by a finalizer (and replaced after fork)."""

    __slots__ = ("fd",)

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def close(self) -> None:
        fd, self.fd = self.fd, -1
        if fd >= 0:
            os.close(fd)


_live_locks: "weakref.WeakSet[FileLock]" = weakref.WeakSet()


class FileLock:
    """An inter-process lock on (a byte range of) a file, held by this object.

    ``FileLock(path, *, shared=False, start=0, length=0, whence=0, mode=0o644)`` opens
    ``path`` (creating it with ``mode`` if missing; a symbolic link is refused) and never deletes
    it. ``start``/``length``/``whence`` select the byte range exactly as ``fcntl.lockf`` does;
    ``length=0`` means to the end of the file, including later growth.

    ``acquire(block=True, timeout=None)`` and ``release()`` take the same arguments as
    interlock's Lock. One object is one holder: while it is held, ``acquire`` on the same
    object from any thread waits, as for a Lock; any thread may release it.
    """

    __slots__ = ("_path", "_shared", "_range", "_mode", "_box", "_gate", "_held", "_finalizer",
                 "__weakref__")

    def __init__(
        self,
        path: PathLike,
        *,
        shared: bool = False,
        start: int = 0,
        length: int = 0,
        whence: int = 0,
        mode: int = 0o644,
    ) -> None:
        self._path = os.fsdecode(os.fspath(path))
        if "\0" in self._path:
            raise ValueError("embedded null character in path")
        self._shared = bool(shared)
        self._range = (operator.index(start), operator.index(length), _check_whence(whence))
        start, length, whence = self._range
        if whence == os.SEEK_SET and min(start, start + length) < 0:
            raise ValueError("the byte range starts before the beginning of the file")
        self._mode = operator.index(mode)
        if not 0 <= self._mode <= 0o7777:
            raise ValueError(f"mode must be a permission mask, not {oct(self._mode)}")
        self._box = _FdBox(_core.file_lock_open(self._path, self._mode))
        self._finalizer = weakref.finalize(self, self._box.close)
        self._gate = threading.Lock()
        self._held = False
        _live_locks.add(self)

    # --- properties -------------------------------------------------------------------

    @property
    def path(self) -> str:
        """The lock file's path."""
        return self._path

    @property
    def shared(self) -> bool:
        """True for a shared (read) lock, False for an exclusive (write) lock."""
        return self._shared

    def locked(self) -> bool:
        """True while this object holds the lock."""
        return self._held

    # --- locking ----------------------------------------------------------------------

    def _fd(self) -> int:
        if self._box.fd < 0:
            if not self._finalizer.alive:
                raise ValueError("I/O operation on a closed FileLock")
            # Dropped after fork (see _after_fork_in_child): open afresh.
            self._box.fd = _core.file_lock_open(self._path, self._mode)
        return self._box.fd

    def acquire(self, block: Any = True, timeout: Optional[float] = None) -> bool:
        """Take the lock; False if ``block`` is false and it is held elsewhere, or if the
        timeout (seconds; negative means zero, None means forever) passed first."""
        block = bool(operator.index(block))
        timeout = _check_timeout(timeout)
        deadline = None if timeout is None else time.monotonic() + timeout
        if not block:
            if not self._gate.acquire(False):
                return False
        elif not self._gate.acquire(True, -1 if timeout is None else timeout):
            return False
        try:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            start, length, whence = self._range
            ok = _core.file_lock_apply(self._fd(), _SHARED if self._shared else _EXCLUSIVE,
                                       start, length, whence, block, remaining)
        except BaseException:
            self._gate.release()
            raise
        if not ok:
            self._gate.release()
            return False
        self._held = True
        return True

    async def acquire_async(self, block: Any = True, timeout: Optional[float] = None) -> bool:
        """Await the lock without blocking the event loop; the same results as ``acquire``.
        fcntl has no way to be told of a release, so the wait runs in an executor thread in
        short slices (a cancelled task's thread stops within one, and gives back what it took
        after the cancellation): a thread per waiting task, as ``run_in_executor`` costs."""
        deadline = deadline_of(block, timeout)
        if self.acquire(False):
            return True
        if deadline is not None and deadline <= time.monotonic():
            return False
        return await in_executor_thread(lambda seconds: self.acquire(True, seconds),
                                        self.release, deadline)

    async def __aenter__(self) -> "FileLock":
        await self.acquire_async()
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.release()

    def release(self) -> None:
        """Release the lock. ValueError if this object does not hold it."""
        if not self._held:
            raise ValueError("release of an unlocked FileLock")
        start, length, whence = self._range
        try:
            _core.file_lock_apply(self._fd(), _UNLOCK, start, length, whence, False, None)
        finally:
            self._held = False
            self._gate.release()

    def upgrade(self, timeout: Optional[float] = None) -> bool:
        """Turn a held shared lock into an exclusive one without ever unlocking in between.
        Waits for other shared holders to leave; False (still shared) if the timeout passed."""
        if not self._held:
            raise ValueError("upgrade of an unlocked FileLock")
        if not self._shared:
            return True
        timeout = _check_timeout(timeout)
        start, length, whence = self._range
        if not _core.file_lock_apply(self._fd(), _EXCLUSIVE, start, length, whence, True,
                                     timeout):
            return False
        self._shared = False
        return True

    def downgrade(self) -> None:
        """Turn a held exclusive lock into a shared one, atomically (never blocks)."""
        if not self._held:
            raise ValueError("downgrade of an unlocked FileLock")
        if self._shared:
            return
        start, length, whence = self._range
        if not _core.file_lock_apply(self._fd(), _SHARED, start, length, whence, False, None):
            raise OSError(errno.EDEADLK, "downgrade refused by the kernel")
        self._shared = True

    def close(self) -> None:
        """Release (if held) and close the file descriptor. The file is never deleted."""
        if self._held:
            self.release()
        self._finalizer()

    def __enter__(self) -> "FileLock":
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def __repr__(self) -> str:
        state = "locked" if self._held else "unlocked"
        kind = "shared" if self._shared else "exclusive"
        return f"<FileLock {self._path!r} {kind} {state}>"

    def __reduce__(self) -> Tuple[Any, ...]:
        # A copy in another process is another, unlocked holder on the same path and range.
        start, length, whence = self._range
        return (_rebuild, (self._path, self._shared, start, length, whence, self._mode))

    # --- fork ---------------------------------------------------------------------------

    def _after_fork_in_child(self) -> None:
        # The child's copy of the descriptor shares the parent's open file description, and so
        # its locks. Drop it (the parent's lock is unaffected) and open afresh when next used.
        try:
            self._box.close()
        except OSError:
            pass
        self._held = False
        self._gate = threading.Lock()


def _rebuild(path: str, shared: bool, start: int, length: int, whence: int,
             mode: int) -> FileLock:
    return FileLock(path, shared=shared, start=start, length=length, whence=whence, mode=mode)


def _after_fork_in_child() -> None:
    for lock in list(_live_locks):
        lock._after_fork_in_child()


_lifecycle.register("file_lock", after_in_child=_after_fork_in_child)


def _as_fd(fd: Any) -> int:
    if isinstance(fd, int):
        if fd < 0:
            raise ValueError(f"file descriptor cannot be a negative integer ({fd})")
        return fd
    fileno = getattr(fd, "fileno", None)
    if fileno is None:
        raise TypeError("argument must be an int, or have a fileno() method.")
    return _as_fd(fileno())


def lockf(fd: Any, cmd: int, len: int = 0, start: int = 0, whence: int = 0, *,
          timeout: Optional[float] = None) -> None:
    """``fcntl.lockf`` with open-file-description ownership and an optional timeout.

    ``cmd`` is ``LOCK_UN``, ``LOCK_SH`` or ``LOCK_EX``, optionally ``| LOCK_NB``. With
    ``LOCK_NB``, a conflicting lock raises ``BlockingIOError`` (errno EAGAIN). Without it, the
    call waits, at most ``timeout`` seconds when given (then ``TimeoutError``).

    Unlike ``fcntl.lockf``, the lock belongs to the open file description behind ``fd`` (shared
    with its duplicates, including those a forked child inherits), not to the process: closing
    another descriptor of the same file does not release it, and a second descriptor opened on
    the file, even in this process, conflicts with it.
    """
    fd = _as_fd(fd)
    cmd = operator.index(cmd)
    if cmd == LOCK_UN:
        mode = _UNLOCK
    elif cmd & LOCK_SH:
        mode = _SHARED
    elif cmd & LOCK_EX:
        mode = _EXCLUSIVE
    else:
        raise ValueError("unrecognized lockf argument")
    length, start, whence = operator.index(len), operator.index(start), operator.index(whence)
    wait = not (cmd & LOCK_NB) and mode != _UNLOCK
    timeout = _check_timeout(timeout) if wait else None
    if not _core.file_lock_apply(fd, mode, start, length, whence, wait, timeout):
        if wait:
            raise TimeoutError(errno.ETIMEDOUT, f"lockf timed out after {timeout} s")
        raise BlockingIOError(errno.EAGAIN, os.strerror(errno.EAGAIN))
