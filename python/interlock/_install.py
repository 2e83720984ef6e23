"""Make multiprocessing itself hand out interlock's primitives.

:func:`install` replaces the primitive factories of every multiprocessing context
(``multiprocessing.context.BaseContext.Lock`` and friends) and the module-level shortcuts
(``multiprocessing.Lock`` ...), so that ``multiprocessing.Lock()``,
``multiprocessing.get_context(m).Lock()`` and everything multiprocessing builds on them (Queue,
Pool, Value/Array with a lock, ...) use interlock. :func:`uninstall` restores the originals.
Both are idempotent.
"""

from __future__ import annotations

import multiprocessing
import threading
from multiprocessing import context, spawn
from typing import Any, Dict, Tuple

from . import _lifecycle
from ._context import PRIMITIVES, primitive_factory

_saved: Dict[str, Tuple[Any, Any]] = {}
# install() and uninstall() from several threads at once (free-threaded builds run them in
# parallel): one at a time.
_patching = threading.Lock()


def _forget_patching_lock() -> None:
    # Another thread may have held it at the fork; the child's copy would stay locked.
    global _patching
    _patching = threading.Lock()


_lifecycle.register("core", after_in_child=_forget_patching_lock)
_original_preparation_data = spawn.get_preparation_data


class _InstallInChild:
    """Rides in the preparation data of spawned and forkserver children: unpickling it, the
    first thing such a child does, installs interlock there too, before any user code runs."""

    def __reduce__(self) -> Tuple[Any, ...]:
        return (_install_in_child, ())


def _install_in_child() -> None:
    install()


def _preparation_data(name: str) -> Dict[str, Any]:
    data = dict(_original_preparation_data(name))
    if installed():
        data["interlock_install"] = _InstallInChild()  # spawn.prepare() ignores other keys
    return data


def installed() -> bool:
    """True while :func:`install` is in effect."""
    return bool(_saved)


def install() -> None:
    """Make multiprocessing's contexts create interlock primitives (idempotent). Children
    started afterwards by spawn or forkserver install it as well; forked children inherit
    the patched classes."""
    with _patching:
        if not _saved:
            _patch()


def _patch() -> None:
    for name in PRIMITIVES:
        _saved[name] = (context.BaseContext.__dict__[name], getattr(multiprocessing, name))
        setattr(context.BaseContext, name, primitive_factory(name, "BaseContext"))
        setattr(multiprocessing, name, getattr(context._default_context, name))
    spawn.get_preparation_data = _preparation_data


def uninstall() -> None:
    """Undo :func:`install` (idempotent). Children that are already running keep theirs."""
    with _patching:
        for name, (method, shortcut) in _saved.items():
            setattr(context.BaseContext, name, method)
            setattr(multiprocessing, name, shortcut)
        _saved.clear()
        spawn.get_preparation_data = _original_preparation_data
