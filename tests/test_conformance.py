"""python -m interlock.conformance: CPython's own multiprocessing tests, run against interlock."""

import subprocess
import sys

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
