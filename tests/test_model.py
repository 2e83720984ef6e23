"""Hypothesis state machines: random operation sequences against a simple model."""

import queue
import threading

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

import interlock

from conftest import native_only


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


class _Actor:
    """A thread that runs the calls it is given, one at a time, so that its holds stay its own
    across rules (an RWLock's holds belong to a thread)."""

    def __init__(self):
        self.calls = queue.Queue()
        self.results = queue.Queue()
        self.thread = threading.Thread(target=self._run)
        self.thread.start()

    def _run(self):
        while True:
            call = self.calls.get()
            if call is None:
                return
            try:
                self.results.put(("ok", call()))
            except Exception as exc:
                self.results.put(("raised", type(exc)))

    def run(self, call):
        self.calls.put(call)
        return self.results.get(timeout=30)

    def stop(self):
        self.calls.put(None)
        self.thread.join(30)


class RWLockModel(RuleBasedStateMachine):
    """An RWLock's holds, owners and errors, over two threads, follow the model: reads per
    thread and one writer. Waits are zero or non-blocking, so no writer is left waiting."""

    ROBUST = False

    def __init__(self):
        super().__init__()
        self.rw = interlock.RWLock(prefer="writers", robust=self.ROBUST)
        self.actors = [_Actor(), _Actor()]
        self.reads = [0, 0]
        self.writer = None

    def teardown(self):
        for actor in self.actors:
            actor.stop()

    @rule(who=st.sampled_from([0, 1]), how=st.sampled_from(["block=False", "timeout=0", "view"]))
    def acquire_read(self, who, how):
        call = {"block=False": lambda: self.rw.acquire_read(False),
                "timeout=0": lambda: self.rw.acquire_read(timeout=0),
                "view": lambda: self.rw.read_lock().acquire(False)}[how]
        expected = self.writer is None
        assert self.actors[who].run(call) == ("ok", expected)
        self.reads[who] += expected

    @rule(who=st.sampled_from([0, 1]), how=st.sampled_from(["block=False", "timeout=-1"]))
    def acquire_write(self, who, how):
        call = (lambda: self.rw.acquire_write(False)) if how == "block=False" else \
            (lambda: self.rw.acquire_write(timeout=-1))
        expected = self.writer is None and sum(self.reads) == 0
        assert self.actors[who].run(call) == ("ok", expected)
        if expected:
            self.writer = who

    def _refusal(self, mine, anyone):
        """What a release must raise: None when allowed, else Lock's or RLock's error."""
        if mine:
            return None
        return AssertionError if anyone else ValueError

    @rule(who=st.sampled_from([0, 1]))
    def release_read(self, who):
        error = self._refusal(self.reads[who] > 0, sum(self.reads) > 0)
        outcome = self.actors[who].run(self.rw.release_read)
        if error is None:
            assert outcome == ("ok", None)
            self.reads[who] -= 1
        else:
            assert outcome == ("raised", error)

    @rule(who=st.sampled_from([0, 1]), downgrade=st.booleans())
    def release_write(self, who, downgrade):
        error = self._refusal(self.writer == who, self.writer is not None)
        outcome = self.actors[who].run(self.rw.downgrade if downgrade else self.rw.release_write)
        if error is None:
            assert outcome == ("ok", None)
            self.writer = None
            self.reads[who] += downgrade
        else:
            assert outcome == ("raised", error)

    @invariant()
    def state_matches(self):
        # A robust lock counts the processes that read (here one), a plain one the holds.
        readers = min(sum(self.reads), 1) if self.ROBUST else sum(self.reads)
        assert self.rw._readers() == readers
        assert self.rw.write_lock().locked() == (self.writer is not None)
        assert self.rw.read_lock().locked() == (sum(self.reads) > 0)
        assert self.rw._waiting_writers() == 0
        for who, actor in enumerate(self.actors):
            assert actor.run(self.rw._own_reads) == ("ok", self.reads[who])
            assert actor.run(self.rw._owns_write) == ("ok", self.writer == who)


TestSemaphoreModel = SemaphoreModel.TestCase
TestSemaphoreModel.settings = settings(max_examples=40, stateful_step_count=25, deadline=None)
TestRLockModel = RLockModel.TestCase
TestRLockModel.settings = settings(max_examples=40, stateful_step_count=25, deadline=None)
TestRWLockModel = RWLockModel.TestCase
TestRWLockModel.settings = settings(max_examples=40, stateful_step_count=25, deadline=None)


class RobustRWLockModel(RWLockModel):
    """The same model for RWLock(robust=True), whose protocol is another one."""

    ROBUST = True


TestRobustRWLockModel = native_only("robust locks")(RobustRWLockModel.TestCase)
TestRobustRWLockModel.settings = settings(max_examples=40, stateful_step_count=25,
                                          deadline=None)
