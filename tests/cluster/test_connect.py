"""interlock.cluster.connect, Cluster, names and bad input: clear errors, never a hang."""

import pickle
import socket
import time

import pytest

from interlock import OwnerDiedError
from interlock import cluster as cl
from interlock.cluster import ClusterUnavailableError


def _closed_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


@pytest.mark.parametrize("endpoints, error", [
    (None, TypeError), (42, TypeError), ([], ValueError), ([42], TypeError),
    (["localhost"], ValueError), (["host:port"], ValueError), (["h:0"], ValueError),
    (["h:70000"], ValueError), ([":2379"], ValueError),
])
def test_bad_endpoints_are_refused_before_any_connection(endpoints, error):
    with pytest.raises(error):
        cl.connect(endpoints)


@pytest.mark.parametrize("namespace, error", [
    (b"bytes", TypeError), (7, TypeError), (None, TypeError), ("", ValueError),
    ("a/b", ValueError), ("nul\0", ValueError), ("x" * 101, ValueError),
    ("new\nline", ValueError),
])
def test_bad_namespace_is_refused(etcd, namespace, error):
    with pytest.raises(error):
        cl.connect(etcd.endpoints, namespace=namespace)


@pytest.mark.parametrize("option, value, error", [
    ("lease_ttl", "10", TypeError), ("lease_ttl", 0, ValueError), ("lease_ttl", 1, ValueError),
    ("lease_ttl", float("nan"), ValueError), ("lease_ttl", True, TypeError),
    ("timeout", -1, ValueError), ("timeout", float("inf"), ValueError),
    ("timeout", None, TypeError),
])
def test_bad_options_are_refused(etcd, option, value, error):
    with pytest.raises(error):
        cl.connect(etcd.endpoints, **{option: value})


def test_unreachable_endpoint_fails_within_the_timeout_with_a_connection_error():
    start = time.monotonic()
    with pytest.raises(ClusterUnavailableError) as info:
        cl.connect([f"127.0.0.1:{_closed_port()}"], timeout=1.5)
    took = time.monotonic() - start
    assert isinstance(info.value, ConnectionError)
    assert "did not answer within 1.5 s" in str(info.value)
    assert took < 10  # the timeout, not a hang (generous: shared machine)


@pytest.mark.parametrize("name, error", [
    ("", ValueError), ("a/b", ValueError), ("/", ValueError), ("x" * 201, ValueError),
    ("é" * 101, ValueError), (b"bytes", TypeError), (None, TypeError), (3, TypeError),
    ("tab\t", ValueError),
])
def test_bad_names_are_refused_by_every_factory(cluster, name, error):
    for factory in (cluster.Lock, cluster.RLock, cluster.Semaphore, cluster.BoundedSemaphore,
                    cluster.Condition, cluster.Event):
        with pytest.raises(error):
            factory(name)
    with pytest.raises(error):
        cluster.Barrier(name, 2)


def test_long_and_unicode_names_within_the_limit_work(cluster):
    for name in ("x" * 200, "é" * 100, "名前", "with space", "dots.and-dashes_"):
        lock = cluster.Lock(name)
        assert lock.acquire(timeout=5)
        lock.release()


def test_the_same_name_with_other_parameters_is_refused(cluster):
    cluster.Semaphore("s", 3)
    assert cluster.Semaphore("s", 3).get_value() == 3
    with pytest.raises(ValueError, match="already a Semaphore"):
        cluster.Semaphore("s", 2)
    with pytest.raises(ValueError, match="already a Semaphore"):
        cluster.BoundedSemaphore("s", 3)
    with pytest.raises(ValueError, match="already a Semaphore"):
        cluster.Lock("s")
    cluster.Barrier("b", 3)
    with pytest.raises(ValueError, match="parties=3"):
        cluster.Barrier("b", 4)
    cluster.Event("e")
    with pytest.raises(ValueError):
        cluster.RLock("e")


def test_namespaces_keep_primitives_apart(etcd, cluster):
    other = cl.connect(etcd.endpoints, namespace=cluster.namespace + "-other", lease_ttl=3)
    try:
        assert cluster.Lock("same").acquire(timeout=5)
        assert other.Lock("same").acquire(timeout=0.2)  # another namespace: another lock
        other.Lock("same").release()
        other.Semaphore("kinds", 1)  # no clash of kinds across namespaces
        cluster.Event("kinds")
    finally:
        other.close()


def test_closing_revokes_the_lease_and_releases_what_was_held(etcd, cluster):
    other = cl.connect(etcd.endpoints, namespace=cluster.namespace, lease_ttl=30)
    assert other.Lock("l").acquire(timeout=5)
    assert other.Semaphore("s", 1).acquire(timeout=5)
    with pytest.raises(TypeError):
        other.Semaphore("s", "one")
    start = time.monotonic()
    other.close()
    # Released at once, not after the 30 s lease. The holder left without releasing, so the
    # next owner is told, as after a death.
    lock = cluster.Lock("l")
    with pytest.raises(OwnerDiedError):
        lock.acquire(timeout=5)
    assert lock.locked()
    lock.release()
    assert cluster.Semaphore("s", 1).acquire(timeout=5)
    assert time.monotonic() - start < 10
    other.close()  # idempotent
    with pytest.raises(cl.ClusterError, match="closed"):
        other.Lock("l")


def test_cluster_is_a_context_manager(etcd):
    with cl.connect(etcd.endpoints, namespace="cm-test", lease_ttl=3) as c:
        assert c.Lock("x").acquire(timeout=5)
        assert "127.0.0.1" in repr(c)
    with pytest.raises(cl.ClusterError):
        c.Event("y")


def test_primitives_pickle_as_their_address(cluster):
    lock = cluster.Lock("pickled")
    state = pickle.dumps(lock)
    assert b"pickled" in state and cluster.namespace.encode() in state
    again = pickle.loads(state)
    assert again.name == "pickled"
    assert lock.acquire(timeout=5)
    assert again.locked()
    lock.release()
    for made in (cluster.RLock("r"), cluster.Semaphore("s", 2), cluster.BoundedSemaphore("b"),
                 cluster.Event("e"), cluster.Condition("c"), cluster.Barrier("ba", 2)):
        copy = pickle.loads(pickle.dumps(made))
        assert type(copy) is type(made) and copy.name == made.name
