"""How interlock primitives travel between processes, and process-lifetime hooks.

A primitive's state lives in a slot of a nameless shared arena (see docs/design.md). It reaches
a forked child by inheritance and a spawned or forkserver child by pickling, which is allowed
only while a child is being spawned, exactly as multiprocessing allows it for its own
primitives. Pickling adds a reference to the slot that the child adopts, and sends the arena
as an :class:`ArenaRef`: one object per arena, which the pickler's memo sends once per child
however many primitives of that arena go with it, carrying the arena's file descriptor with
``multiprocessing.reduction.DupFd``. The child rebuilds the primitive with ``_core._import``.
"""

from __future__ import annotations

import threading
import weakref
from multiprocessing import context, reduction
from typing import Any, Optional, Tuple

from . import _core, _lifecycle

FORK_CTX_MESSAGE = (
    "A SemLock created in a fork context is being shared with a process in a spawn "
    "context. This is not supported. Please use the same context to create "
    "multiprocessing objects and Process."
)


_DEFAULT_CONTEXT: Any = context._default_context


def is_fork_context(ctx: Optional[Any]) -> bool:
    """Resolve ``ctx`` as multiprocessing does and say whether it is the fork context."""
    if ctx is None:
        # Fast path: the default context, once chosen, is a concrete context with a name.
        ctx = _DEFAULT_CONTEXT._actual_context or _DEFAULT_CONTEXT.get_context()
    name = getattr(ctx, "_name", None)
    if isinstance(name, str) and isinstance(ctx, context.BaseContext):
        return name == "fork"
    get_start_method = getattr(ctx, "get_start_method", None)
    if get_start_method is None:
        raise TypeError(f"ctx must be a multiprocessing context, not {type(ctx).__name__}")
    return bool(get_start_method() == "fork")


class ArenaRef:
    """A picklable reference to one shared arena (one instance per arena per process)."""

    __slots__ = ("fd", "token", "__weakref__")
    _by_token: "weakref.WeakValueDictionary[int, ArenaRef]"

    def __init__(self, fd: int, token: int) -> None:
        self.fd = fd
        self.token = token

    @classmethod
    def get(cls, fd: int, token: int) -> "ArenaRef":
        # Under a lock: two threads pickling primitives of one arena get the same object.
        with _by_token_lock:
            ref = cls._by_token.get(token)
            if ref is None:
                ref = cls._by_token[token] = cls(fd, token)
            return ref

    def __reduce__(self) -> Tuple[Any, ...]:
        return (_attach_arena, (reduction.DupFd(self.fd), self.token))


ArenaRef._by_token = weakref.WeakValueDictionary()
_by_token_lock = threading.Lock()


def _forget_by_token_lock() -> None:
    # Another thread may have held it at the fork; the child's copy would stay locked.
    global _by_token_lock
    _by_token_lock = threading.Lock()


def _attach_arena(dupfd: Any, token: int) -> ArenaRef:
    _core._attach_arena(dupfd.detach(), token)
    return ArenaRef(-1, token)


def _rebuild(cls: type, arena: ArenaRef, index: int, generation: int, *extras: Any) -> Any:
    """Unpickling: a primitive of ``cls`` over the slot a parent exported (its arena, which
    was unpickled first, is attached by then)."""
    if not isinstance(arena, ArenaRef):
        raise TypeError("malformed interlock state")
    return _core._import(cls, arena.token, index, generation, *extras)


class Shareable:
    """Pickling for the primitives (grafted onto each class by :mod:`interlock.synchronize`):
    allowed only while spawning a child, as for multiprocessing's own primitives."""

    def __reduce__(self) -> Tuple[Any, ...]:
        context.assert_spawning(self)
        if self._is_fork_ctx:  # type: ignore[attr-defined]
            raise RuntimeError(FORK_CTX_MESSAGE)
        fd, token, index, generation, *extras = self._export()  # type: ignore[attr-defined]
        return (_rebuild, (type(self), ArenaRef.get(fd, token), index, generation, *extras))


# The core's fork steps (docs/design.md, "The process life cycle"): a fork that keeps running
# Python is announced, so that the core counts the child's slot references inside fork().
_lifecycle.register("core", before=_core._before_python_fork,
                    after_in_parent=_core._after_python_fork,
                    after_in_child=_core._after_python_fork)
_lifecycle.register("core", after_in_child=_forget_by_token_lock)
# multiprocessing children leave through os._exit, skipping destructors: drop every
# reference at exit.
_lifecycle.release_at_exit(_core._release_all)
# New primitives ask this resolver which context they belong to (with a fast path in the core
# for an unchanged default context).
_core._set_context_resolver(_DEFAULT_CONTEXT, is_fork_context)
