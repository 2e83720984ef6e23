"""How primitives are laid out in etcd, and the checks on names.

Every key of a cluster primitive lives under ``/<namespace>/<name>/``::

    /ns/name/meta             what the primitive is: {"kind": "Lock", ...} (created once)
    /ns/name/q/<owner-id>     Lock, RLock: one key per holder or waiter (on its lease)
    /ns/name/holder           Lock, RLock: {"key", "state": held | released | handed, "op"}
    /ns/name/total            Semaphore: permits in existence outside holders' hands
    /ns/name/h/<owner-id>     Semaphore: one key per permit held (on the holder's lease)
    /ns/name/flag             Event: "1" set, "0" clear
    /ns/name/w/<owner-id>     Condition: one key per waiter (on its lease); "n" once notified
    /ns/name/lock/...         Condition: its own RLock when none was given
    /ns/name/gen              Barrier: {"gen": N, "via": "round" | "reset"}
    /ns/name/broken           Barrier: present while broken
    /ns/name/a/<gen>/<owner-id> Barrier: a party arrived in round `gen` (index: creation order)

An <owner-id> is the session's lease id in hex and a counter, so keys of one process sort
together and never repeat. Keys on a lease disappear when their process dies or is cut off.
"""

from __future__ import annotations

import json
from typing import Any, Dict

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


def encode_meta(kind: str, params: Dict[str, Any]) -> bytes:
    return json.dumps({"kind": kind, **params}, sort_keys=True).encode()


def describe_meta(raw: bytes) -> str:
    try:
        meta = json.loads(raw)
        params = ", ".join(f"{k}={v!r}" for k, v in sorted(meta.items()) if k != "kind")
        return f"{meta['kind']}({params})"
    except (ValueError, KeyError, TypeError):
        return repr(raw[:60])
