"""The implementations compared, and how each one builds a primitive.

A peer that cannot build a kind of primitive (posix_ipc has no Event) or that is not installed
raises :class:`Unsupported`; the suite then records a note instead of a figure.
"""

from __future__ import annotations

import multiprocessing as mp
import threading
from typing import Any, Callable, Dict, List, Optional

FORK = mp.get_context("fork")


class Unsupported(Exception):
    """This peer has no such primitive, or is not installed."""


class Peer:
    name = ""
    cross_process = True  # False for threading: in-process figures only

    def make(self, kind: str, *args: Any) -> Any:
        raise NotImplementedError

    def factory(self, kind: str) -> Callable[..., Any]:
        """What a program calls to make one ``kind`` (the default context's factory), for
        timing creation itself."""
        return lambda *args: self.make(kind, *args)

    def close(self) -> None:
        """Frees what the peer holds (a manager process, named semaphores)."""


class Interlock(Peer):
    name = "interlock"

    def make(self, kind: str, *args: Any) -> Any:
        import interlock

        return getattr(interlock.get_context("fork"), kind)(*args)

    def factory(self, kind: str) -> Callable[..., Any]:
        import interlock

        return getattr(interlock, kind)  # type: ignore[no-any-return]


class Multiprocessing(Peer):
    name = "multiprocessing"

    def make(self, kind: str, *args: Any) -> Any:
        return getattr(FORK, kind)(*args)

    def factory(self, kind: str) -> Callable[..., Any]:
        return getattr(mp, kind)  # type: ignore[no-any-return]


class Threading(Peer):
    name = "threading"
    cross_process = False

    def make(self, kind: str, *args: Any) -> Any:
        return getattr(threading, kind)(*args)

    def factory(self, kind: str) -> Callable[..., Any]:
        return getattr(threading, kind)  # type: ignore[no-any-return]


class PosixIpc(Peer):
    """posix_ipc's named POSIX semaphores (for semaphores only). Its acquire() takes a
    timeout, not a block flag, so only argument-free calls are compared."""

    name = "posix_ipc"

    def __init__(self) -> None:
        try:
            import posix_ipc
        except ImportError as exc:
            raise Unsupported("posix_ipc is not installed (pip install .[bench])") from exc
        self._module = posix_ipc
        self._made: List[Any] = []

    def make(self, kind: str, *args: Any) -> Any:
        if kind not in ("Semaphore", "Lock"):
            raise Unsupported(f"posix_ipc has no {kind}")
        value = args[0] if args else 1
        sem = self._module.Semaphore(None, flags=self._module.O_CREX, initial_value=value)
        sem.unlink()  # nameless from now on: inherited by fork children, freed with the last
        self._made.append(sem)
        return sem

    def close(self) -> None:
        for sem in self._made:
            sem.close()
        self._made.clear()


class Manager(Peer):
    """multiprocessing.Manager() proxies: every call is a round trip to a server process."""

    name = "manager"

    def __init__(self) -> None:
        self._manager: Optional[Any] = None

    def make(self, kind: str, *args: Any) -> Any:
        if self._manager is None:
            self._manager = FORK.Manager()
        return getattr(self._manager, kind)(*args)

    def close(self) -> None:
        if self._manager is not None:
            self._manager.shutdown()
            self._manager = None


FACTORIES: Dict[str, Callable[[], Peer]] = {
    "interlock": Interlock,
    "multiprocessing": Multiprocessing,
    "threading": Threading,
    "posix_ipc": PosixIpc,
    "manager": Manager,
}


def available(notes: List[str]) -> Dict[str, Peer]:
    """Every peer that can be built here; a note for each one that cannot."""
    found: Dict[str, Peer] = {}
    for name, factory in FACTORIES.items():
        try:
            found[name] = factory()
        except Unsupported as exc:
            notes.append(f"{name} skipped: {exc}")
    return found
