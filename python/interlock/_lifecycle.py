"""The package's one owner of what fork and exit do to interlock's state.

Every part of interlock that keeps per-process state registers its fork steps here, under a
named *stage*, instead of calling ``os.register_at_fork`` itself. The stages, bottom up:

``core``
    the native core: announces a fork that keeps running Python (so the child's slot
    references are counted inside ``fork()``), and stops the idle death-watch thread;
``file_lock``
    :class:`interlock.FileLock` objects: a child drops the descriptors it inherited;
``cluster_holds``
    what :mod:`interlock.cluster` primitives believe they hold: a child holds nothing;
``cluster``
    the etcd sessions: a child forgets its parent's, and makes its own on first use.

A stage may rely on the stages below it. So before a fork the stages run top down (what
uses the core lets go of it before the core looks at the process), and after it bottom up (the
core is whole again before anything above it runs). Each stage is one
``os.register_at_fork`` hook, registered here in bottom-up order, which makes CPython run them
in exactly that order whatever order the modules were imported in (CPython calls "before"
hooks in reverse registration order and "after" hooks in registration order).

At exit, :func:`release_at_exit` runs a function after everything else that may still use a
primitive, also in multiprocessing's children (which leave through ``os._exit``).
"""

from __future__ import annotations

import os
import threading
from multiprocessing import util
from typing import Callable, Dict, List, Optional, Tuple

STAGES = ("core", "file_lock", "cluster_holds", "cluster")

Hook = Callable[[], None]
_PHASES = ("before", "after_in_parent", "after_in_child")

# stage -> phase -> the hooks, in registration order. Tuples are replaced, never changed, so
# a fork reads them without the lock; the lock only orders registrations.
_hooks: Dict[str, Dict[str, Tuple[Hook, ...]]] = {
    stage: {phase: () for phase in _PHASES} for stage in STAGES}
_registry_lock = threading.Lock()


def register(stage: str, *, before: Optional[Hook] = None,
             after_in_parent: Optional[Hook] = None,
             after_in_child: Optional[Hook] = None) -> None:
    """Run the given functions around every ``os.fork()``, as part of ``stage``. Within a
    stage, hooks run in registration order in every phase."""
    if stage not in _hooks:
        raise ValueError(f"unknown life-cycle stage {stage!r} (one of {', '.join(STAGES)})")
    given = {"before": before, "after_in_parent": after_in_parent,
             "after_in_child": after_in_child}
    for phase, hook in given.items():
        if hook is not None and not callable(hook):
            raise TypeError(f"{phase} must be callable, not {type(hook).__name__}")
    with _registry_lock:
        for phase, hook in given.items():
            if hook is not None:
                _hooks[stage][phase] += (hook,)


class _Trampoline:
    """One stage's hook for one phase: runs every function registered for it. A function that
    raises does not stop the others; the first error is raised once all have run (CPython
    then reports it, as it does for any fork hook that raises)."""

    def __init__(self, stage: str, phase: str) -> None:
        self.stage = stage
        self.phase = phase

    def __call__(self) -> None:
        error: Optional[BaseException] = None
        for hook in _hooks[self.stage][self.phase]:
            try:
                hook()
            except BaseException as exc:  # noqa: B902 -- every hook must run
                error = error or exc
        if error is not None:
            raise error


def _forget_registry_lock() -> None:
    # Another thread may have held the lock at the fork; the child's copy would stay locked.
    global _registry_lock
    _registry_lock = threading.Lock()


class _AtExit:
    """One function run at exit; multiprocessing keeps only a weak reference to what
    register_after_fork is given, so these stay in ``_at_exit``."""

    def __init__(self, func: Hook) -> None:
        self.func = func

    def arm(self) -> None:
        # Lowest priority: after everything else that might still use a primitive.
        util.Finalize(None, self.func, exitpriority=-1000)


_at_exit: List[_AtExit] = []


def release_at_exit(func: Hook) -> None:
    """Run ``func`` at exit, after every other finalizer (multiprocessing's included), in this
    process and in every child multiprocessing starts from it."""
    entry = _AtExit(func)
    _at_exit.append(entry)
    entry.arm()
    # multiprocessing empties the finalizer registry in each child it starts: put it back.
    util.register_after_fork(entry, _AtExit.arm)


def _install() -> None:
    register("core", after_in_child=_forget_registry_lock)
    for stage in STAGES:  # bottom up: see the module docstring
        os.register_at_fork(
            before=_Trampoline(stage, "before"),
            after_in_parent=_Trampoline(stage, "after_in_parent"),
            after_in_child=_Trampoline(stage, "after_in_child"),
        )


_install()
