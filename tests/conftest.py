"""Shared fixtures: multiprocessing contexts for every start method, and child helpers."""

import gc
import importlib.util
import multiprocessing as mp
import os
import signal
import threading
import time

import pytest

ALL_START_METHODS = ["fork", "spawn", "forkserver"]
# The start methods that the process tests run under: all three by default. CI's lanes for
# the other CPython versions each pick one (INTERLOCK_TEST_START_METHODS="spawn"), since the
# full matrix already runs once, for 3.11.
START_METHODS = os.environ.get("INTERLOCK_TEST_START_METHODS", " ".join(ALL_START_METHODS)).split()
if not START_METHODS or set(START_METHODS) - set(ALL_START_METHODS):
    raise ValueError("INTERLOCK_TEST_START_METHODS must name some of: fork spawn forkserver")


@pytest.fixture(params=START_METHODS)
def ctx(request):
    """A multiprocessing context for each start method."""
    return mp.get_context(request.param)


PORTABLE_REASON = "the portable backend (multiprocessing's classes) has no "


def native_core(what):
    """interlock._core for a test module about the native core's internals; on the portable
    backend the whole module is skipped, with the reason."""
    return pytest.importorskip("interlock._core", reason=PORTABLE_REASON + what)


def native_only(what):
    """Marks a test of something only the native core has (docs/platforms.md lists what the
    portable backend lacks); on the portable backend it is skipped, with the reason."""
    import interlock
    return pytest.mark.skipif(not interlock.native, reason=PORTABLE_REASON + what)


def _have_cpython_tests():
    try:
        return importlib.util.find_spec("test._test_multiprocessing") is not None
    except ImportError:
        return False


# The conformance tests run CPython's own multiprocessing tests, which some distributions
# package apart from the interpreter (Debian: libpython3.X-testsuite).
needs_cpython_tests = pytest.mark.skipif(
    not _have_cpython_tests(),
    reason="needs CPython's test package (test._test_multiprocessing); on Debian or Ubuntu: "
           "apt install libpython3.X-testsuite")


def run_child(ctx, target, *args, timeout=60):
    """Runs target(*args) in a child of ctx and returns its exit code."""
    p = ctx.Process(target=target, args=args)
    p.start()
    p.join(timeout)
    if p.is_alive():
        p.kill()
        p.join()
        pytest.fail(f"child {target.__name__} did not finish within {timeout}s")
    return p.exitcode


def kill_holder_under_waiter(holder, waiter, started, results, timeout):
    """Starts `waiter` (an acquire_robust_and_report child that sets `started`), kills
    `holder` once the waiter sleeps behind it, and returns the waiter's outcome, the seconds
    it waited, and the seconds from the kill to its acquire's return (read in the waiter, so
    that neither its start-up, slow under emulation, nor the result's trip through the queue
    counts). Both children are joined."""
    waiter.start()
    assert started.wait(timeout), "the waiter did not start"
    time.sleep(0.3)  # the waiter is asleep on the lock by now (or finds the owner dead)
    killed_at = time.monotonic()
    holder.kill()
    outcome, waited, returned_at = results.get(timeout=timeout)
    waiter.join(30)
    holder.join(30)
    return outcome, waited, returned_at - killed_at


@pytest.fixture(autouse=True)
def sigint_raises_keyboard_interrupt():
    """Tests that send SIGINT expect Python's default handler, whatever the test runner
    inherited (a shell's background job, for one, starts with SIGINT ignored)."""
    old = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, old)


@pytest.fixture(autouse=True)
def no_thread_outlives_its_test():
    """A test leaves no thread behind: threads it started (queue feeders included) must end
    with it, so that a later fork never happens in a multi-threaded process by accident."""
    before = set(threading.enumerate())
    yield
    gc.collect()  # a Queue's feeder thread stops when the Queue is collected
    deadline = time.monotonic() + 10
    for thread in set(threading.enumerate()) - before:
        thread.join(max(0.0, deadline - time.monotonic()))
    left = [t.name for t in set(threading.enumerate()) - before if t.is_alive()]
    assert not left, f"the test left threads running: {left}"


def pytest_report_header(config):
    """Names the etcd program that tests/cluster starts, and its version."""
    try:
        from interlock.cluster.testing import etcd_binary, etcd_version
    except ImportError:
        return None
    try:
        path = etcd_binary()
    except FileNotFoundError as exc:
        return f"etcd: none ({exc})"
    return f"etcd: {path} (version {etcd_version(path)})"


def _interlock_shm_entries():
    try:
        return {name for name in os.listdir("/dev/shm") if name.startswith("interlock")}
    except FileNotFoundError:
        return set()


def pytest_sessionstart(session):
    session.config._interlock_shm_before = _interlock_shm_entries()


def pytest_sessionfinish(session, exitstatus):
    """After the whole suite, crash tests included, no /dev/shm entry of interlock's remains."""
    before = getattr(session.config, "_interlock_shm_before", set())
    leaked = _interlock_shm_entries() - before
    if leaked:
        print(f"\nFAILED: interlock left /dev/shm entries behind: {sorted(leaked)}")
        session.exitstatus = 1
