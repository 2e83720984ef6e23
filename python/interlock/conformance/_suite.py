"""Loads CPython's own multiprocessing tests with interlock's primitives in place.

Importing this module patches multiprocessing as ``INTERLOCK_CONFORMANCE_MODE`` says:
``core`` (the default) replaces the module-level factories; ``wide`` and ``full`` install
interlock in every context (``interlock.install()``), so that Queue, Pool, Value, Array,
managers and everything else use interlock internally; ``stdlib`` patches nothing (the
baseline ``--full`` compares against); ``cluster`` replaces the module-level factories with
interlock.cluster's, connected to the etcd endpoints in ``INTERLOCK_CONFORMANCE_ENDPOINTS``,
each primitive under a fresh name. The environment variable is inherited by the children
the tests start, and they import this module again (through the ``start_*`` modules that hold
the test classes), so parent and children always agree.
"""

from __future__ import annotations

import os
from typing import Any, Dict

import multiprocessing

import interlock
from interlock import _context, _install

MODE = os.environ.get("INTERLOCK_CONFORMANCE_MODE", "core")


def _cluster_factories() -> Dict[str, Any]:
    """multiprocessing's seven factories, on interlock.cluster: every primitive gets a fresh
    name, so that each test works on its own primitives."""
    import uuid

    from interlock import cluster

    c = cluster.connect(os.environ["INTERLOCK_CONFORMANCE_ENDPOINTS"].split(","),
                        namespace=os.environ.get("INTERLOCK_CONFORMANCE_NAMESPACE",
                                                 "conformance"))

    def fresh() -> str:
        return uuid.uuid4().hex

    return {
        "Lock": lambda: c.Lock(fresh()),
        "RLock": lambda: c.RLock(fresh()),
        "Semaphore": lambda value=1: c.Semaphore(fresh(), value),
        "BoundedSemaphore": lambda value=1: c.BoundedSemaphore(fresh(), value),
        "Condition": lambda lock=None: c.Condition(fresh(), lock),
        "Event": lambda: c.Event(fresh()),
        "Barrier": lambda parties, action=None, timeout=None: c.Barrier(
            fresh(), parties, action, timeout),
    }


if MODE in ("wide", "full"):
    _install.install()
elif MODE == "core":
    for _name in _context.PRIMITIVES:
        setattr(multiprocessing, _name, getattr(interlock, _name))
elif MODE == "cluster":
    for _name, _factory in _cluster_factories().items():
        setattr(multiprocessing, _name, _factory)
elif MODE != "stdlib":
    raise ValueError(f"unknown INTERLOCK_CONFORMANCE_MODE {MODE!r}")

import test._test_multiprocessing as cpython_tests  # type: ignore[import-not-found]  # noqa: E402

CORE_CLASSES = ("Lock", "Semaphore", "Condition", "Event", "Barrier")
WIDE_CLASSES = ("Queue", "Pool", "Value", "Array", "Heap", "SharedCTypes")


def install_tests(globs: Dict[str, Any], start_method: str) -> None:
    """Defines CPython's test classes for `start_method` in the module dict `globs`."""
    cpython_tests.install_tests_in_module_dict(globs, start_method)
