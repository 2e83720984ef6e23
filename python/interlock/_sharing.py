"""How interlock primitives travel between processes, and process-lifetime hooks.

A primitive's state lives in a slot of a nameless shared arena (see docs/design.md). It reaches
a forked child by inheritance and a spawned or forkserver child by pickling, which is allowed
only while a child is being spawned, exactly as multiprocessing allows it for its own
primitives. Pickling sends the arena's file descriptor with ``multiprocessing.reduction.DupFd``
and adds a reference to the slot that the child adopts.
"""

from __future__ import annotations

import os
from multiprocessing import context, reduction, util
from typing import Any, Optional, Tuple

from . import _core

FORK_CTX_MESSAGE = (
    "A SemLock created in a fork context is being shared with a process in a spawn "
    "context. This is not supported. Please use the same context to create "
    "multiprocessing objects and Process."
)


def is_fork_context(ctx: Optional[Any]) -> bool:
    """Resolve ``ctx`` as multiprocessing does and say whether it is the fork context."""
    if ctx is None:
        ctx = context._default_context.get_context()
    get_start_method = getattr(ctx, "get_start_method", None)
    if get_start_method is None:
        raise TypeError(f"ctx must be a multiprocessing context, not {type(ctx).__name__}")
    return bool(get_start_method() == "fork")


class Shareable:
    """Mixin that makes a ``_core`` primitive picklable for spawned children only."""

    __slots__ = ()

    def __getstate__(self) -> Tuple[Any, ...]:
        context.assert_spawning(self)
        if self._is_fork_ctx:  # type: ignore[attr-defined]
            raise RuntimeError(FORK_CTX_MESSAGE)
        fd, *rest = super().__getstate__()  # type: ignore[misc]
        return (reduction.DupFd(fd), *rest)

    def __setstate__(self, state: Tuple[Any, ...]) -> None:
        if not isinstance(state, tuple) or not state or not hasattr(state[0], "detach"):
            raise TypeError("malformed interlock state")
        fd = state[0].detach()
        super().__setstate__((fd, *state[1:]))  # type: ignore[misc]


def _install_process_hooks() -> None:
    # A forked child holds real copies of every live primitive: count them.
    os.register_at_fork(after_in_child=_core._after_fork_in_child)
    # multiprocessing children leave through os._exit, skipping destructors: drop every
    # reference at exit (the lowest priority, after everything else that might use a lock).
    util.Finalize(None, _core._release_all, exitpriority=-1000)


_install_process_hooks()
