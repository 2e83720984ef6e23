"""Hypothesis state machines: random operation sequences against a simple model."""

import threading

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

import interlock


class SemaphoreModel(RuleBasedStateMachine):
    """A BoundedSemaphore behaves as a counter in [0, bound]."""

    def __init__(self):
        super().__init__()
        self.bound = 3
        self.sem = interlock.BoundedSemaphore(self.bound)
        self.value = self.bound

    @rule(timeout=st.sampled_from([None, 0, -1, 0.001]))
    def acquire(self, timeout):
        expected = self.value > 0
        if timeout is None and not expected:
            assert self.sem.acquire(False) is False
            return
        assert self.sem.acquire(True, timeout) is expected
        self.value -= expected

    @rule(n=st.integers(1, 3))
    def release(self, n):
        if self.value + n > self.bound:
            try:
                self.sem.release(n)
            except ValueError:
                return
            raise AssertionError("over-release accepted")
        self.sem.release(n)
        self.value += n

    @rule()
    def release_from_thread(self):
        errors = []

        def go():
            try:
                self.sem.release()
            except ValueError:
                errors.append(1)

        t = threading.Thread(target=go)
        t.start()
        t.join()
        if errors:
            assert self.value == self.bound
        else:
            self.value += 1

    @invariant()
    def value_matches(self):
        assert self.sem.get_value() == self.value
        assert repr(self.sem) == f"<BoundedSemaphore(value={self.value}, maxvalue={self.bound})>"


class RLockModel(RuleBasedStateMachine):
    """An RLock's depth, owner and errors follow the model."""

    def __init__(self):
        super().__init__()
        self.lock = interlock.RLock()
        self.depth = 0

    @rule(block=st.booleans())
    def acquire(self, block):
        assert self.lock.acquire(block) is True
        self.depth += 1

    @rule()
    def release(self):
        if self.depth == 0:
            try:
                self.lock.release()
            except AssertionError:
                return
            raise AssertionError("release of unowned RLock accepted")
        self.lock.release()
        self.depth -= 1

    @precondition(lambda self: self.depth > 0)
    @rule()
    def other_thread_cannot_take_or_release(self):
        seen = []

        def go():
            seen.append(self.lock.acquire(False))
            try:
                self.lock.release()
            except AssertionError:
                seen.append("refused")

        t = threading.Thread(target=go)
        t.start()
        t.join()
        assert seen == [False, "refused"]

    @invariant()
    def state_matches(self):
        assert self.lock.locked() == (self.depth > 0)
        expected = f"<RLock(MainProcess, {self.depth})>" if self.depth else "<RLock(None, 0)>"
        assert repr(self.lock) == expected


TestSemaphoreModel = SemaphoreModel.TestCase
TestSemaphoreModel.settings = settings(max_examples=40, stateful_step_count=25, deadline=None)
TestRLockModel = RLockModel.TestCase
TestRLockModel.settings = settings(max_examples=40, stateful_step_count=25, deadline=None)
