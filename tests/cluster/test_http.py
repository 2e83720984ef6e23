"""interlock.cluster._http: the kept-alive connections that unary requests share, on a real
etcd. A request reuses an idle connection; concurrent requests each get one; a connection that
the member closed while it sat idle (a restart) costs a new connection, not a failover."""

import threading

import pytest

from interlock.cluster._transport import FAILOVER_RETRY_SECONDS, Transport


def _addresses(server):
    return [(host, int(port)) for host, port in (e.rsplit(":", 1) for e in server.endpoints)]


class CountingTransport(Transport):
    """A Transport that counts the connections it makes."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.connections = 0
        self._count_lock = threading.Lock()

    def connect(self, member, seconds):
        with self._count_lock:
            self.connections += 1
        return super().connect(member, seconds)


def _range(transport):
    return transport.call("/v3/kv/range", {"key": "L2h0dHAtdGVzdA=="})


@pytest.fixture
def transport(etcd):
    t = CountingTransport(_addresses(etcd), timeout=10)
    yield t
    t.close()


def test_requests_in_sequence_share_one_connection(transport):
    for _ in range(20):
        assert "header" in _range(transport)
    assert transport.connections == 1


def test_concurrent_requests_each_get_a_connection_and_all_are_kept(transport):
    barrier = threading.Barrier(6)
    answers, errors = [], []

    def client():
        try:
            barrier.wait()
            for _ in range(15):
                answers.append(_range(transport))
        except Exception as exc:  # reported below
            errors.append(exc)
    threads = [threading.Thread(target=client) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == [] and len(answers) == 90
    assert 1 <= transport.connections <= 6
    made = transport.connections
    for _ in range(6):
        _range(transport)
    assert transport.connections == made  # they all went back to the pool


def test_a_member_restart_costs_a_new_connection_not_a_failover():
    from interlock.cluster.testing import EtcdCluster

    with EtcdCluster(members=1, in_memory=True) as server:
        t = CountingTransport(_addresses(server), timeout=10)
        try:
            _range(t)
            _range(t)
            assert t.connections == 1
            server.members[0].kill()  # its end of the idle connection closes
            server.restart(server.members[0])
            assert "header" in _range(t)
            assert t.connections == 2
            assert t.members.all[0].failed_at == -FAILOVER_RETRY_SECONDS  # never failed
        finally:
            t.close()


def test_a_closed_transport_keeps_no_connection(transport):
    _range(transport)
    pool = transport.members.all[0].pool
    transport.close()
    assert pool is not None and pool._idle == []
