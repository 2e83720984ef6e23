"""How primitives are laid out in etcd: every key, the records written in them, the etcd
terms used to read them, and the checks on names.

Every key of a cluster primitive lives under ``/<namespace>/<name>/``::

    /ns/name/meta             what the primitive is: {"kind": "Lock", ...} (created once)
    /ns/name/q/<owner-id>     Lock, RLock: one key per holder or waiter (on its lease)
    /ns/name/holder           Lock, RLock: {"key", "state": held | released | handed, "op"}
    /ns/name/r/<owner-id>     Lock, Semaphore: a release made on the owner's behalf elsewhere
    /ns/name/total            Semaphore: permits in existence outside holders' hands
    /ns/name/h/<owner-id>     Semaphore: one key per permit held (on the holder's lease)
    /ns/name/flag             Event: "1" set, "0" clear
    /ns/name/sets             Event: written again by every set() (its mod revision: the last)
    /ns/name/w/<owner-id>     Condition: one key per waiter (on its lease); "n" once notified
    /ns/name/lock/...         Condition: its own RLock when none was given
    /ns/name/q/<owner-id>     RWLock: one key per holder or waiter, "r" (read) or "w" (write)
    /ns/name/writer           RWLock: {"key", "state": held | released | reported}
    /ns/name/gen              Barrier: {"gen": N, "via": "round" | "reset"}
    /ns/name/broken           Barrier: present while broken
    /ns/name/a/<gen>/<owner-id> Barrier: a party arrived in round `gen` (index: creation order)
    /ns/name/n/<gen>          Barrier: round `gen`'s arrivals, counted by its version

An <owner-id> is the session's lease id in hex and a counter, so keys of one process sort
together and never repeat. Keys on a lease disappear when their process dies or is cut off.
LAYOUT lists these keys; docs/cluster.md's table is checked against it.
"""

from __future__ import annotations

import json
from typing import Any, Dict, NamedTuple, Optional

from ._errors import ClusterError

# etcd's terms, which it sends and takes as bare numbers, named once.
# RangeRequest.sort_target
SORT_BY_KEY, SORT_BY_VERSION, SORT_BY_CREATE, SORT_BY_MOD, SORT_BY_VALUE = 0, 1, 2, 3, 4
# RangeRequest.sort_order
NO_SORT, ASCEND, DESCEND = 0, 1, 2
# Event.type
PUT, DELETE = 0, 1

# Keys of a range read oldest first (by creation revision) or newest first.
OLDEST_FIRST = {"sort_target": SORT_BY_CREATE, "sort_order": ASCEND}
NEWEST_FIRST = {"sort_target": SORT_BY_CREATE, "sort_order": DESCEND}

# (key under /<namespace>/<name>/, the primitives that write it), as docs/cluster.md lists them.
LAYOUT = (
    ("meta", "all"),
    ("q/<owner>", "Lock, RLock"),
    ("holder", "Lock, RLock"),
    ("r/<owner>", "Lock, Semaphore"),
    ("total", "Semaphore"),
    ("h/<owner>", "Semaphore"),
    ("flag", "Event"),
    ("sets", "Event"),
    ("w/<owner>", "Condition"),
    ("lock/...", "Condition"),
    ("q/<owner>", "RWLock"),
    ("writer", "RWLock"),
    ("gen, broken, a/<gen>/<owner>, n/<gen>", "Barrier"),
)

MAX_NAME_BYTES = 200
MAX_NAMESPACE_BYTES = 100


def _check_component(value: Any, what: str, limit: int) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a str, not {type(value).__name__}")
    if not value:
        raise ValueError(f"{what} must not be empty")
    if "/" in value or "\0" in value:
        raise ValueError(f"{what} must not contain '/' or NUL: {value!r}")
    if len(value.encode()) > limit:
        raise ValueError(f"{what} is longer than {limit} bytes (UTF-8)")
    if not value.isprintable():
        raise ValueError(f"{what} must be printable: {value!r}")
    return value


def check_name(name: Any) -> str:
    """A primitive's name: a non-empty, printable str of at most 200 bytes, without '/'."""
    return _check_component(name, "name", MAX_NAME_BYTES)


def check_namespace(namespace: Any) -> str:
    return _check_component(namespace, "namespace", MAX_NAMESPACE_BYTES)


def prefix_end(prefix: bytes) -> bytes:
    """The first key after every key that starts with `prefix` (etcd's range_end)."""
    end = bytearray(prefix)
    while end:
        if end[-1] < 0xFF:
            end[-1] += 1
            return bytes(end)
        end.pop()
    return b"\0"


def owner_of(key: bytes) -> str:
    """The <owner-id> that ends a per-owner key (``q/<owner>``, ``h/<owner>``, ...)."""
    return key.rsplit(b"/", 1)[1].decode()


def encode_meta(kind: str, params: Dict[str, Any]) -> bytes:
    return json.dumps({"kind": kind, **params}, sort_keys=True).encode()


def describe_meta(raw: bytes) -> str:
    try:
        meta = json.loads(raw)
        params = ", ".join(f"{k}={v!r}" for k, v in sorted(meta.items()) if k != "kind")
        return f"{meta['kind']}({params})"
    except (ValueError, KeyError, TypeError):
        return repr(raw[:60])


class HolderRecord(NamedTuple):
    """The ``holder`` record of a Lock or RLock: how the owner last changed. `state` is
    "held" (a free lock taken by `key`), "released" (by `key`, leaving it free) or "handed"
    (by `key`, to the next waiter); `op` names the release call, so that a retried release
    can recognize its own."""

    key: str
    state: str
    op: str = ""

    @classmethod
    def parse(cls, raw: Optional[bytes]) -> Optional["HolderRecord"]:
        """The record in `raw`; None when there is none. ClusterError when it is corrupt."""
        if not raw:
            return None
        try:
            value = json.loads(raw)
            return cls(str(value["key"]), str(value["state"]), str(value.get("op", "")))
        except (ValueError, KeyError, TypeError) as exc:
            raise ClusterError(f"corrupted holder record in etcd: {raw[:60]!r}") from exc

    def encode(self) -> bytes:
        return json.dumps({"key": self.key, "state": self.state, "op": self.op}).encode()

    def let_go_by(self, key: bytes) -> bool:
        """Whether `key` released the lock or handed it on."""
        return self.key == key.decode() and self.state in ("released", "handed")
