"""etcd's messages as its JSON gateway carries them: the requests the primitives build, and
the answers decoded into small typed records.

The gateway speaks etcd's gRPC API in JSON (protobuf's JSON mapping): bytes are base64,
64-bit integers are decimal strings, enums are names, and a field at its default value (0,
false, empty) is left out of an answer. Everything that knows this lives here; the rest of the
package sees bytes, ints and the records below.

    >>> op = put(b"/ns/k", b"v", lease=7)
    >>> op["request_put"]["lease"]
    '7'
    >>> KeyValue.decode({"key": "L25zL2s=", "mod_revision": "5"}).mod_revision
    5
"""

from __future__ import annotations

import base64
from typing import Any, Dict, List, NamedTuple, Optional, Sequence

from ._keys import DELETE, PUT

Json = Dict[str, Any]
Op = Json  # a RequestOp
Cmp = Json  # a Compare


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def unb64(text: Optional[str]) -> bytes:
    return base64.b64decode(text) if text else b""


def _int(value: Any) -> int:
    return int(value) if value else 0


# ---- requests ----------------------------------------------------------------------------

def put(key: bytes, value: bytes, lease: int = 0, keep_lease: bool = False,
        previous: bool = False) -> Op:
    """A put; with `previous`, its answer carries the value it replaced (Txn.value reads it),
    which saves a separate read in the same transaction."""
    request: Json = {"key": b64(key), "value": b64(value)}
    if lease:
        request["lease"] = str(lease)
    if keep_lease:
        request["ignore_lease"] = True
    if previous:
        request["prev_kv"] = True
    return {"request_put": request}


def range_request(key: bytes, range_end: bytes = b"", *, limit: int = 0,
                  keys_only: bool = False, sort_target: int = 0, sort_order: int = 0,
                  revision: int = 0, max_create_revision: int = 0) -> Json:
    """A RangeRequest (sort_target and sort_order: the numbers of _keys)."""
    request: Json = {"key": b64(key)}
    if range_end:
        request["range_end"] = b64(range_end)
    for name, value in (("limit", limit), ("revision", revision),
                        ("max_create_revision", max_create_revision)):
        if value:
            request[name] = str(value)
    if keys_only:
        request["keys_only"] = True
    if sort_target:
        request["sort_target"] = sort_target
    if sort_order:
        request["sort_order"] = sort_order
    return request


def get(key: bytes, range_end: bytes = b"", **options: Any) -> Op:
    return {"request_range": range_request(key, range_end, **options)}


def delete(key: bytes, range_end: bytes = b"") -> Op:
    request: Json = {"key": b64(key)}
    if range_end:
        request["range_end"] = b64(range_end)
    return {"request_delete_range": request}


def txn_request(compares: Sequence[Cmp], success: Sequence[Op],
                failure: Sequence[Op] = ()) -> Json:
    return {"compare": list(compares), "success": list(success), "failure": list(failure)}


def txn_op(compares: Sequence[Cmp], success: Sequence[Op], failure: Sequence[Op] = ()) -> Op:
    """A transaction nested in another's branch."""
    return {"request_txn": txn_request(compares, success, failure)}


_TARGET_FIELDS = {"CREATE": "create_revision", "MOD": "mod_revision", "VERSION": "version",
                  "VALUE": "value"}
_RESULTS = ("EQUAL", "GREATER", "LESS", "NOT_EQUAL")


def compare(key: bytes, target: str, result: str, value: Any, range_end: bytes = b"") -> Cmp:
    """Compare(key[, range], CREATE|MOD|VERSION|VALUE, EQUAL|GREATER|LESS|NOT_EQUAL, value).
    Over a range, every key in it must satisfy the comparison; an empty range compares as one
    key that does not exist (revisions and version 0)."""
    if target not in _TARGET_FIELDS or result not in _RESULTS:
        raise ValueError(f"no such comparison: {target} {result}")
    c: Json = {"key": b64(key), "target": target, "result": result,
               _TARGET_FIELDS[target]: b64(value) if target == "VALUE" else str(value)}
    if range_end:
        c["range_end"] = b64(range_end)
    return c


def watch_create(key: bytes, range_end: bytes, start_revision: int) -> Json:
    """The body that opens a watch stream on [key, range_end) from `start_revision` (0: from
    the revision after the one current when etcd creates it)."""
    request: Json = {"key": b64(key)}
    if range_end:
        request["range_end"] = b64(range_end)
    if start_revision:
        request["start_revision"] = str(start_revision)
    return {"create_request": request}


# ---- answers -----------------------------------------------------------------------------

class KeyValue(NamedTuple):
    key: bytes
    value: bytes
    create_revision: int
    mod_revision: int
    version: int
    lease: int

    @classmethod
    def decode(cls, kv: Json) -> "KeyValue":
        return cls(unb64(kv.get("key")), unb64(kv.get("value")),
                   _int(kv.get("create_revision")), _int(kv.get("mod_revision")),
                   _int(kv.get("version")), _int(kv.get("lease")))


class Event(NamedTuple):
    """A change a watch delivers: `type` is _keys.PUT or _keys.DELETE."""

    type: int
    kv: KeyValue

    @classmethod
    def decode(cls, event: Json) -> "Event":
        return cls(DELETE if event.get("type") == "DELETE" else PUT,
                   KeyValue.decode(event.get("kv", {})))


def revision_of(answer: Json) -> int:
    """The store revision an answer was made at (its header's)."""
    return _int(answer.get("header", {}).get("revision"))


class Txn:
    """The answer to a transaction: whether its comparisons held, the revision it ran at, and
    the answer of each operation of the branch that ran (a range: its KeyValues; a put: the
    KeyValue it replaced, if asked for and any; a nested transaction: its Txn; else None)."""

    def __init__(self, answer: Json) -> None:
        self.succeeded: bool = bool(answer.get("succeeded", False))
        self.revision: int = revision_of(answer)
        self.results: List[Any] = []
        for response in answer.get("responses", []):
            if "response_range" in response:
                kvs = response["response_range"].get("kvs", [])
                self.results.append([KeyValue.decode(kv) for kv in kvs])
            elif "response_put" in response:
                prev = response["response_put"].get("prev_kv")
                self.results.append(KeyValue.decode(prev) if prev else None)
            elif "response_txn" in response:  # a nested transaction: its own answer
                self.results.append(Txn(response["response_txn"]))
            else:
                self.results.append(None)

    def kvs(self, index: int) -> List[KeyValue]:
        return self.results[index]  # type: ignore[no-any-return]

    def value(self, index: int) -> Optional[bytes]:
        """The value a range read found, or the one a put(previous=True) replaced."""
        result = self.results[index]
        if isinstance(result, list):
            return result[0].value if result else None
        return result.value if result is not None else None


class WatchAnswer(NamedTuple):
    """One message of a watch stream."""

    revision: int
    created: bool
    canceled: bool
    compact_revision: int
    cancel_reason: str
    events: List[Event]

    @classmethod
    def decode(cls, answer: Json) -> "WatchAnswer":
        return cls(revision_of(answer), bool(answer.get("created")),
                   bool(answer.get("canceled")), _int(answer.get("compact_revision")),
                   str(answer.get("cancel_reason", "")),
                   [Event.decode(e) for e in answer.get("events", [])])
