"""Differential tests: CPython's multiprocessing is the oracle.

Each hypothesis state machine builds one interlock primitive and the matching
multiprocessing primitive, then applies the same random operations to both, from three
actors: the main thread, a second thread of this process, and a forked helper process. Every
outcome is compared: return values, exception types and messages, ``get_value()`` and reprs.

Only non-blocking or briefly timed operations are used, and every call into another actor
is bounded, so a divergence fails the test and never hangs it.

One documented divergence is modelled rather than copied (docs/differences.md): CPython
keeps a Lock's "holder" count per process object, so once a Lock is released by a process
other than the one that acquired it, CPython's repr (and Condition's ownership check on a
Condition built on a plain Lock) names the wrong owner. From that point the machine checks
interlock against the true owner instead.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import queue
import threading
from typing import Any, Callable, Optional, Tuple

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, precondition, rule

import interlock
import interlock.synchronize as isync

FORK = mp.get_context("fork")
ANSWER_TIMEOUT = 20.0
EXAMPLES = int(os.environ.get("INTERLOCK_DIFF_EXAMPLES", "30"))
SETTINGS = settings(
    max_examples=EXAMPLES,
    stateful_step_count=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)

Outcome = Tuple[Any, ...]

# Timeouts that must behave as "do not wait": zero, negative (the spec says "equivalent to
# a timeout of zero"), and a short positive one for a blocking attempt that may fail.
TIMEOUTS = st.sampled_from([0, 0.0, -1, -0.5, -1e9, 0.005])


def perform(prim: Any, op: str, arg: Any) -> Outcome:
    """Applies one operation to one primitive and describes what happened."""
    try:
        if op == "acquire_nb":
            result = prim.acquire(False)
        elif op == "acquire_nb_timeout":  # the timeout is ignored when block is false
            result = prim.acquire(False, arg)
        elif op == "acquire_timeout":
            result = prim.acquire(True, arg)
        elif op == "acquire_kw_timeout":
            result = prim.acquire(timeout=arg)
        elif op == "release":
            result = prim.release()
        elif op == "get_value":
            result = prim.get_value()
        elif op == "repr":
            result = repr(prim)
        elif op == "set":
            result = prim.set()
        elif op == "clear":
            result = prim.clear()
        elif op == "is_set":
            result = prim.is_set()
        elif op == "wait":
            result = prim.wait(arg)
        elif op == "notify":
            result = prim.notify(arg)
        elif op == "notify_all":
            result = prim.notify_all()
        else:
            raise AssertionError(f"unknown operation {op}")
    except Exception as exc:  # every outcome, including errors, is compared
        return ("raise", type(exc).__name__, str(exc))
    return ("ok", result)


def _serve(conn: Any, ours: Any, theirs: Any) -> None:
    """The helper process: applies each requested operation to both primitives."""
    while True:
        request = conn.recv()
        if request is None:
            return
        op, arg, both = request
        conn.send((perform(ours, op, arg), perform(theirs, op, arg) if both else None))


class ThreadActor:
    """A long-lived second thread of this process (so what it holds stays held)."""

    def __init__(self) -> None:
        self.requests: "queue.Queue[Optional[Callable[[], Any]]]" = queue.Queue()
        self.answers: "queue.Queue[Any]" = queue.Queue()
        self.thread = threading.Thread(target=self._loop, name="Actor", daemon=True)
        self.thread.start()

    def _loop(self) -> None:
        while True:
            job = self.requests.get()
            if job is None:
                return
            self.answers.put(job())

    def call(self, job: Callable[[], Any]) -> Any:
        self.requests.put(job)
        try:
            return self.answers.get(timeout=ANSWER_TIMEOUT)
        except queue.Empty:
            raise AssertionError("the thread actor did not answer (hung operation)") from None

    def stop(self) -> None:
        self.requests.put(None)
        self.thread.join(ANSWER_TIMEOUT)


class ProcessActor:
    """A forked helper process holding both primitives."""

    def __init__(self, ours: Any, theirs: Any) -> None:
        self.conn, child_conn = FORK.Pipe()
        self.process = FORK.Process(target=_serve, args=(child_conn, ours, theirs), daemon=True)
        self.process.start()
        child_conn.close()

    def call(self, op: str, arg: Any, both: bool) -> Any:
        self.conn.send((op, arg, both))
        if not self.conn.poll(ANSWER_TIMEOUT):
            raise AssertionError("the helper process did not answer (hung operation)")
        return self.conn.recv()

    def stop(self) -> None:
        try:
            self.conn.send(None)
        except OSError:
            pass
        self.process.join(ANSWER_TIMEOUT)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()
        self.conn.close()


ACTORS = st.sampled_from(["main", "thread", "process"])
PROCESS_OF = {"main": "parent", "thread": "parent", "process": "helper"}


class Differential(RuleBasedStateMachine):
    """Shared machinery: the pair of primitives, the actors, the comparison."""

    ours: Any
    theirs: Any

    def __init__(self) -> None:
        super().__init__()
        self.started = False
        # For the modelled divergence (see the module docstring): who holds the lock, and
        # whether CPython's per-process holder count has gone stale.
        self.holder: Optional[str] = None
        self.depth = 0
        self.cpython_count_stale = False

    def start_actors(self) -> None:
        # Fork first, while this process has no extra thread.
        self.helper = ProcessActor(self.ours, self.theirs)
        self.second = ThreadActor()
        self.started = True

    def teardown(self) -> None:
        if self.started:
            self.second.stop()
            self.helper.stop()

    def run(self, actor: str, op: str, arg: Any = None) -> Tuple[Outcome, Outcome]:
        if actor == "main":
            return perform(self.ours, op, arg), perform(self.theirs, op, arg)
        if actor == "thread":
            return self.second.call(
                lambda: (perform(self.ours, op, arg), perform(self.theirs, op, arg))
            )
        return self.helper.call(op, arg, both=True)

    def run_ours(self, actor: str, op: str, arg: Any = None) -> Outcome:
        """Only interlock's side: used once CPython's side has gone stale, where its
        Condition.wait() could block forever re-taking a lock it wrongly believes it held."""
        if actor == "main":
            return perform(self.ours, op, arg)
        if actor == "thread":
            return self.second.call(lambda: perform(self.ours, op, arg))
        outcome: Outcome = self.helper.call(op, arg, both=False)[0]
        return outcome

    def same(self, actor: str, op: str, arg: Any = None) -> Outcome:
        ours, theirs = self.run(actor, op, arg)
        assert ours == theirs, f"{op}({arg!r}) by {actor}: interlock {ours} != CPython {theirs}"
        return ours

    # The modelled lock state, kept for primitives with an owner.
    def note_acquire(self, actor: str, outcome: Outcome) -> None:
        if outcome == ("ok", True):
            assert self.holder in (None, actor)
            self.holder = actor
            self.depth += 1

    def note_release(self, actor: str, outcome: Outcome, recursive: bool) -> None:
        if outcome[0] != "ok":
            return
        if not recursive and self.holder is not None:
            if PROCESS_OF[self.holder] != PROCESS_OF[actor]:
                self.cpython_count_stale = True
        self.depth = self.depth - 1 if recursive else 0
        if self.depth == 0:
            self.holder = None

    def expected_owner(self, actor: str) -> str:
        """The owner as the repr names it, from the model."""
        if self.holder is None:
            return "None"
        if self.holder == actor:
            name = "MainProcess" if actor != "process" else "<helper>"
            return name + ("|Actor" if actor == "thread" else "")
        if PROCESS_OF[self.holder] == PROCESS_OF[actor]:
            return "SomeOtherThread"
        return "SomeOtherProcess"


class LockDiff(Differential):
    """multiprocessing.Lock: acquire/release from any actor, reprs, error messages."""

    def make(self) -> Tuple[Any, Any]:
        return isync.Lock(ctx=FORK), FORK.Lock()

    @initialize()
    def create(self) -> None:
        self.ours, self.theirs = self.make()
        self.start_actors()

    @rule(actor=ACTORS)
    def acquire_nb(self, actor: str) -> None:
        self.note_acquire(actor, self.same(actor, "acquire_nb"))

    @rule(actor=ACTORS, timeout=TIMEOUTS)
    def acquire_nb_timeout(self, actor: str, timeout: float) -> None:
        self.note_acquire(actor, self.same(actor, "acquire_nb_timeout", timeout))

    @rule(actor=ACTORS, timeout=TIMEOUTS)
    def acquire_timeout(self, actor: str, timeout: float) -> None:
        self.note_acquire(actor, self.same(actor, "acquire_timeout", timeout))

    @rule(actor=ACTORS, timeout=TIMEOUTS)
    def acquire_kw_timeout(self, actor: str, timeout: float) -> None:
        self.note_acquire(actor, self.same(actor, "acquire_kw_timeout", timeout))

    @rule(actor=ACTORS)
    def release(self, actor: str) -> None:
        self.note_release(actor, self.same(actor, "release"), recursive=False)

    @rule(actor=ACTORS)
    def repr_(self, actor: str) -> None:
        # (On the portable backend both are multiprocessing's Lock, stale count included.)
        if not self.cpython_count_stale or not interlock.native:
            self.same(actor, "repr")
            return
        ours = self.run_ours(actor, "repr")
        expected = self.expected_owner(actor)
        if expected == "<helper>":
            assert ours[1].startswith("<Lock(owner=") and "Process-" in ours[1], ours
        else:
            assert ours == ("ok", f"<Lock(owner={expected})>"), (ours, expected)


class RLockDiff(LockDiff):
    """multiprocessing.RLock: nesting, ownership errors, reprs with the recursion count."""

    def make(self) -> Tuple[Any, Any]:
        return isync.RLock(ctx=FORK), FORK.RLock()

    @rule(actor=ACTORS)
    def release(self, actor: str) -> None:
        self.note_release(actor, self.same(actor, "release"), recursive=True)

    @rule(actor=ACTORS)
    def repr_(self, actor: str) -> None:
        self.same(actor, "repr")  # RLock ownership never goes stale: only the owner releases


SEMAPHORE_VALUES = st.one_of(
    st.integers(0, 3),
    st.sampled_from([isync.SEM_VALUE_MAX, isync.SEM_VALUE_MAX - 1]),
)


class SemaphoreDiff(LockDiff):
    """multiprocessing.Semaphore, including values at SEM_VALUE_MAX."""

    bounded = False

    def make_pair(self, value: int) -> Tuple[Any, Any]:
        if self.bounded:
            return isync.BoundedSemaphore(value, ctx=FORK), FORK.BoundedSemaphore(value)
        return isync.Semaphore(value, ctx=FORK), FORK.Semaphore(value)

    @initialize(value=SEMAPHORE_VALUES)
    def create(self, value: int) -> None:  # type: ignore[override]
        self.ours, self.theirs = self.make_pair(value)
        self.start_actors()

    def note_acquire(self, actor: str, outcome: Outcome) -> None:
        pass  # a semaphore has no owner

    @rule(actor=ACTORS)
    def release(self, actor: str) -> None:
        self.same(actor, "release")

    @rule(actor=ACTORS)
    def get_value(self, actor: str) -> None:
        self.same(actor, "get_value")

    @rule(actor=ACTORS)
    def repr_(self, actor: str) -> None:
        self.same(actor, "repr")


class BoundedSemaphoreDiff(SemaphoreDiff):
    """multiprocessing.BoundedSemaphore: over-release is refused with CPython's error."""

    bounded = True


class EventDiff(Differential):
    """multiprocessing.Event: set/clear/is_set/wait with zero, negative and short timeouts."""

    @initialize()
    def create(self) -> None:
        self.ours, self.theirs = isync.Event(ctx=FORK), FORK.Event()
        self.start_actors()

    @rule(actor=ACTORS, op=st.sampled_from(["set", "clear", "is_set"]))
    def flag(self, actor: str, op: str) -> None:
        self.same(actor, op)

    @rule(actor=ACTORS, timeout=TIMEOUTS)
    def wait(self, actor: str, timeout: float) -> None:
        self.same(actor, "wait", timeout)


class ConditionDiff(Differential):
    """multiprocessing.Condition without waiters: notify, notify_all, wait(0), ownership
    errors, and its repr, over an RLock or a plain Lock."""

    @initialize(plain_lock=st.booleans())
    def create(self, plain_lock: bool) -> None:
        self.plain_lock = plain_lock
        if plain_lock:
            self.ours = isync.Condition(isync.Lock(ctx=FORK), ctx=FORK)
            self.theirs = FORK.Condition(FORK.Lock())
        else:
            self.ours, self.theirs = isync.Condition(ctx=FORK), FORK.Condition()
        self.start_actors()

    def owner_dependent(self, actor: str, op: str, arg: Any = None) -> None:
        if not self.cpython_count_stale:
            self.same(actor, op, arg)
            return
        if not interlock.native:
            # Both are multiprocessing's Condition, whose stale count can make a wait block
            # for good in re-acquiring a lock held elsewhere: nothing to compare.
            return
        ours = self.run_ours(actor, op, arg)
        if self.holder == actor:
            assert ours[0] == "ok", ours
        else:
            assert ours[:2] == ("raise", "AssertionError"), ours

    @rule(actor=ACTORS)
    def acquire_nb(self, actor: str) -> None:
        self.note_acquire(actor, self.same(actor, "acquire_nb"))

    @rule(actor=ACTORS, timeout=TIMEOUTS)
    def acquire_timeout(self, actor: str, timeout: float) -> None:
        self.note_acquire(actor, self.same(actor, "acquire_timeout", timeout))

    @rule(actor=ACTORS)
    def release(self, actor: str) -> None:
        outcome = self.same(actor, "release")
        self.note_release(actor, outcome, recursive=not self.plain_lock)

    @rule(actor=ACTORS, n=st.integers(0, 3))
    def notify(self, actor: str, n: int) -> None:
        self.owner_dependent(actor, "notify", n)

    @rule(actor=ACTORS)
    def notify_all(self, actor: str) -> None:
        self.owner_dependent(actor, "notify_all")

    @rule(actor=ACTORS, timeout=st.sampled_from([0, -1, 0.005]))
    def wait(self, actor: str, timeout: float) -> None:
        self.owner_dependent(actor, "wait", timeout)

    @precondition(lambda self: not self.cpython_count_stale)
    @rule(actor=ACTORS)
    def repr_(self, actor: str) -> None:
        self.same(actor, "repr")


TestLockDiff = LockDiff.TestCase
TestRLockDiff = RLockDiff.TestCase
TestSemaphoreDiff = SemaphoreDiff.TestCase
TestBoundedSemaphoreDiff = BoundedSemaphoreDiff.TestCase
TestEventDiff = EventDiff.TestCase
TestConditionDiff = ConditionDiff.TestCase
for _case in (
    TestLockDiff,
    TestRLockDiff,
    TestSemaphoreDiff,
    TestBoundedSemaphoreDiff,
    TestEventDiff,
    TestConditionDiff,
):
    _case.settings = SETTINGS


def test_interlock_exports_the_same_bound() -> None:
    from multiprocessing import synchronize

    assert interlock.SEM_VALUE_MAX == synchronize.SEM_VALUE_MAX
