"""python -m interlock.conformance: CPython's own multiprocessing tests, run against interlock."""

import io
import json
import os
import subprocess
import sys
import unittest

import pytest

from conftest import START_METHODS, needs_cpython_tests

pytestmark = needs_cpython_tests


def _conformance(*args, timeout=900):
    return subprocess.run([sys.executable, "-m", "interlock.conformance", *args],
                          capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize("wide", [False, True], ids=["core", "wide"])
@pytest.mark.parametrize("start", START_METHODS)
def test_cpython_suite_passes(start, wide):
    out = _conformance("--start", start, *(["--wide"] if wide else []))
    last = out.stdout.strip().splitlines()[-1]
    assert out.returncode == 0, out.stdout + out.stderr[-3000:]
    passed, failed, skipped = (int(last.split()[i]) for i in (0, 2, 4))
    assert failed == 0
    # (counts vary by CPython version; the classes below must all run)
    assert passed >= (50 if wide else 20)
    for name in ["Lock", "Semaphore", "Condition", "Event", "Barrier"]:
        assert f"WithProcessesTest{name} " in out.stdout
    if wide:
        for name in ["Queue", "Pool", "Value", "Array", "Heap", "SharedCTypes"]:
            assert f"WithProcessesTest{name} " in out.stdout


def test_missing_test_package_is_a_clear_message():
    code = ("import sys; sys.modules['test'] = None\n"
            "from interlock.conformance import main\n"
            "raise SystemExit(main([]))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 2
    assert "libpython3." in out.stderr and "-testsuite" in out.stderr
    assert "Traceback" not in out.stderr


def test_bad_option_is_a_usage_error():
    out = _conformance("--start", "nope", timeout=60)
    assert out.returncode == 2 and "invalid choice" in out.stderr


def test_stdlib_run_can_be_limited_to_named_tests():
    # --full's stdlib run covers only what interlock did not pass: the child runs the named
    # tests and nothing else.
    only = '["WithProcessesTestLock.test_lock", "WithProcessesTestEvent"]'
    out = subprocess.run(
        [sys.executable, "-m", "interlock.conformance", "--one", "fork", "--mode", "stdlib"],
        capture_output=True, text=True, timeout=300,
        env=dict(os.environ, INTERLOCK_CONFORMANCE_ONLY=only))
    assert out.returncode == 0, out.stdout + out.stderr[-3000:]
    line = [x for x in out.stdout.splitlines() if x.startswith("INTERLOCK-CONFORMANCE ")][-1]
    summary = json.loads(line.split(" ", 1)[1])
    assert sorted(summary["classes"]) == ["WithProcessesTestEvent", "WithProcessesTestLock"]
    assert summary["classes"]["WithProcessesTestLock"] == {"passed": 1, "failed": 0,
                                                           "skipped": 0}
    from test import _test_multiprocessing as tm

    event_tests = len(unittest.TestLoader().getTestCaseNames(tm._TestEvent))
    assert summary["classes"]["WithProcessesTestEvent"] == {"passed": event_tests, "failed": 0,
                                                            "skipped": 0}
    assert "WithProcessesTestLock.test_lock" in summary["passed"]


def test_fixture_failures_name_their_class_or_everything():
    from interlock.conformance import _PerClassResult

    result = _PerClassResult(io.StringIO(), True, 1)
    holder = unittest.suite._ErrorHolder
    result.addSkip(holder("setUpClass (test._test_multiprocessing.WithProcessesTestPool)"),
                   "no resource")
    result.addError(holder("setUpModule (interlock.conformance.start_fork)"),
                    (RuntimeError, RuntimeError("boom"), None))
    assert result.other_ids == ["WithProcessesTestPool", "*"]
    assert result.per_class["WithProcessesTestPool"]["skipped"] == 1


def test_baseline_needs_full():
    out = _conformance("--baseline", "all", timeout=60)
    assert out.returncode == 2 and "--baseline goes with --full" in out.stderr
