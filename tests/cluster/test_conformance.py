"""CPython's own Lock, Semaphore, Condition, Event and Barrier test classes, run on
interlock.cluster's primitives (each test's primitives under fresh names) on a real etcd, under
fork, spawn and forkserver: python -m interlock.conformance --cluster ENDPOINTS."""

import subprocess
import sys
import unittest

import pytest

from conftest import START_METHODS, needs_cpython_tests  # tests/conftest.py

pytestmark = needs_cpython_tests

CLASSES = ["Lock", "Semaphore", "Condition", "Event", "Barrier"]


def _expected_per_start_method():
    """How many tests the core classes hold on this CPython (what the local run passes)."""
    from test import _test_multiprocessing as tm

    loader = unittest.TestLoader()
    return sum(len(loader.getTestCaseNames(getattr(tm, f"_Test{name}"))) for name in CLASSES)


@pytest.mark.parametrize("start", START_METHODS)
def test_cpython_sync_classes_pass_on_the_cluster(etcd, start):
    out = subprocess.run(
        [sys.executable, "-m", "interlock.conformance", "--cluster", ",".join(etcd.endpoints),
         "--start", start], capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stdout + out.stderr[-3000:]
    last = out.stdout.strip().splitlines()[-1]
    passed, failed, skipped = (int(last.split()[i]) for i in (0, 2, 4))
    print(f"[{start}] cluster conformance: {last}")
    assert (failed, skipped) == (0, 0)
    assert passed == _expected_per_start_method()
    for name in CLASSES:
        assert f"WithProcessesTest{name} " in out.stdout
