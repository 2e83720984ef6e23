"""Barrier on etcd.

Protocol. ``gen`` holds the current round's number and how the previous round ended
({"gen": N, "via": "round" | "reset"}); ``broken`` exists while the barrier is broken. A party
arriving in round N claims the lowest free slot ``a/<N>/<slot>`` with a put on its lease that
compares gen's value, broken's absence and the slot's absence: the slot is its index, unique
in the round. The party that claims the last slot checks that every slot is still there, runs
the action, then ends the round in one transaction: gen becomes N + 1 and the round's slots
are deleted. Every other party watches the primitive from the revision at which it arrived:

* gen moved on "round": released, return the index;
* gen moved on "reset", or broken appeared: BrokenBarrierError;
* a slot of its round deleted without gen moving: that party's lease expired (it died, or was
  cut off): the barrier breaks, for everyone, within the lease TTL.

A timeout, an exception from the action, or an interrupted wait (Ctrl-C) breaks the barrier,
as threading.Barrier does; abort() breaks it; reset() starts a new round marked "reset".
"""

from __future__ import annotations

import json
import threading
from typing import Any, Callable, Dict, List, Optional, Tuple

from ._errors import LeaseNotFound
from ._keys import prefix_end
from ._primitive import (Primitive, compare, deadline_of, delete, get, get_prefix, load_json,
                         put)


class Barrier(Primitive):
    """A barrier shared by every process that asks for its name: see multiprocessing.Barrier.
    ``wait(timeout=None)`` returns a distinct index in range(parties); ``action`` runs in one
    party per round before any is released; ``abort()``, ``reset()``, ``broken``,
    ``n_waiting`` and ``parties`` as in threading.Barrier. A party whose process dies while
    waiting breaks the barrier for the others (BrokenBarrierError) within the lease TTL."""

    kind = "Barrier"

    def __init__(self, cluster: Any, name: str, parties: int,
                 action: Optional[Callable[[], Any]] = None,
                 timeout: Optional[float] = None) -> None:
        super().__init__(cluster, name)
        if isinstance(parties, bool) or not isinstance(parties, int):
            raise TypeError(f"parties must be an int, not {type(parties).__name__}")
        if parties < 1:
            raise ValueError("parties must be > 0")
        if action is not None and not callable(action):
            raise TypeError(f"action must be callable or None, not {type(action).__name__}")
        if timeout is not None:
            deadline_of(timeout)  # validates it
        self._parties = parties
        self._action = action
        self._timeout = timeout
        self._register()

    def _params(self) -> Dict[str, Any]:
        return {"parties": self._parties}

    def __reduce__(self) -> Tuple[Any, ...]:
        from ._primitive import _rebuild

        return (_rebuild_barrier, (_rebuild, self._cluster._state(), self.name,
                                   self._parties, self._action, self._timeout))

    @property
    def parties(self) -> int:
        return self._parties

    # ---- state --------------------------------------------------------------------------

    def _look(self) -> Tuple[int, bytes, bool, List[Any], int]:
        """(round, gen's raw value, broken, this round's slot keys, revision)."""
        t = self._read(get(self._key("gen")), get(self._key("broken")),
                       get_prefix(self._key("a", "")))
        raw = t.value(0) or b""
        gen = int(load_json(raw, {"gen": 0})["gen"])
        mine = self._key("a", str(gen), "")
        slots = [kv for kv in t.kvs(2) if kv.key.startswith(mine)]
        return gen, raw, bool(t.kvs(1)), slots, t.revision

    @property
    def broken(self) -> bool:
        return bool(self._read(get(self._key("broken"))).kvs(0))

    @property
    def n_waiting(self) -> int:
        gen, _, broken, slots, _ = self._look()
        return 0 if broken else len(slots)

    def abort(self) -> None:
        self._txn([], [put(self._key("broken"), b"1")])

    def reset(self) -> None:
        while True:
            gen, raw, _, _, _ = self._look()
            t = self._txn([compare(self._key("gen"), "VALUE", "EQUAL", raw) if raw else
                           compare(self._key("gen"), "CREATE", "EQUAL", 0)],
                          [put(self._key("gen"), self._gen_record(gen + 1, "reset")),
                           delete(self._key("broken")),
                           *self._clear_round(gen)])
            if t.succeeded:
                return

    def _gen_record(self, gen: int, via: str) -> bytes:
        return json.dumps({"gen": gen, "via": via}).encode()

    def _clear_round(self, gen: int) -> List[Any]:
        slots = self._key("a", str(gen), "")
        return [delete(slots, prefix_end(slots))]

    def _gen_unchanged(self, raw: bytes) -> Any:
        return (compare(self._key("gen"), "VALUE", "EQUAL", raw) if raw else
                compare(self._key("gen"), "CREATE", "EQUAL", 0))

    # ---- waiting ------------------------------------------------------------------------

    def wait(self, timeout: Optional[float] = None) -> int:
        if timeout is None:
            timeout = self._timeout
        deadline = deadline_of(timeout)
        session = self._session()
        while True:
            gen, raw, broken, slots, revision = self._look()
            if broken:
                raise threading.BrokenBarrierError
            taken = {int(kv.key.rsplit(b"/", 1)[1]) for kv in slots}
            free = [i for i in range(self._parties) if i not in taken]
            if not free:
                # The round is full and its last party is finishing it: wait for the next.
                if self._wait_for_change(self._key("gen"), b"", revision, deadline) is False:
                    self._break()
                    raise threading.BrokenBarrierError
                continue
            index = free[0]
            slot = self._key("a", str(gen), f"{index:08d}")
            op = session.op_id().encode()
            try:
                t = self._txn([self._gen_unchanged(raw),
                               compare(self._key("broken"), "CREATE", "EQUAL", 0),
                               compare(slot, "CREATE", "EQUAL", 0)],
                              [put(slot, op, session.lease())], [get(slot)])
            except LeaseNotFound:
                continue  # refused whole: again, on a new lease
            if t.succeeded or t.value(0) == op:
                break
        try:
            if index == self._parties - 1:
                self._finish_round(gen, raw)
            else:
                self._await_round(gen, t.revision, deadline)
        except threading.BrokenBarrierError:
            raise  # broken already (whoever decided it has broken it)
        except BaseException:
            self._break()  # nobody waits for a party that left on an exception (Ctrl-C, the
            raise          # action's own), as threading.Barrier
        return index

    def _finish_round(self, gen: int, raw: bytes) -> None:
        slots = self._key("a", str(gen), "")
        present = self._read(get_prefix(slots, keys_only=True)).kvs(0)
        if len(present) < self._parties:
            self._break()  # a party's slot vanished: it is gone, the round cannot complete
            raise threading.BrokenBarrierError
        if self._action is not None:
            self._action()
        t = self._txn([self._gen_unchanged(raw),
                       compare(self._key("broken"), "CREATE", "EQUAL", 0)],
                      [put(self._key("gen"), self._gen_record(gen + 1, "round")),
                       *self._clear_round(gen)])
        if not t.succeeded:
            raise threading.BrokenBarrierError  # broken or reset meanwhile

    def _await_round(self, gen: int, revision: int, deadline: Optional[float]) -> None:
        gen_key, broken_key = self._key("gen"), self._key("broken")
        slots = self._key("a", str(gen), "")
        outcome: List[str] = []

        def decide(events: List[Any]) -> bool:
            moved = [e for e in events if e.kv.key == gen_key and e.type == 0]
            if moved:
                record = load_json(moved[-1].kv.value, {})
                if record.get("gen", 0) > gen:
                    outcome.append("released" if record.get("via") == "round" else "reset")
                    return True
            if any(e.kv.key == broken_key and e.type == 0 for e in events):
                outcome.append("broken")
                return True
            if any(e.type == 1 and e.kv.key.startswith(slots) for e in events):
                outcome.append("party gone")  # a slot vanished without the round ending
                return True
            return False

        prefix = self._prefix
        while not outcome:
            if self._wait_for_change(prefix, prefix_end(prefix), revision, deadline,
                                     decide) is False:
                self._break()  # timed out: the barrier breaks, as threading.Barrier's does
                raise threading.BrokenBarrierError
            if outcome:
                break
            # The changes since `revision` cannot all be seen: judge from the state itself.
            now, raw, broken, _, revision = self._look()
            if now > gen:
                outcome.append("released" if load_json(raw, {}).get("via") == "round"
                               else "reset")
            elif broken:
                outcome.append("broken")
        if outcome[0] == "party gone":
            self._break()
        if outcome[0] != "released":
            raise threading.BrokenBarrierError

    def _break(self) -> None:
        try:
            self.abort()
        except Exception:
            pass

    def __repr__(self) -> str:
        where = f"<interlock.cluster.Barrier {self.name!r} at {id(self):#x}"
        try:
            if self.broken:
                return f"{where}: broken>"
            return f"{where}: waiters={self.n_waiting}/{self.parties}>"
        except Exception:
            return f"{where}>"


def _rebuild_barrier(rebuild: Any, state: Any, name: str, parties: int, action: Any,
                     timeout: Any) -> Barrier:
    barrier = rebuild(state, "Barrier", name, {"parties": parties})
    barrier._action, barrier._timeout = action, timeout
    return barrier  # type: ignore[no-any-return]
