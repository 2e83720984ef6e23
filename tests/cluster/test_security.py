"""interlock.cluster's security (_transport, _session, Cluster pickling): passwords over TLS and
over plain HTTP, tokens that expire or belong to a member that died, clear errors for wrong
credentials and for namespaces outside a user's grant, TLS certificates checked both ways,
and passwords kept out of pickles. Against real etcd members with authentication on (the role
grant is the one docs/cluster.md gives: read and write on the namespace's prefix)."""

import os
import pickle
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from interlock import cluster as cl
from interlock.cluster import AuthenticationError, ClusterError, PermissionDeniedError

from cluster import cluster_workers as cw

ROOT_PASSWORD = "root-secret-4b1d"
PASSWORD = "app-secret-9f2c"  # the user "app", granted /granted/ only
NAMESPACE = "granted"


def _secured(members=1, tls=False, token_ttl=None):
    from interlock.cluster.testing import EtcdCluster

    etcd = EtcdCluster(members=members, in_memory=True, tls=tls, client_cert_auth=tls,
                       auth_token_ttl=token_ttl).start()
    try:
        etcd.enable_auth(ROOT_PASSWORD, {"app": (PASSWORD, [f"/{NAMESPACE}/"])})
    except BaseException:
        etcd.close()
        raise
    return etcd


@pytest.fixture(scope="module")
def plain_auth():
    """One member with authentication on, over plain HTTP."""
    etcd = _secured()
    yield etcd
    etcd.close()


@pytest.fixture(scope="module")
def tls_auth():
    """One member with authentication on, serving TLS and requiring client certificates."""
    etcd = _secured(tls=True)
    yield etcd
    etcd.close()


def _connect(etcd, **options):
    arguments = dict(namespace=NAMESPACE, user="app", password=PASSWORD, lease_ttl=3,
                     timeout=5, **etcd.connect_options())
    arguments.update(options)
    return cl.connect(etcd.endpoints, **arguments)


def _use(c):
    """A lock held and given back, and an event set by another thread while one waits."""
    lock = c.Lock("used")
    assert lock.acquire(timeout=10)
    lock.release()
    event = c.Event(f"used-{time.monotonic_ns()}")
    threading.Timer(0.2, event.set).start()
    assert event.wait(10)


@pytest.mark.parametrize("where", ["plain HTTP", "TLS"])
def test_a_password_works_over_plain_http_and_over_tls(plain_auth, tls_auth, where):
    etcd = plain_auth if where == "plain HTTP" else tls_auth
    with _connect(etcd) as c:
        _use(c)


def test_a_wrong_password_is_an_authentication_error_at_connect(plain_auth):
    start = time.monotonic()
    with pytest.raises(AuthenticationError, match="refused the user 'app'") as info:
        _connect(plain_auth, password="not-the-password")
    assert isinstance(info.value, PermissionError) and isinstance(info.value, ClusterError)
    assert not isinstance(info.value, ConnectionError)  # not ClusterUnavailableError
    assert time.monotonic() - start < 4  # at once, not after the timeout


def test_no_user_where_etcd_requires_one_is_an_authentication_error(plain_auth):
    with pytest.raises(AuthenticationError, match="pass user= and password="):
        cl.connect(plain_auth.endpoints, namespace=NAMESPACE, timeout=5)


def test_a_namespace_outside_the_grant_is_a_permission_error_naming_it(plain_auth):
    with pytest.raises(PermissionDeniedError, match="'elsewhere'") as info:
        _connect(plain_auth, namespace="elsewhere")
    assert isinstance(info.value, PermissionError)


def test_user_and_password_go_together(plain_auth):
    with pytest.raises(ValueError, match="together"):
        cl.connect(plain_auth.endpoints, user="app")
    with pytest.raises(TypeError):
        cl.connect(plain_auth.endpoints, user="app", password=b"bytes")


def test_an_expired_token_is_renewed_without_an_error_or_a_lost_hold():
    etcd = _secured(token_ttl=2)
    try:
        with _connect(etcd) as c:
            lock = c.Lock("across-expiry")
            assert lock.acquire(timeout=10)
            event = c.Event("across-expiry-event")
            setter = threading.Timer(3.5, event.set)
            setter.start()
            assert event.wait(20)  # the watch was made with a token that expired meanwhile
            time.sleep(0.5)  # every token given so far has expired by now
            assert not lock.lost
            lock.release()  # with a new token: no LockLostError
            _use(c)
            # The waiter can wake before set() has read its answer (it logged in again
            # first): on a loaded machine that answer may come after the test's end.
            setter.join(30)
            assert not setter.is_alive()
    finally:
        etcd.close()


def test_a_token_from_a_killed_member_is_replaced_on_the_next(tmp_path):
    etcd = _secured(members=3)
    try:
        with _connect(etcd, lease_ttl=6, timeout=15) as c:
            lock = c.Lock("across-a-kill")
            assert lock.acquire(timeout=10)
            # Simple tokens belong to the member that issued them: the first endpoint, where
            # every request of this process has gone so far.
            etcd.members[0].kill()
            _use(c)  # another member: a new token, no error
            assert not lock.lost
            lock.release()
    finally:
        etcd.close()


def test_the_wrong_ca_is_refused_at_once(tls_auth, tmp_path):
    from interlock.cluster.testing import make_tls_files

    other = make_tls_files(str(tmp_path), name="another")  # a CA that signed nothing of etcd's
    start = time.monotonic()
    with pytest.raises(ClusterError, match="TLS certificate of etcd .* was refused"):
        _connect(tls_auth, ca_cert=other.ca_cert)
    assert time.monotonic() - start < 4


def test_a_missing_client_certificate_is_refused_at_once(tls_auth):
    start = time.monotonic()
    with pytest.raises(ClusterError, match="refused this client's TLS certificate"):
        cl.connect(tls_auth.endpoints, namespace=NAMESPACE, user="app", password=PASSWORD,
                   ca_cert=tls_auth.tls.ca_cert, timeout=5)
    assert time.monotonic() - start < 4


def test_tls_files_are_checked_at_connect(tls_auth, tmp_path):
    with pytest.raises(ValueError, match="cannot load the TLS files"):
        cl.connect(tls_auth.endpoints, ca_cert=str(tmp_path / "missing.pem"))
    with pytest.raises(ValueError, match="together"):
        cl.connect(tls_auth.endpoints, ca_cert=tls_auth.tls.ca_cert,
                   cert_cert=tls_auth.tls.client_cert)


def test_a_pickle_carries_no_password(plain_auth):
    with _connect(plain_auth) as c:
        for thing in (c, c.Lock("pl"), c.Semaphore("ps", 2), c.Event("pe"), c.Condition("pc"),
                      c.Barrier("pb", 2), c.RWLock("prw")):
            data = pickle.dumps(thing)
            assert PASSWORD.encode() not in data, type(thing).__name__
        assert PASSWORD not in repr(c._config.__dict__.get("options"))


def test_a_child_that_multiprocessing_starts_receives_the_password(plain_auth, ctx):
    with _connect(plain_auth) as c:
        lock = c.Lock("child")
        results = ctx.Queue()
        child = ctx.Process(target=cw.acquire_and_report, args=(lock, results, 30))
        child.start()
        outcome = results.get(timeout=60)[0]
        child.join(30)
        assert outcome == "acquired" and child.exitcode == 0


_UNPICKLE = """
    import pickle, sys
    from interlock.cluster import AuthenticationError
    try:
        lock = pickle.loads(sys.stdin.buffer.read())  # it registers: a first request
        assert lock.acquire(timeout=10)
        lock.release()
        print("used")
    except AuthenticationError as exc:
        print("AuthenticationError:", exc)
"""


def _unpickle_elsewhere(data, **env):
    environment = {k: v for k, v in os.environ.items() if not k.startswith("INTERLOCK_ETCD")}
    environment.update(env)
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(_UNPICKLE)], input=data,
                         capture_output=True, timeout=120, env=environment)
    assert out.returncode == 0, out.stderr.decode()
    return out.stdout.decode()


def test_a_primitive_unpickled_elsewhere_takes_that_process_s_credentials(plain_auth):
    with _connect(plain_auth) as c:
        data = pickle.dumps(c.Lock("elsewhere"))
    said = _unpickle_elsewhere(data)
    assert said.startswith("AuthenticationError:") and "INTERLOCK_ETCD_PASSWORD" in said
    assert _unpickle_elsewhere(data, INTERLOCK_ETCD_PASSWORD=PASSWORD) == "used\n"
    assert _unpickle_elsewhere(data, INTERLOCK_ETCD_USER="app",
                               INTERLOCK_ETCD_PASSWORD=PASSWORD) == "used\n"
    said = _unpickle_elsewhere(data, INTERLOCK_ETCD_USER="someone-else",
                               INTERLOCK_ETCD_PASSWORD=PASSWORD)
    assert said.startswith("AuthenticationError:")


def test_a_primitive_unpickled_where_connect_was_called_uses_that_password(plain_auth):
    with _connect(plain_auth) as c:
        data = pickle.dumps(c.Lock("here"))
        cl._clusters.clear()  # as in a process that only called connect()
        lock = pickle.loads(data)
        assert lock.acquire(timeout=10)
        lock.release()
