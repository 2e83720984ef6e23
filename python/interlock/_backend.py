"""Which implementation of the primitives this installation has.

``native``: interlock's C++ core (``interlock._core``), futexes in shared memory. Linux only,
and always built there: a build that fails on Linux is an error, never a quiet fallback.

``portable``: multiprocessing's own classes behind interlock's API (``_portable_sync``), on
every other system, or on Linux when the package was built with ``INTERLOCK_PURE_PYTHON=1``
(how CI tests this backend). docs/platforms.md says what each system gets.

The choice is made once, at import, from what is installed: the portable backend is used only
when no ``_core`` extension is there at all. An extension that is there but fails to import
(a broken or mismatched build) raises its ImportError.
"""

from __future__ import annotations

import importlib.util
from types import ModuleType
from typing import Optional


def _load_core() -> Optional[ModuleType]:
    try:
        from . import _core
    except ImportError:
        if importlib.util.find_spec(f"{__package__}._core") is not None:
            raise  # built, but it cannot be loaded: never hide that behind the fallback
        return None
    return _core


core = _load_core()
NATIVE: bool = core is not None
BACKEND: str = "native" if NATIVE else "portable"
