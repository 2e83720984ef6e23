"""Requests to etcd's JSON gateway over HTTP: the members, failing over between them, the one
retry policy, authentication tokens, TLS, and what etcd's refusals mean.

Unary requests go through kept-alive connections (:mod:`._http`, one pool per member). Watch
streams open their own connections (:mod:`._watch`). Both connect through
:meth:`Transport.connect`, and share the same members, tokens, TLS settings, retry policy and
reading of refusals.

Nothing here is shared with another process: each process makes its own Transport (a forked
child never touches its parent's connections; see :mod:`._fork`).
"""

from __future__ import annotations

import json
import socket
import ssl
import threading
import time
from typing import Any, Callable, Dict, List, Optional, Set, Tuple, TypeVar

from ._errors import (AuthenticationError, ClusterError, ClusterUnavailableError,
                      LeaseNotFound, PermissionDeniedError)
from ._http import ConnectionFailed, Pool

T = TypeVar("T")
Json = Dict[str, Any]

# gRPC status codes (the gateway's "code"), as etcd uses them.
CANCELLED, UNKNOWN, INVALID_ARGUMENT, DEADLINE_EXCEEDED, NOT_FOUND = 1, 2, 3, 4, 5
PERMISSION_DENIED, RESOURCE_EXHAUSTED, FAILED_PRECONDITION, ABORTED = 7, 8, 9, 10
INTERNAL, UNAVAILABLE, UNAUTHENTICATED = 13, 14, 16
# "Try again, maybe elsewhere": the member is down, cut off, stopped, electing a leader or
# overloaded. Any other code is a refusal, and stops the request at once.
RETRYABLE = {CANCELLED, UNKNOWN, DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED, ABORTED, INTERNAL,
             UNAVAILABLE}

FAILOVER_RETRY_SECONDS = 5.0  # how long a member that failed is passed over

# The TLS alerts by which a member refuses the client's certificate (or its absence).
_CLIENT_CERT_REFUSED = {"SSLV3_ALERT_BAD_CERTIFICATE", "TLSV13_ALERT_CERTIFICATE_REQUIRED",
                        "SSLV3_ALERT_CERTIFICATE_UNKNOWN", "TLSV1_ALERT_UNKNOWN_CA",
                        "SSLV3_ALERT_CERTIFICATE_EXPIRED", "TLSV1_ALERT_ACCESS_DENIED"}


class Retry(Exception):
    """(internal) One attempt failed in a way that another attempt may not. `member_failed`:
    the member did not answer (the next attempt goes to another); else it answered, and the
    next attempt may go to it again at once (a stale token, renewed meanwhile)."""

    def __init__(self, reason: str, member_failed: bool = True) -> None:
        super().__init__(reason)
        self.member_failed = member_failed


class Member:
    """One etcd member's address, its connection pool and this process's token there."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self.failed_at = -FAILOVER_RETRY_SECONDS  # never
        self.token: Optional[str] = None  # None: not authenticated yet; "": none needed
        self.pool: Optional[Pool] = None

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


class RetryPolicy:
    """How every request to etcd is tried, unary or streaming alike.

    * An attempt gets at most ATTEMPT_SHARE of the cluster's timeout (and at least a second):
      a member that is stopped or electing a leader then costs one attempt, and the request
      moves on to another member, instead of spending its whole time there.
    * A failure in which the member did not answer (refused, reset or silent connections;
      gRPC codes in RETRYABLE) marks the member failed and tries the next one.
    * A stale token (expired, or issued by another member) is renewed and the request sent
      again at once.
    * Any other refusal stops the request at once: it is raised (:func:`refusal`).
    * Between attempts the request pauses, 10 ms at first, doubling up to 200 ms; it gives up
      with ClusterUnavailableError when the cluster's timeout, or the caller's deadline,
      has passed.

    Every request sent this way must be safe to apply twice: a lost answer can hide a write
    that landed. The primitives make theirs so."""

    ATTEMPT_SHARE = 0.3
    FIRST_PAUSE, MAX_PAUSE = 0.01, 0.2

    def __init__(self, members: "Members", timeout: float) -> None:
        self.members = members
        self.timeout = timeout

    def attempt_seconds(self) -> float:
        return max(1.0, self.ATTEMPT_SHARE * self.timeout)

    def run(self, attempt: Callable[[Member, float], T], what: str,
            deadline: Optional[float] = None, attempt_seconds: Optional[float] = None) -> T:
        """attempt(member, seconds) until it returns, raises something other than Retry, or
        time runs out."""
        end = time.monotonic() + self.timeout
        if deadline is not None:
            end = min(end, max(deadline, time.monotonic() + 0.05))
        longest = attempt_seconds or self.attempt_seconds()
        failure = "no member answered"
        pause = self.FIRST_PAUSE
        while True:
            left = end - time.monotonic()
            if left <= 0:
                raise ClusterUnavailableError(
                    f"etcd at {self.members} did not answer within {self.timeout:g} s "
                    f"({what}: {failure})")
            member = self.members.current()
            try:
                return attempt(member, min(left, longest))
            except Retry as exc:
                failure = f"{member}: {exc}"
                if not exc.member_failed:
                    continue
                self.members.failed(member)
            time.sleep(min(pause, max(0.0, end - time.monotonic())))
            pause = min(pause * 2, self.MAX_PAUSE)


class Members:
    """The members of one cluster, and the one requests go to (the first, until it fails)."""

    def __init__(self, addresses: List[Tuple[str, int]]) -> None:
        self.all = [Member(host, port) for host, port in addresses]
        self._lock = threading.Lock()
        self._in_use = 0
        self.on_move: Callable[[Member], None] = lambda member: None

    def __str__(self) -> str:
        return ", ".join(str(m) for m in self.all)

    def current(self) -> Member:
        with self._lock:
            return self.all[self._in_use]

    def failed(self, member: Member) -> None:
        """`member` did not answer. Requests move away from it, unless they already have: a
        slow attempt that fails late must not move them off the member that the others moved
        to meanwhile. When every member failed recently (during a leader election all of them
        do, through no fault of their own) the one that failed longest ago is tried."""
        with self._lock:
            member.failed_at = time.monotonic()
            if len(self.all) < 2 or self.all[self._in_use] is not member:
                return
            now = time.monotonic()
            order = self.all[self._in_use + 1:] + self.all[:self._in_use + 1]
            fresh = [m for m in order if now - m.failed_at >= FAILOVER_RETRY_SECONDS]
            chosen = fresh[0] if fresh else min(order, key=lambda m: m.failed_at)
            self._in_use = self.all.index(chosen)
        self.on_move(member)


class Credentials:
    """A user and password for etcd; the password never shows in a repr."""

    def __init__(self, user: str, password: str) -> None:
        self.user = user
        self.password = password

    def __repr__(self) -> str:
        return f"Credentials(user={self.user!r}, password=<hidden>)"


def tls_context(ca_cert: str, cert_cert: Optional[str], cert_key: Optional[str]) -> ssl.SSLContext:
    """A client TLS context that verifies the members' certificates against `ca_cert` (and
    their names or IP addresses), and shows a client certificate if one is given."""
    try:
        context = ssl.create_default_context(cafile=ca_cert)
        if cert_cert:
            context.load_cert_chain(cert_cert, cert_key)
    except (OSError, ssl.SSLError) as exc:
        raise ValueError(f"cannot load the TLS files: {exc}") from exc
    return context


class Transport:
    """This process's requests to one etcd cluster."""

    STREAM_PATHS = ("/v3/lease/keepalive",)  # answered as a stream: {"result": ...} lines

    def __init__(self, addresses: List[Tuple[str, int]], timeout: float,
                 credentials: Optional[Credentials] = None,
                 tls: Optional[ssl.SSLContext] = None, namespace: str = "") -> None:
        self.members = Members(addresses)
        self.policy = RetryPolicy(self.members, timeout)
        self.credentials = credentials
        self.tls = tls
        self.namespace = namespace
        self._pools_lock = threading.Lock()
        # Whether some transaction may still land late: an attempt at it ended without etcd's
        # answer (a member that stopped or was cut off, a timeout, an interrupted call), so
        # the member that had it may apply it whenever it comes back (see Session.is_stray).
        # Set once, never cleared: a plain bool, written and read under the GIL or as one
        # word, and read as a hint whose lateness the readers tolerate (_lock.py).
        self.unanswered_txn = False

    @property
    def scheme(self) -> str:
        return "https" if self.tls is not None else "http"

    # ---- unary requests ------------------------------------------------------------------

    def call(self, path: str, body: Json, deadline: Optional[float] = None,
             attempt_seconds: Optional[float] = None) -> Json:
        """POSTs `body` to `path` (``/v3/kv/txn``, ...) under the retry policy; etcd's answer."""
        data = json.dumps(body).encode()

        def attempt(member: Member, seconds: float) -> Json:
            headers = self.auth_header(member, seconds)
            answered = False
            try:
                status, answer = self._post(member, path, data, headers, seconds)
                answered = True
                return self.answer(member, path, status, answer)
            except Retry as exc:
                # etcd's own "try again" (a timed-out proposal, a lost leader) may still
                # commit the request; a stale token's refusal did not get that far.
                answered = answered and not exc.member_failed
                raise
            finally:
                if not answered and path == "/v3/kv/txn":
                    self.unanswered_txn = True

        return self.policy.run(attempt, path, deadline, attempt_seconds)

    def answer(self, member: Member, path: str, status: int, data: bytes) -> Json:
        """etcd's answer to `path` from its HTTP status and body; a refusal is raised."""
        try:
            decoded = json.loads(data) if data else {}
        except ValueError:
            decoded = None
        if not isinstance(decoded, dict):
            if status >= 500:
                raise Retry(f"HTTP {status}")
            raise ClusterError(f"etcd's gateway answered {path} with HTTP {status}: "
                               f"{data[:100]!r}")
        if status == 200 and path in self.STREAM_PATHS:
            if "error" in decoded:
                decoded = decoded["error"]
            else:
                return decoded.get("result", {})  # type: ignore[no-any-return]
        elif status == 200:
            return decoded
        code = decoded.get("code", decoded.get("grpc_code", UNKNOWN if status >= 500 else 0))
        message = str(decoded.get("message", decoded.get("error", f"HTTP {status}")))
        raise self.refusal(member, path, code, message)

    def refusal(self, member: Member, path: str, code: int, message: str) -> Exception:
        """What etcd's refusal (a gRPC `code` and `message`) of `path` means: the exception to
        raise, Retry included."""
        if code == UNAUTHENTICATED or "invalid auth token" in message or \
                "revision of auth store is old" in message:
            member.token = None  # expired, or issued by another member: log in again
            if self.credentials is None:
                return AuthenticationError(
                    f"etcd at {member} requires a user and password ({message}): pass "
                    f"user= and password= to interlock.cluster.connect()")
            return Retry(message, member_failed=False)
        if code == INVALID_ARGUMENT and "user name is empty" in message:
            return AuthenticationError(
                f"etcd at {member} requires a user and password ({message}): pass user= and "
                f"password= to interlock.cluster.connect()")
        if code == INVALID_ARGUMENT and "authentication failed" in message:
            who = self.credentials.user if self.credentials else ""
            return AuthenticationError(f"etcd at {member} refused the user {who!r} and its "
                                       f"password ({message})")
        if code == PERMISSION_DENIED and self.credentials is None:
            return AuthenticationError(
                f"etcd at {member} refused {path} to a client that gave no user ({message}): "
                f"it has authentication on; pass user= and password= to "
                f"interlock.cluster.connect()")
        if code == PERMISSION_DENIED:
            who = self.credentials.user if self.credentials else "(none)"
            return PermissionDeniedError(
                f"etcd refused {path} in namespace {self.namespace!r}: the roles of user "
                f"{who!r} do not grant read and write access to the keys under "
                f"'/{self.namespace}/' ({message})")
        if code == NOT_FOUND and "lease not found" in message:
            return LeaseNotFound(f"etcd refused {path}: {message}")
        if code in RETRYABLE:
            return Retry(f"{message} (code {code})")
        return ClusterError(f"etcd refused {path}: {message}")

    def failure(self, member: Member, exc: BaseException) -> Exception:
        """What a request that got no answer from `member` means: Retry, unless the member's
        TLS certificate was refused (another attempt would be refused the same way)."""
        seen: Set[int] = set()
        todo: List[Any] = [exc]
        while todo:
            cause = todo.pop()
            if cause is None or id(cause) in seen or not isinstance(cause, BaseException):
                continue
            seen.add(id(cause))
            if isinstance(cause, ssl.SSLCertVerificationError):
                return ClusterError(f"the TLS certificate of etcd at {member} was refused: "
                                    f"{cause.verify_message}")
            if isinstance(cause, ssl.SSLError) and cause.reason in _CLIENT_CERT_REFUSED:
                return ClusterError(
                    f"etcd at {member} refused this client's TLS certificate, or its absence "
                    f"({cause.reason}): pass cert_cert= and cert_key= to "
                    f"interlock.cluster.connect(), signed by a CA that etcd trusts")
            todo += [cause.__cause__, cause.__context__, getattr(cause, "reason", None)]
        return Retry(f"{type(exc).__name__}: {exc}")

    def _post(self, member: Member, path: str, data: bytes, headers: Dict[str, str],
              seconds: float) -> Tuple[int, bytes]:
        """One POST to `member` on a pooled connection: the answer's status and body. A
        failure raises Retry, or an error where trying again cannot help (:meth:`failure`)."""
        with self._pools_lock:
            if member.pool is None:
                member.pool = Pool(lambda seconds: self.connect(member, seconds),
                                   f"{member.host}:{member.port}")
            pool = member.pool
        try:
            return pool.request(path, data, headers, seconds)
        except ConnectionFailed as exc:
            raise self.failure(member, exc) from exc

    # ---- authentication -------------------------------------------------------------------

    def auth_header(self, member: Member, seconds: float) -> Dict[str, str]:
        """The Authorization header for a request to `member` (logging in there first if this
        process has no token from it): empty without credentials."""
        if self.credentials is None:
            return {}
        token = member.token
        if token is None:
            token = member.token = self._authenticate(member, seconds)
        return {"Authorization": token} if token else {}

    def _authenticate(self, member: Member, seconds: float) -> str:
        """A new token from `member` ("" when etcd has authentication off)."""
        assert self.credentials is not None
        body = json.dumps({"name": self.credentials.user,
                           "password": self.credentials.password}).encode()
        status, data = self._post(member, "/v3/auth/authenticate", body, {}, seconds)
        try:
            answer = self.answer(member, "/v3/auth/authenticate", status, data)
        except ClusterError as exc:
            if "authentication is not enabled" in str(exc):
                return ""
            raise
        return str(answer.get("token", ""))

    # ---- streams ------------------------------------------------------------------------

    def connect(self, member: Member, seconds: float) -> socket.socket:
        """A new connection to `member` (TLS when configured), for a stream of its own; Retry
        if it cannot be made within `seconds`."""
        try:
            sock = socket.create_connection((member.host, member.port), timeout=seconds)
        except OSError as exc:
            raise Retry(f"cannot connect: {exc}") from exc
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.tls is None:
            return sock
        try:
            return self.tls.wrap_socket(sock, server_hostname=member.host)
        except OSError as exc:  # ssl.SSLError among them
            sock.close()
            raise self.failure(member, exc) from exc

    def close(self) -> None:
        for member in self.members.all:
            with self._pools_lock:
                pool, member.pool = member.pool, None
            if pool is not None:
                pool.close()
