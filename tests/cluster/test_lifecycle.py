"""The process life cycle with the cluster client busy (interlock._lifecycle's "cluster" and
"cluster_holds" stages): children start, under every start method, while one thread of the
parent takes and gives back a cluster Lock and pulses a cluster Event, and others churn local
primitives and a FileLock. Each child uses the cluster through a session of its own, and its
inherited or received local primitives, without deadlocking."""

import threading

from cluster import cluster_workers as cw
from interlock import synchronize

import lifecycle_workers


def _cluster_churn(lock, event, stop, counts):
    n = 0
    while not stop.is_set():
        with lock:
            event.set()
            event.clear()
        n += 1
    counts.append(n)


def test_children_start_while_threads_use_the_cluster(cluster, ctx, tmp_path):
    lock, event = cluster.Lock("busy"), cluster.Event("pulse")
    stop, counts = threading.Event(), []
    threads = [threading.Thread(target=_cluster_churn, args=(lock, event, stop, counts)),
               threading.Thread(target=lifecycle_workers.churn, args=(stop, counts)),
               threading.Thread(target=lifecycle_workers.file_lock_churn,
                                args=(stop, tmp_path / "busy.lock", counts))]
    for thread in threads:
        thread.start()
    try:
        results = ctx.Queue()
        for _ in range(3):
            child = ctx.Process(target=cw.acquire_and_report, args=(lock, results, 60))
            child.start()
            outcome, _, _ = results.get(timeout=90)
            child.join(60)
            assert outcome == "acquired" and child.exitcode == 0
            local = (synchronize.Lock(ctx=ctx), synchronize.Semaphore(0, ctx=ctx),
                     synchronize.Event(ctx=ctx))
            child = ctx.Process(target=lifecycle_workers.use_primitives, args=(*local, results))
            child.start()
            assert results.get(timeout=90) == ("ok", True)
            child.join(60)
            assert child.exitcode == 0 and local[1].acquire(timeout=10) and local[2].is_set()
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    assert len(counts) == 3 and all(n > 0 for n in counts)
