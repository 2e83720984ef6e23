"""Hypothesis throws bad input at every public call. The only acceptable outcomes are success
or the documented exception (TypeError, ValueError, OverflowError, or the caller's own
exception raised from an odd __float__/__index__); never a crash, a hang or a leak."""

import errno
import gc
import math
import os
import pickle

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import interlock
from interlock import synchronize

from conftest import native_core

_core = native_core("native argument parsing and slot state to fuzz")


class Boom(Exception):
    """Raised by the odd numbers below; it must propagate unchanged."""


class IntSub(int):
    pass


class FloatSub(float):
    pass


class FloatRaises:
    def __float__(self):
        raise Boom("__float__")


class IndexRaises:
    def __index__(self):
        raise Boom("__index__")


class FloatReturnsStr:
    def __float__(self):
        return "1.0"


class IndexReturnsFloat:
    def __index__(self):
        return 1.5


class HugeIndex:
    def __index__(self):
        return 10**40


class FloatIsNan:
    def __float__(self):
        return math.nan


ALLOWED = (TypeError, ValueError, OverflowError, Boom)

ODD = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0, -0.0, 1e-320, 1e308, -1e308, 2**31, 2**32, 2**63, -(2**63), 2**64]),
    st.integers(-5, 5).map(IntSub),
    st.floats(-5, 5).map(FloatSub),
    st.sampled_from([FloatRaises(), IndexRaises(), FloatReturnsStr(), IndexReturnsFloat(),
                     HugeIndex(), FloatIsNan()]),
    st.text(max_size=3),
    st.binary(max_size=3),
    st.lists(st.integers(), max_size=2),
    st.just(object()),
)

SETTINGS = settings(max_examples=int(os.environ.get("INTERLOCK_FUZZ_EXAMPLES", "150")),
                    deadline=None, suppress_health_check=[HealthCheck.too_slow])


def attempt(call, *args, **kwargs):
    try:
        return call(*args, **kwargs)
    except ALLOWED:
        return None


def short(value):
    """Whether `value` is a timeout that cannot make a wait last long (so a wait on a
    primitive that is not ready stays short)."""
    if value is None:
        return False  # no limit
    try:
        number = float(value)
    except Exception:
        return True
    return number != number or number <= 0.01


@SETTINGS
@given(block=ODD, timeout=ODD)
def test_acquire_of_every_lock_like(block, timeout):
    for obj in (interlock.Lock(), interlock.RLock(), interlock.Semaphore(1),
                interlock.BoundedSemaphore(1), interlock.Condition()):
        got = attempt(obj.acquire, block, timeout)  # free: returns at once whatever the timeout
        if got:
            obj.release()
        got = attempt(obj.acquire, block=block, timeout=timeout)
        if got:
            obj.release()
    held = interlock.Lock()
    held.acquire()
    if short(timeout) or not block:
        assert attempt(held.acquire, block, timeout) in (False, None)


@SETTINGS
@given(value=ODD, n=ODD)
def test_semaphore_construction_and_release(value, n):
    for cls in (interlock.Semaphore, interlock.BoundedSemaphore):
        sem = attempt(cls, value)
        if sem is None:
            continue
        before = sem.get_value()
        attempt(sem.release, n)
        assert 0 <= sem.get_value() <= interlock.SEM_VALUE_MAX
        if cls is interlock.BoundedSemaphore:
            assert sem.get_value() == before  # already at its bound


@SETTINGS
@given(timeout=ODD, n=ODD)
def test_event_condition_waits_and_notify(timeout, n):
    event = interlock.Event()
    event.set()
    assert attempt(event.wait, timeout) in (True, None)
    event.clear()
    if short(timeout):
        assert attempt(event.wait, timeout) in (False, None)
    cond = interlock.Condition()
    with cond:
        attempt(cond.notify, n)
        if short(timeout):
            assert attempt(cond.wait, timeout) in (False, None)
            assert attempt(cond.wait_for, lambda: False, timeout) in (False, None)
        assert cond._lock._is_mine()  # the lock is held again, whatever happened
    attempt(interlock.Condition, n)  # not a lock: TypeError


@SETTINGS
@given(parties=ODD, timeout=ODD, action=st.sampled_from([None, print, 1, "x", object()]))
def test_barrier_construction_and_wait(parties, timeout, action):
    barrier = attempt(interlock.Barrier, parties, action if callable(action) else None, timeout)
    if barrier is not None and barrier.parties == 1:
        try:
            assert barrier.wait(timeout if short(timeout) else None) == 0
        except ALLOWED:
            pass
        except interlock.synchronize.threading.BrokenBarrierError:
            pass  # a timeout that is not a number breaks nothing; a NaN one is refused
    attempt(interlock.Barrier, 2, action)  # a non-callable action: TypeError


@SETTINGS
@given(robust=ODD, seconds=ODD, method=ODD)
def test_lock_options_context_and_settings(robust, seconds, method):
    attempt(interlock.Lock, robust=robust)
    attempt(interlock.RLock, robust=robust)
    attempt(interlock.set_owner_check_interval, seconds)
    interlock.set_owner_check_interval(0.05)
    attempt(interlock.get_context, method)
    attempt(synchronize.Lock, ctx=method)


@SETTINGS
@given(state=st.one_of(ODD, st.tuples(ODD, ODD), st.tuples(ODD, ODD, ODD, ODD, ODD)))
def test_malformed_pickled_state(state):
    for cls in (synchronize.Lock, synchronize.Semaphore, synchronize.Event,
                synchronize.Condition, synchronize.Barrier):
        with pytest.raises((TypeError, ValueError, OverflowError, Boom)):
            _core._import(cls, *state) if isinstance(state, tuple) else _core._import(cls, state)


@SETTINGS
@given(start=ODD, length=ODD, whence=ODD, shared=ODD, timeout=ODD)
def test_file_lock_arguments(tmp_path_factory, start, length, whence, shared, timeout):
    path = str(tmp_path_factory.mktemp("fuzz") / "f.lock")
    lock = attempt(interlock.FileLock, path, shared=shared, start=start, length=length,
                   whence=whence)
    if lock is not None:
        try:
            if attempt(lock.acquire, True, timeout):
                lock.release()
        except OSError as exc:  # a range relative to the end or position may start before 0
            assert exc.errno == errno.EINVAL and lock._range[2] != os.SEEK_SET
        lock.close()
    with open(path, "a+") as f:
        try:
            attempt(interlock.lockf, f,
                    interlock.file_lock.LOCK_EX | interlock.file_lock.LOCK_NB, length, start,
                    whence)
        except OSError as exc:  # as fcntl.lockf: a range the kernel refuses
            assert exc.errno in (errno.EINVAL, errno.EOVERFLOW)
        attempt(interlock.lockf, f, interlock.file_lock.LOCK_UN, 0, 0, 0)
        attempt(interlock.lockf, f, shared)  # a bad cmd


def test_unpicklable_barrier_action_is_refused_when_spawning():
    import multiprocessing as mp

    barrier = interlock.get_context("spawn").Barrier(2, action=lambda: None)
    p = mp.get_context("spawn").Process(target=print, args=(barrier,))
    with pytest.raises((pickle.PicklingError, AttributeError, TypeError)):
        p.start()
    assert p.exitcode is None  # it never started


def test_no_handles_or_descriptors_leak_from_fuzzing():
    gc.collect()
    handles, fds = _core._live_handles(), len(os.listdir("/proc/self/fd"))
    for _ in range(3):
        test_acquire_of_every_lock_like()
        test_event_condition_waits_and_notify()
        test_malformed_pickled_state()
    gc.collect()
    assert _core._live_handles() == handles
    assert len(os.listdir("/proc/self/fd")) == fds


def _fake_arena(token, header_tail, slots, seal=True):
    """A memfd laid out as an arena with the right magic, version, geometry and token, the
    rest of the header (bump, free list) and some slots taken from hypothesis."""
    import fcntl
    import mmap
    import struct

    size = _core.ARENA_SLOTS * _core.SLOT_SIZE
    fd = os.memfd_create("fuzzed-arena", os.MFD_ALLOW_SEALING)
    os.ftruncate(fd, size)
    with mmap.mmap(fd, size) as m:
        m[:64] = header_tail.ljust(64, b"\0")[:64]
        # magic, version, slot size, slot count; bump and free list stay random; the token
        m[:20] = struct.pack("<QIII", 0x31304B434F4C5449, _core.LAYOUT_VERSION,
                             _core.SLOT_SIZE, _core.ARENA_SLOTS)
        m[32:40] = struct.pack("<Q", token)
        for index, raw in slots:
            m[index * 64:(index + 1) * 64] = raw
    if seal:
        fcntl.fcntl(fd, fcntl.F_ADD_SEALS, fcntl.F_SEAL_SHRINK)
    return fd


KIND_CODES = {"Lock": 1, "RLock": 2, "Semaphore": 3, "Event": 4, "Barrier": 6}


@SETTINGS
@given(header_tail=st.binary(min_size=64, max_size=64),
       noise=st.lists(st.tuples(st.integers(1, 40), st.binary(min_size=64, max_size=64)),
                      max_size=4),
       kind=st.sampled_from(sorted(KIND_CODES)), generation=st.integers(0, 2**24 - 1),
       refs=st.integers(0, 2**32 - 1), next_free=st.integers(0, 2**32 - 1),
       body=st.binary(min_size=48, max_size=48))
def test_corrupted_segment_is_an_error_never_a_crash(header_tail, noise, kind, generation, refs,
                                                     next_free, body):
    """A segment with a valid header whose free list, counters and slot contents are garbage:
    attaching, importing a primitive from it and calling its methods must each succeed or
    raise; a slot whose tag matches but whose state is nonsense must not crash either."""
    import random
    import struct

    token = random.getrandbits(63) | 1
    index = 41  # a slot that passes the tag check, with garbage state
    tag = (generation << 8) | KIND_CODES[kind]
    target = (index, struct.pack("<IIII", tag, refs, next_free, 0) + body)
    fd = _fake_arena(token, header_tail, noise + [target])
    try:
        _core._attach_arena(fd, token)
    except (_core.SegmentError, OSError):
        return
    cls = getattr(_core, kind)
    extras = {"Barrier": (None, None)}.get(kind, ())
    try:
        obj = _core._import(cls, token, index, generation, *extras)
    except (_core.SegmentError, TypeError, ValueError):
        return
    for call in ("acquire", "release", "is_set", "set", "clear", "get_value", "wait", "locked"):
        method = getattr(obj, call, None)
        if method is None:
            continue
        try:
            method(False) if call == "acquire" else method(0) if call == "wait" else method()
        except Exception as exc:  # any Python exception is acceptable for garbage state
            assert not isinstance(exc, SystemError), exc
    del obj  # drops the reference it adopted: refs may hit zero and free the slot


def test_truncated_or_foreign_segments_are_refused():
    for size in (0, 4096, _core.ARENA_SLOTS * _core.SLOT_SIZE - 1):
        fd = os.memfd_create("short", os.MFD_ALLOW_SEALING)
        os.ftruncate(fd, size)
        with pytest.raises(_core.SegmentError):
            _core._attach_arena(fd, 1)
    fd = os.open("/proc/self/status", os.O_RDONLY)
    with pytest.raises(_core.SegmentError):
        _core._attach_arena(fd, 1)
