"""Event on etcd: one key, ``flag`` ("1" set, "0" clear).

wait() reads the flag at revision r and, unless it is set, watches it from r + 1 for a write
of "1": a set() that lands between the read and the watch is still seen, and one followed at
once by a clear() still wakes the waiter, as threading.Event's wait returns True for a set that
happened while it waited.
"""

from __future__ import annotations

from typing import Any, Optional

from ._primitive import Primitive, deadline_of, get, put, remaining


class Event(Primitive):
    """An event flag shared by every process that asks for its name: see
    multiprocessing.Event. ``set()``, ``clear()``, ``is_set()`` and ``wait(timeout=None)``."""

    kind = "Event"

    def __init__(self, cluster: Any, name: str) -> None:
        super().__init__(cluster, name)
        self._register()

    def set(self) -> None:
        self._txn([], [put(self._key("flag"), b"1")])

    def clear(self) -> None:
        self._txn([], [put(self._key("flag"), b"0")])

    def is_set(self) -> bool:
        return self._read(get(self._key("flag"))).value(0) == b"1"

    def wait(self, timeout: Optional[float] = None) -> bool:
        deadline = deadline_of(timeout)
        flag = self._key("flag")
        while True:
            t = self._read(get(flag))
            if t.value(0) == b"1":
                return True
            if remaining(deadline) == 0:
                return False
            changed = self._wait_for_change(
                flag, b"", t.revision, deadline,
                lambda events: any(e.kv.value == b"1" and e.type == 0 for e in events))
            if changed is not None:
                return changed  # True: set meanwhile (even if cleared since); False: timeout

    def __repr__(self) -> str:
        # multiprocessing's format (CPython's tests check it), with the name.
        try:
            status = "set" if self.is_set() else "unset"
        except Exception:
            status = "unknown"
        return f"<Event at {id(self):#x} {self.name!r} {status}>"
