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

import os
import weakref
from multiprocessing import context, reduction, util
from typing import Any, Optional, Tuple

from . import _core

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
        ref = cls._by_token.get(token)
        if ref is None:
            ref = cls._by_token[token] = cls(fd, token)
        return ref

    def __reduce__(self) -> Tuple[Any, ...]:
        return (_attach_arena, (reduction.DupFd(self.fd), self.token))


ArenaRef._by_token = weakref.WeakValueDictionary()


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


class _ProcessHooks:
    """Keeps the slot reference counts right across fork and exit (docs/design.md)."""

    def install(self) -> None:
        # A forked child's references are taken inside fork() by the core, for forks that
        # keep running Python, which announce themselves through this hook (handle.hpp).
        os.register_at_fork(
            before=_core._expect_python_fork,
            after_in_parent=_core._cancel_python_fork,
            after_in_child=_core._cancel_python_fork,
        )
        self.release_at_exit()
        # multiprocessing empties the finalizer registry in each child it starts; put ours back.
        util.register_after_fork(self, _ProcessHooks.release_at_exit)

    def release_at_exit(self) -> None:
        # multiprocessing children leave through os._exit, skipping destructors: drop every
        # reference at exit (lowest priority: after everything else that might use a lock).
        util.Finalize(None, _core._release_all, exitpriority=-1000)


_hooks = _ProcessHooks()
_hooks.install()
# New primitives ask this resolver which context they belong to (with a fast path in the core
# for an unchanged default context).
_core._set_context_resolver(_DEFAULT_CONTEXT, is_fork_context)
