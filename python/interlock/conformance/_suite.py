"""Loads CPython's own multiprocessing tests with interlock's primitives in place.

Importing this module patches multiprocessing: the module-level factories always, and with
``INTERLOCK_CONFORMANCE_WIDE=1`` in the environment also every context (``interlock.install()``),
so that Queue, Pool, Value and Array use interlock internally. The environment variable is
inherited by the children the tests start, and they import this module again (through the
``start_*`` modules that hold the test classes), so parent and children always agree.
"""

from __future__ import annotations

import os
from typing import Any, Dict

import multiprocessing

import interlock
from interlock import _context, _install

WIDE = os.environ.get("INTERLOCK_CONFORMANCE_WIDE") == "1"

if WIDE:
    _install.install()
else:
    for _name in _context.PRIMITIVES:
        setattr(multiprocessing, _name, getattr(interlock, _name))

import test._test_multiprocessing as cpython_tests  # type: ignore[import-not-found]  # noqa: E402

CORE_CLASSES = ("Lock", "Semaphore", "Condition", "Event", "Barrier")
WIDE_CLASSES = ("Queue", "Pool", "Value", "Array", "Heap", "SharedCTypes")


def install_tests(globs: Dict[str, Any], start_method: str) -> None:
    """Defines CPython's test classes for `start_method` in the module dict `globs`."""
    cpython_tests.install_tests_in_module_dict(globs, start_method)
