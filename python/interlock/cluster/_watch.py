"""Standing watches: every change to a key range, from a known revision on, delivered to the
threads that wait for one, with no gap.

A process keeps one standing :class:`Watch` per key range that its threads wait on, shared by
all of them (see Primitive._wait_for_change). Each watch is one HTTP stream to etcd's gateway
(``POST /v3/watch``), on a connection of its own: the gateway cannot add watches to a stream
that has started. One thread per process, the :class:`WatchHub`'s, reads every stream at once
(``selectors``, with h11 reading HTTP/1.1), so a process has one watch thread however many
ranges it watches. A stream is opened by the thread that first needs it, and re-opened by a
short-lived thread of the hub's when it breaks.

The state of a watch, in :class:`WatchState` (what holds; what a waiter does; where it goes):

CREATED
    Its stream is being opened; etcd has not confirmed it yet. A waiter waits for the
    confirmation (at most the cluster's timeout). Next: LIVE, COMPACTED, CANCELLED.
LIVE
    Every change after ``gap_free_after`` is in the buffer, in revision order. A waiter reads
    them, and sleeps until more come. Next: CATCHING_UP, OVERRUN, EVICTED, CANCELLED.
CATCHING_UP
    The stream broke (its member failed); it is being re-opened from ``next_revision``. A
    waiter waits on, as in LIVE: nothing is lost, the changes come late. Next: LIVE,
    COMPACTED, CANCELLED.
COMPACTED
    etcd compacted ``next_revision`` away, so changes since are lost; the watch is re-created
    from now. A waiter looks at the state again, then waits from the new revision. Next:
    CREATED's confirmation, LIVE.
OVERRUN
    The buffer (BUFFER events) was full and dropped its oldest; ``gap_free_after`` moved up to
    the newest dropped. A waiter that has seen up to an older revision looks again; the others
    read on. Next: CATCHING_UP, EVICTED, CANCELLED.
EVICTED
    Idle (no waiter) beyond the MAX_IDLE_WATCHES most recently used, so its stream was closed.
    A waiter that still holds it looks again, and gets a new watch. Final.
CANCELLED
    Its session closed, etcd refused it (a permission, say), or it stayed down longer than the
    cluster's timeout. A waiter raises ``error``. Final.

A watch is created from "now" (etcd serves such a watch at once; one from a past revision
waits for etcd's background catch-up, up to 100 ms) and re-opened from ``next_revision``, the
revision after the last change it delivered.
"""

from __future__ import annotations

import collections
import enum
import json
import selectors
import socket
import ssl
import threading
import time
from typing import Any, Dict, List, Optional, Tuple

import h11

from . import _wire
from ._errors import ClusterError, ClusterUnavailableError
from ._http import request_bytes
from ._transport import Member, Retry, Transport


class WatchState(enum.Enum):
    CREATED = "created"
    LIVE = "live"
    CATCHING_UP = "catching up"
    COMPACTED = "compacted"
    OVERRUN = "overrun"
    EVICTED = "evicted"
    CANCELLED = "cancelled"


# The states in which a waiter can trust the buffer from gap_free_after on.
_READABLE = (WatchState.LIVE, WatchState.CATCHING_UP, WatchState.OVERRUN)


class Watch:
    """A standing watch on [key, range_end). Its fields change under ``cond``."""

    BUFFER = 4096

    def __init__(self, key: bytes, range_end: bytes) -> None:
        self.key = key
        self.range_end = range_end
        self.cond = threading.Condition(threading.Lock())
        self.state = WatchState.CREATED
        self.gap_free_after: Optional[int] = None  # a waiter needs after >= this
        self.next_revision = 0  # where a re-opened stream resumes (0: from now)
        self.buffer: "collections.deque[Tuple[int, _wire.Event]]" = collections.deque(
            maxlen=self.BUFFER)
        self.error: Optional[Exception] = None
        self.last_used = time.monotonic()
        self.waiting = 0
        self.stream: Optional["_Stream"] = None
        # Who to wake: waiters that want every change, and those that want only changes of
        # some keys (a lock's waiter: its predecessor's key), by key, counted.
        self.wake_all = 0
        self.wake_keys: Dict[bytes, int] = {}

    # -- what waiters ask (cond held) -------------------------------------------------------

    def changes_after(self, after: int) -> Optional[List[_wire.Event]]:
        """The buffered changes after revision `after` (maybe none); None when they cannot all
        be known (the caller looks at the state again); raises a CANCELLED watch's error."""
        if self.state is WatchState.CANCELLED:
            assert self.error is not None
            raise self.error
        if self.state not in _READABLE or self.gap_free_after is None \
                or after < self.gap_free_after:
            return None
        # From the newest back: a waiter has usually seen all but the last few changes, and
        # the buffer holds up to BUFFER of them.
        newer: List[_wire.Event] = []
        for revision, event in reversed(self.buffer):
            if revision <= after:
                break
            newer.append(event)
        newer.reverse()
        return newer

    def interested(self, key: Optional[bytes], delta: int) -> None:
        """A waiter starts (+1) or stops (-1) wanting changes of `key` (None: of every key)."""
        if key is None:
            self.wake_all += delta
            return
        count = self.wake_keys.get(key, 0) + delta
        if count > 0:
            self.wake_keys[key] = count
        else:
            self.wake_keys.pop(key, None)

    # -- what the hub reports ---------------------------------------------------------------

    def confirmed(self, revision: int) -> None:
        """etcd created the stream's watch when its store was at `revision`."""
        with self.cond:
            if self.state in (WatchState.EVICTED, WatchState.CANCELLED):
                return
            if self.gap_free_after is None:  # new, or re-created after a compaction
                self.gap_free_after = revision
                self.next_revision = revision + 1
            if self.state is not WatchState.OVERRUN:
                self.state = WatchState.LIVE
            self.cond.notify_all()

    def deliver(self, events: List[_wire.Event]) -> None:
        """Buffers a message's changes and wakes the waiters they may concern (the others see
        them at their next wake-up: they are in the buffer)."""
        with self.cond:
            wake = self.wake_all > 0
            for event in events:
                if len(self.buffer) == self.buffer.maxlen:
                    self.gap_free_after = self.buffer[0][0]
                    self.state = WatchState.OVERRUN
                self.buffer.append((event.kv.mod_revision, event))
                wake = wake or event.kv.key in self.wake_keys
            if events:
                self.next_revision = events[-1].kv.mod_revision + 1
            if wake:
                self.cond.notify_all()

    def broke(self) -> None:
        with self.cond:
            if self.state in (WatchState.LIVE, WatchState.OVERRUN):
                self.state = WatchState.CATCHING_UP

    def compacted(self) -> None:
        """Its resume revision is gone: start over from now; waiters look again."""
        with self.cond:
            self.state = WatchState.COMPACTED
            self.gap_free_after = None
            self.next_revision = 0
            self.buffer.clear()
            self.cond.notify_all()

    def end(self, state: WatchState, error: Optional[Exception] = None) -> None:
        """EVICTED or CANCELLED (with the error waiters get)."""
        with self.cond:
            if self.state is not WatchState.CANCELLED:
                self.state = state
                self.error = error
            self.cond.notify_all()


class _Stream:
    """One watch's HTTP stream: the connection, h11's view of it, and the unread rest of the
    current line. Read only by the thread that owns it: the opener until it is confirmed, then
    the hub's thread."""

    def __init__(self, watch: Watch, member: Member, sock: socket.socket) -> None:
        self.watch = watch
        self.member = member
        self.sock = sock
        self.http = h11.Connection(h11.CLIENT)
        self.status = 0
        self.error_body = b""
        self.partial = b""
        self.backlog: List[Dict[str, Any]] = []  # read with the confirmation, not yet handled
        self.registered = False  # with the hub's selector (changed by the hub thread only)
        self.closed = False

    def send_request(self, transport: Transport, body: bytes, seconds: float) -> None:
        headers = transport.auth_header(self.member, seconds)
        self.sock.sendall(request_bytes(self.http, f"{self.member.host}:{self.member.port}",
                                        "/v3/watch", body, headers))

    def feed(self, data: bytes) -> List[Dict[str, Any]]:
        """Takes bytes read from the connection (b"": it closed); the whole messages they
        complete. Raises EOFError when the stream has ended."""
        self.http.receive_data(data)
        messages: List[Dict[str, Any]] = []
        while True:
            event = self.http.next_event()
            if event is h11.NEED_DATA:
                return messages
            if isinstance(event, h11.Response):
                self.status = event.status_code
            elif isinstance(event, h11.Data):
                if self.status != 200:
                    self.error_body += bytes(event.data)
                    continue
                lines = (self.partial + bytes(event.data)).split(b"\n")
                self.partial = lines.pop()
                messages += [json.loads(line) for line in lines if line.strip()]
            elif messages:  # the end (EndOfMessage, ConnectionClosed, PAUSED): after these
                return messages
            else:
                raise EOFError("the watch stream ended")

    def read_ready(self) -> List[Dict[str, Any]]:
        """(non-blocking socket) The whole messages that can be read now."""
        messages: List[Dict[str, Any]] = []
        while True:
            try:
                data = self.sock.recv(65536)
            except (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
                return messages
            if not data:
                raise EOFError("the watch stream ended")
            messages += self.feed(data)
            # A TLS record may hold more than was asked for: read on while it has more.
            if not (isinstance(self.sock, ssl.SSLSocket) and self.sock.pending()):
                return messages

    def close(self) -> None:
        self.closed = True
        try:
            self.sock.close()
        except OSError:
            pass


def _decode(transport: Transport, member: Member, message: Dict[str, Any]) -> _wire.WatchAnswer:
    """A stream message's answer; a refusal in it is raised."""
    if "error" in message:
        error = message["error"]
        raise transport.refusal(member, "/v3/watch", int(error.get("grpc_code", 2)),
                                str(error.get("message", error)))
    return _wire.WatchAnswer.decode(message.get("result", {}))


class WatchHub:
    """The standing watches of a session, and the thread that reads their streams."""

    MAX_IDLE_WATCHES = 64

    def __init__(self, transport: Transport, timeout: float) -> None:
        self.transport = transport
        self.timeout = timeout
        self._lock = threading.Lock()
        self._standing: Dict[Tuple[bytes, bytes], Watch] = {}
        self._selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._selector.register(self._wake_r, selectors.EVENT_READ)
        self._added: List[_Stream] = []  # opened streams for the hub thread to read
        self._removed: List[_Stream] = []  # streams for the hub thread to drop and close
        self._thread: Optional[threading.Thread] = None
        self._reopen: List[Watch] = []
        self._reopener: Optional[threading.Thread] = None
        self._closed = False
        transport.members.on_move = self.move_from

    # -- for waiters ------------------------------------------------------------------------

    def standing(self, key: bytes, range_end: bytes, deadline: Optional[float]) -> Watch:
        """The standing watch on [key, range_end), opened (and confirmed by etcd) on first use.
        Idle ones beyond MAX_IDLE_WATCHES are closed, least recently used first."""
        with self._lock:
            if self._closed:
                raise ClusterError("this cluster connection is closed")
            w = self._standing.get((key, range_end))
            new = w is None or w.state in (WatchState.EVICTED, WatchState.CANCELLED)
            evicted = False
            if new:
                w = self._standing[(key, range_end)] = Watch(key, range_end)
                evicted = self._evict_idle(but=w)
            assert w is not None
            w.last_used = time.monotonic()
        if new and evicted:
            self._wake()  # the hub thread closes their streams
        if new:
            self._open(w, deadline)
            return w
        end = time.monotonic() + self.timeout
        if deadline is not None:
            end = min(end, deadline)
        with w.cond:
            while w.state is WatchState.CREATED:
                left = end - time.monotonic()
                if left <= 0:
                    break
                w.cond.wait(min(left, 0.25))
        return w

    def _evict_idle(self, but: Watch) -> bool:
        """(lock held) Ends the idle watches (but `but`, which is about to be used) beyond
        MAX_IDLE_WATCHES, least recently used first, and hands their streams to the hub thread
        to close; whether there were any."""
        idle = [w for w in self._standing.values() if not w.waiting and w is not but]
        if len(idle) <= self.MAX_IDLE_WATCHES:
            return False
        idle.sort(key=lambda w: w.last_used)
        for w in idle[:len(idle) - self.MAX_IDLE_WATCHES]:
            del self._standing[(w.key, w.range_end)]
            w.end(WatchState.EVICTED)
            stream, w.stream = w.stream, None
            if stream is not None:
                self._removed.append(stream)
        return True

    # -- opening streams --------------------------------------------------------------------

    def _open(self, w: Watch, deadline: Optional[float] = None) -> None:
        """Opens `w`'s stream (from its next revision) under the retry policy, in this thread;
        a refusal, or no member answering in time, cancels the watch with that error."""
        try:
            stream = self.transport.policy.run(lambda member, seconds: self._attempt(
                w, member, seconds), "a watch", deadline)
        except ClusterError as exc:
            if isinstance(exc, ClusterUnavailableError) and deadline is not None \
                    and deadline <= time.monotonic():
                # Only the caller's deadline passed: the watch stays, to be opened again.
                with self._lock:
                    self._standing.pop((w.key, w.range_end), None)
                w.end(WatchState.EVICTED)
                return
            with self._lock:
                if self._standing.get((w.key, w.range_end)) is w:
                    del self._standing[(w.key, w.range_end)]
            w.end(WatchState.CANCELLED, exc)
            return
        with self._lock:
            if self._closed or w.state in (WatchState.EVICTED, WatchState.CANCELLED):
                stream.close()
                return
            w.stream = stream
            self._added.append(stream)
            self._ensure_thread()
        self._wake()

    def _attempt(self, w: Watch, member: Member, seconds: float) -> "_Stream":
        """One attempt at opening `w`'s stream on `member`, until etcd confirms the watch."""
        while True:
            sock = self.transport.connect(member, seconds)
            stream = _Stream(w, member, sock)
            try:
                end = time.monotonic() + seconds
                sock.settimeout(seconds)
                body = json.dumps(_wire.watch_create(w.key, w.range_end, w.next_revision))
                stream.send_request(self.transport, body.encode(), seconds)
                answer = self._first_answer(stream, end)
                if answer.canceled and answer.compact_revision:
                    stream.close()
                    w.compacted()  # and again, from now
                    continue
                if answer.canceled:
                    raise ClusterError(f"etcd refused a watch: {answer.cancel_reason}")
                sock.setblocking(False)
                w.confirmed(answer.revision)
                return stream
            except BaseException:
                stream.close()
                raise

    def _first_answer(self, stream: "_Stream", end: float) -> _wire.WatchAnswer:
        """(blocking socket) Reads up to the stream's first message: etcd's confirmation (or
        refusal) of the watch. Later messages read with it stay for the hub."""
        while True:
            if time.monotonic() >= end:
                raise Retry("no confirmation of the watch")
            try:
                data = stream.sock.recv(65536)
            except socket.timeout as exc:
                raise Retry("no confirmation of the watch") from exc
            except OSError as exc:
                raise Retry(f"{type(exc).__name__}: {exc}") from exc
            if not data:
                if stream.status not in (0, 200):
                    raise _refusal_of(self.transport, stream)
                raise Retry("the watch stream closed before its confirmation")
            try:
                messages = stream.feed(data)
            except EOFError as exc:
                if stream.status not in (0, 200):
                    raise _refusal_of(self.transport, stream) from exc
                raise Retry("the watch stream closed before its confirmation") from exc
            except (h11.ProtocolError, ValueError) as exc:
                raise Retry(f"a malformed watch stream: {exc}") from exc
            if messages:
                stream.backlog = messages[1:]
                return _decode(self.transport, stream.member, messages[0])

    # -- the hub thread ---------------------------------------------------------------------

    def _ensure_thread(self) -> None:
        """(lock held)"""
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._run, name="interlock-cluster-watch",
                                            daemon=True)
            self._thread.start()

    def _wake(self) -> None:
        try:
            self._wake_w.send(b"x")
        except OSError:
            pass

    def _run(self) -> None:
        """The hub thread: reads every stream, and takes streams in and out of its selector
        (only this thread changes the selector)."""
        while True:
            with self._lock:
                if self._closed:
                    return
                added, self._added = self._added, []
                removed, self._removed = self._removed, []
            for stream in removed:
                self._unregister(stream)
            for stream in added:
                if not stream.closed:
                    self._selector.register(stream.sock, selectors.EVENT_READ, stream)
                    stream.registered = True
                    self._read(stream, stream.backlog)  # what came with the confirmation
            for key, _ in self._selector.select():
                if key.data is None:
                    try:
                        self._wake_r.recv(4096)
                    except OSError:
                        pass
                elif not key.data.closed:
                    self._read(key.data, None)

    def _unregister(self, stream: _Stream) -> None:
        """(hub thread) Stops reading `stream` and closes it."""
        if stream.registered:
            self._selector.unregister(stream.sock)
            stream.registered = False
        stream.close()

    def _read(self, stream: _Stream, messages: Optional[List[Dict[str, Any]]]) -> None:
        """(hub thread) Handles `messages`, or what `stream` has to read; when the stream has
        broken, closes it and has it re-opened."""
        w = stream.watch
        try:
            if messages is None:
                messages = stream.read_ready()
            else:
                stream.backlog = []
            for message in messages:
                answer = _decode(self.transport, stream.member, message)
                if answer.canceled:
                    if answer.compact_revision:
                        w.compacted()
                    raise EOFError("etcd cancelled the watch")
                if answer.events:
                    w.deliver(answer.events)
            return
        except (EOFError, OSError, h11.ProtocolError, ValueError, ClusterError, Retry):
            pass
        self._unregister(stream)
        self._reopen_later(w, stream)

    # -- re-opening -------------------------------------------------------------------------

    def _reopen_later(self, w: Watch, stream: Optional[_Stream]) -> None:
        w.broke()
        with self._lock:
            if self._closed or w.state in (WatchState.EVICTED, WatchState.CANCELLED):
                return
            if stream is not None and w.stream is not stream:
                return  # re-opened already
            w.stream = None
            if w not in self._reopen:
                self._reopen.append(w)
            if self._reopener is None or not self._reopener.is_alive():
                self._reopener = threading.Thread(target=self._reopen_all, daemon=True,
                                                  name="interlock-cluster-watch-reopen")
                self._reopener.start()

    def _reopen_all(self) -> None:
        time.sleep(0.01)  # let a failing member be marked first
        while True:
            with self._lock:
                if self._closed or not self._reopen:
                    self._reopener = None
                    return
                w = self._reopen.pop(0)
            self._open(w)

    def move_from(self, member: Member) -> None:
        """Requests moved away from `member`, which did not answer: so do the streams on it
        (each resumes from the revision after the last change it delivered)."""
        with self._lock:
            moving = [w for w in self._standing.values()
                      if w.stream is not None and w.stream.member is member]
        for w in moving:
            stream = w.stream
            if stream is None:
                continue
            self._drop_stream(w)
            self._reopen_later(w, None)

    def _drop_stream(self, w: Watch) -> None:
        """Hands `w`'s stream to the hub thread to close."""
        with self._lock:
            stream, w.stream = w.stream, None
            if stream is None:
                return
            self._removed.append(stream)
        self._wake()

    # -- the end ----------------------------------------------------------------------------

    def close(self) -> None:
        """Closes every stream; waiters get ClusterError."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            watches = list(self._standing.values())
            self._standing.clear()
            thread = self._thread
        error = ClusterError("this cluster connection is closed")
        for w in watches:
            w.end(WatchState.CANCELLED, error)
        self._wake()
        if thread is not None and thread is not threading.current_thread():
            thread.join(5)
        for w in watches:
            if w.stream is not None:
                w.stream.close()
        for stream in self._added + self._removed:
            stream.close()
        self._selector.close()
        self._wake_r.close()
        self._wake_w.close()


def _refusal_of(transport: Transport, stream: _Stream) -> BaseException:
    """The refusal in a watch stream's error answer (HTTP status other than 200)."""
    try:
        transport.answer(stream.member, "/v3/watch", stream.status, stream.error_body)
    except (ClusterError, Retry) as exc:
        return exc
    return ClusterError(f"etcd's gateway refused a watch with HTTP {stream.status}")
