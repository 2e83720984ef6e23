"""Event on etcd: two keys, ``flag`` ("1" set, "0" clear) and ``sets``, which every set()
writes again in the same transaction (its mod revision says when the last set() was).

wait() reads both at revision r and, unless the flag is set, waits for a write of ``sets``
after r: a set() that lands between the read and the wait is still seen, and one followed at
once by a clear() still wakes the waiter, as threading.Event's wait returns True for a set that
happened while it waited. When the watch cannot vouch for every change since r (it was
re-created after etcd compacted its history, or its buffer overflowed), the waiter reads the
keys again: a ``sets`` written after r is a set() it would have seen. So no set() is ever lost,
and clear() wakes no one.
"""

from __future__ import annotations

from typing import Any, Optional

from ._awaitable import EventAsync
from ._primitive import Primitive, deadline_of, remaining
from ._wire import get, put
from ._keys import PUT


class Event(EventAsync, Primitive):
    """An event flag shared by every process that asks for its name: see
    multiprocessing.Event. ``set()``, ``clear()``, ``is_set()`` and ``wait(timeout=None)``."""

    kind = "Event"

    def __init__(self, cluster: Any, name: str) -> None:
        super().__init__(cluster, name)
        self._register()

    def set(self) -> None:
        self._txn([], [put(self._key("flag"), b"1"), put(self._key("sets"), b"")])

    def clear(self) -> None:
        self._txn([], [put(self._key("flag"), b"0")])

    def is_set(self) -> bool:
        return self._read(get(self._key("flag"))).value(0) == b"1"

    def wait(self, timeout: Optional[float] = None) -> bool:
        deadline = deadline_of(timeout)
        flag, sets = self._key("flag"), self._key("sets")
        since = None  # the revision of the first look: a set() after it ends the wait
        while True:
            t = self._read(get(flag), get(sets))
            if t.value(0) == b"1":
                return True
            if since is None:
                since = t.revision
            elif t.kvs(1) and t.kvs(1)[0].mod_revision > since:
                return True  # set (and cleared again) in a stretch the watch could not see
            if remaining(deadline) == 0:
                return False
            changed = self._wait_for_change(sets, b"", t.revision, deadline,
                                            lambda events: any(e.type == PUT for e in events))
            if changed is not None:
                return changed  # True: set meanwhile (even if cleared since); False: timeout

    def __repr__(self) -> str:
        # multiprocessing's format (CPython's tests check it), with the name.
        try:
            status = "set" if self.is_set() else "unset"
        except Exception:
            status = "unknown"
        return f"<Event at {id(self):#x} {self.name!r} {status}>"
