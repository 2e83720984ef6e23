"""Bad input gets the documented exception, never a crash."""

import math

import pytest

import interlock
from conftest import native_only
from interlock import synchronize


def all_acquirers():
    return [
        interlock.Lock(),
        interlock.RLock(),
        interlock.Semaphore(1),
        interlock.BoundedSemaphore(1),
        interlock.Condition(),
    ]


@pytest.mark.parametrize("obj", all_acquirers(), ids=lambda o: type(o).__name__)
def test_timeout_type_errors_match_cpython(obj):
    with pytest.raises(TypeError, match="must be real number, not str"):
        obj.acquire(timeout="1")
    with pytest.raises(TypeError):
        obj.acquire(True, [])


@pytest.mark.parametrize("obj", all_acquirers(), ids=lambda o: type(o).__name__)
@pytest.mark.parametrize("block", ["x", 1.5, None, object()])
def test_block_must_be_integer_like(obj, block):
    with pytest.raises(TypeError):
        obj.acquire(block)


@pytest.mark.parametrize("obj", all_acquirers(), ids=lambda o: type(o).__name__)
def test_nan_timeout_is_value_error(obj):
    with pytest.raises(ValueError, match="NaN"):
        obj.acquire(timeout=math.nan)


def test_bad_argument_binding_raises_type_error():
    lock = interlock.Lock()
    for call in (lambda: lock.acquire(True, 1, 2), lambda: lock.acquire(blocking=True),
                 lambda: lock.acquire(True, block=True), lambda: lock.release(1),
                 lambda: lock.locked(1)):
        with pytest.raises(TypeError):
            call()


@native_only("native argument binding (multiprocessing's methods word these errors otherwise)")
def test_argument_binding_errors():
    lock = interlock.Lock()
    with pytest.raises(TypeError, match="at most 2 arguments"):
        lock.acquire(True, 1, 2)
    with pytest.raises(TypeError, match="unexpected keyword argument 'blocking'"):
        lock.acquire(blocking=True)
    with pytest.raises(TypeError, match="given by name"):
        lock.acquire(True, block=True)
    with pytest.raises(TypeError, match="takes no arguments"):
        lock.release(1)
    with pytest.raises(TypeError, match="takes no arguments"):
        lock.locked(1)


def test_keywords_and_int_likes_accepted():
    lock = interlock.Lock()
    assert lock.acquire(block=1, timeout=1) is True
    assert lock.acquire(block=0) is False

    class Idx:
        def __index__(self):
            return 0

    assert lock.acquire(Idx()) is False
    assert lock.acquire(True, timeout=0.01) is False
    lock.release()


def test_huge_block_is_overflow_error():
    with pytest.raises(OverflowError):
        interlock.Lock().acquire(2**100)


@pytest.mark.parametrize("cls", [synchronize.Semaphore, synchronize.BoundedSemaphore])
def test_semaphore_values(cls):
    with pytest.raises(ValueError, match=">= 0"):
        cls(-1)
    with pytest.raises(OverflowError):
        cls(interlock.SEM_VALUE_MAX + 1)
    with pytest.raises(OverflowError):
        cls(2**100)
    with pytest.raises(TypeError):
        cls(1.5)
    with pytest.raises(TypeError):
        cls("3")
    assert cls(True).get_value() == 1


def test_release_n_validation():
    sem = interlock.Semaphore(0)
    with pytest.raises(ValueError):
        sem.release(-1)
    with pytest.raises(TypeError):
        sem.release(1.0)
    with pytest.raises(ValueError, match="released too many times"):
        sem.release(2**40)
    with pytest.raises(ValueError, match="released too many times"):
        sem.release(2**100)
    assert sem.get_value() == 0


def test_ctx_must_be_a_context():
    with pytest.raises(TypeError, match="multiprocessing context"):
        synchronize.Lock(ctx="fork")


@native_only("native types, whose methods check that __init__ ran")
def test_uninitialized_instances_raise_instead_of_crashing():
    for cls in (synchronize.Lock, synchronize.RLock, synchronize.Semaphore, synchronize.Event,
                synchronize.Condition, synchronize.Barrier):
        obj = cls.__new__(cls)
        for name in ("acquire", "release", "wait", "is_set", "notify"):
            method = getattr(obj, name, None)
            if method is not None:
                with pytest.raises((RuntimeError, TypeError)):
                    method()


@native_only("native methods on the type (multiprocessing binds them per instance)")
def test_methods_refuse_foreign_self():
    with pytest.raises(TypeError):
        synchronize.Lock.acquire(interlock.Semaphore())
    with pytest.raises(TypeError):
        synchronize.Lock.release(object())


@native_only("native pickle state (slot references) to check")
def test_malformed_pickle_state_is_rejected():
    from interlock import _core

    lock = interlock.Lock()
    token, index, generation, _ = lock._slot_info()
    for state in [(), (1, 2), ("junk", 1, 1), (token, index, generation, "extra"), (None,) * 3]:
        with pytest.raises((TypeError, ValueError)):
            _core._import(synchronize.Lock, *state)
    with pytest.raises(TypeError):
        _core._import("not a type", token, index, generation)
    del lock
