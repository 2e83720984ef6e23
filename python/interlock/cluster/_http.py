"""HTTP/1.1 to one etcd member, written and read with h11: the request bytes every request
uses, and the kept-alive connections that unary requests share.

A :class:`Connection` carries one request and its answer at a time. A :class:`Pool` keeps a
member's idle connections for reuse (last in, first out), so a request usually costs one
``sendall`` and a ``recv`` or two. A kept-alive connection may have been closed by the member
while it sat idle (a restarted member closes them all): a request that finds its connection
closed or reset that way is sent once more, on a new connection, after the pool drops its
other idle ones. Any other failure raises :class:`ConnectionFailed`; what it means for the
member is the transport's to decide. Every request sent here must be safe to apply twice.
"""

from __future__ import annotations

import socket
import threading
import time
from typing import Callable, Dict, List, Optional, Tuple

import h11

READ_SIZE = 65536


def request_bytes(http: h11.Connection, host: str, target: str, body: bytes,
                  headers: Dict[str, str]) -> bytes:
    """What `http` sends for a POST of a JSON `body` to `target`, with extra `headers`."""
    fields = [("Host", host), ("Content-Type", "application/json"),
              ("Content-Length", str(len(body)))]
    fields += headers.items()
    return (http.send(h11.Request(method="POST", target=target, headers=fields))
            + http.send(h11.Data(data=body)) + http.send(h11.EndOfMessage()))


class ConnectionFailed(Exception):
    """A request got no whole answer: the connection failed, closed or timed out. `stale`: it
    was a kept-alive connection that had carried a request before, and it closed or was
    reset rather than timing out. `__cause__` is the socket's or h11's error."""

    def __init__(self, reason: str, stale: bool) -> None:
        super().__init__(reason)
        self.stale = stale


class Connection:
    """One kept-alive connection, used by one thread at a time."""

    def __init__(self, sock: socket.socket, host: str) -> None:
        self.sock = sock
        self.host = host
        self.http = h11.Connection(h11.CLIENT)
        self.used = False

    def request(self, target: str, body: bytes, headers: Dict[str, str],
                seconds: float) -> Tuple[int, bytes]:
        """POSTs `body` and reads the whole answer within `seconds`: its status and body.
        Raises ConnectionFailed; the connection is then unusable."""
        reused, self.used = self.used, True
        end = time.monotonic() + seconds
        try:
            if self.http.our_state is h11.DONE:
                self.http.start_next_cycle()
            self.sock.settimeout(seconds)
            self.sock.sendall(request_bytes(self.http, self.host, target, body, headers))
            status, chunks = 0, []
            while True:
                event = self.http.next_event()
                if event is h11.NEED_DATA:
                    left = end - time.monotonic()
                    if left <= 0:
                        raise socket.timeout("no whole answer in time")
                    self.sock.settimeout(left)
                    self.http.receive_data(self.sock.recv(READ_SIZE))
                elif isinstance(event, h11.Response):
                    status = event.status_code
                elif isinstance(event, h11.Data):
                    chunks.append(bytes(event.data))
                elif isinstance(event, h11.EndOfMessage):
                    return status, b"".join(chunks)
                else:  # ConnectionClosed, or PAUSED where no answer had come
                    raise EOFError("the connection closed before the whole answer")
        except (OSError, EOFError, h11.ProtocolError) as exc:
            self.close()
            stale = reused and not isinstance(exc, socket.timeout)
            raise ConnectionFailed(f"{type(exc).__name__}: {exc}", stale) from exc

    def reusable(self) -> bool:
        return self.http.our_state is h11.DONE and self.http.their_state is h11.DONE

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


class Pool:
    """A member's idle connections. `connect(seconds)` makes a new one (it raises what the
    transport makes of a failure to connect)."""

    MAX_IDLE = 32

    def __init__(self, connect: Callable[[float], socket.socket], host: str) -> None:
        self._connect = connect
        self._host = host
        self._idle: List[Connection] = []
        self._lock = threading.Lock()  # guards _idle and _closed
        self._closed = False

    def request(self, target: str, body: bytes, headers: Dict[str, str],
                seconds: float) -> Tuple[int, bytes]:
        """Connection.request on an idle connection, or a new one, within `seconds`; the
        connection goes back to the pool if it can carry another request."""
        end = time.monotonic() + seconds
        with self._lock:
            conn = self._idle.pop() if self._idle else None
        try:
            return self._request(conn, target, body, headers, end)
        except ConnectionFailed as exc:
            if not exc.stale:
                raise
        self._drop_idle()  # they are likely as stale as that one was
        return self._request(None, target, body, headers, end)

    def _request(self, conn: Optional[Connection], target: str, body: bytes,
                 headers: Dict[str, str], end: float) -> Tuple[int, bytes]:
        if conn is None:
            conn = Connection(self._connect(max(0.001, end - time.monotonic())), self._host)
        answer = conn.request(target, body, headers, max(0.001, end - time.monotonic()))
        with self._lock:
            if conn.reusable() and not self._closed and len(self._idle) < self.MAX_IDLE:
                self._idle.append(conn)
                return answer
        conn.close()
        return answer

    def _drop_idle(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()

    def close(self) -> None:
        with self._lock:
            self._closed = True
        self._drop_idle()
