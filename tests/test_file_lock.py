"""interlock.FileLock and interlock.lockf: OFD ownership, threads, processes, crashes,
byte ranges, upgrade/downgrade, and the flock fallback."""

import errno
import fcntl
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest

import interlock
from interlock import FileLock, lockf

import workers
from conftest import native_only

# The portable backend's FileLock is flock(2): whole files, no byte ranges (docs/platforms.md).
RANGES = native_only("FileLock and lockf byte ranges (flock locks whole files)")
# (start, length) of the range the tests lock where ranges exist; the whole file elsewhere.
SOME_RANGE = (3, 4) if interlock.native else (0, 0)


@pytest.fixture
def path(tmp_path):
    return str(tmp_path / "lockfile")


def test_acquire_release_and_file_is_kept(path):
    lock = FileLock(path)
    assert os.path.exists(path)
    assert not lock.locked()
    assert lock.acquire() is True and lock.locked()
    lock.release()
    assert not lock.locked()
    lock.close()
    assert os.path.exists(path)  # never deleted, so holders never split across inodes


def test_two_objects_exclude_each_other_in_one_thread(path):
    a, b = FileLock(path), FileLock(path)
    assert a.acquire()
    assert b.acquire(False) is False
    assert b.acquire(timeout=0.1) is False
    a.release()
    assert b.acquire(False) is True
    b.release()


def test_two_threads_exclude_each_other(path):
    box = {"n": 0, "inside": 0, "max": 0}

    def work():
        lock = FileLock(path)
        for _ in range(200):
            with lock:
                box["inside"] += 1
                box["max"] = max(box["max"], box["inside"])
                box["n"] += 1
                box["inside"] -= 1

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert box["n"] == 800 and box["max"] == 1


def test_one_object_shared_by_threads_is_one_holder(path):
    lock = FileLock(path)
    lock.acquire()
    got = []
    t = threading.Thread(target=lambda: got.append(lock.acquire(timeout=0.1)))
    t.start()
    t.join()
    assert got == [False]
    t = threading.Thread(target=lock.release)  # any thread may release
    t.start()
    t.join()
    assert not lock.locked()


def test_shared_locks_coexist_and_exclude_writers(path):
    r1, r2, w = FileLock(path, shared=True), FileLock(path, shared=True), FileLock(path)
    assert r1.acquire() and r2.acquire()
    assert w.acquire(False) is False
    r1.release()
    assert w.acquire(False) is False
    r2.release()
    assert w.acquire(False) is True
    assert FileLock(path, shared=True).acquire(False) is False
    w.release()


@RANGES
def test_byte_ranges(path):
    a = FileLock(path, start=0, length=10)
    b = FileLock(path, start=10, length=10)
    c = FileLock(path, start=5, length=10)
    tail = FileLock(path, start=100)  # length 0: to the end, including later growth
    far = FileLock(path, start=10**9, length=1)
    assert a.acquire(False) and b.acquire(False)
    assert c.acquire(False) is False
    assert tail.acquire(False)
    assert far.acquire(False) is False
    for lock in (a, b, tail):
        lock.release()


def test_release_errors_and_arguments(path):
    lock = FileLock(path)
    with pytest.raises(ValueError, match="unlocked"):
        lock.release()
    with pytest.raises(TypeError):
        lock.acquire(timeout="1")
    with pytest.raises(ValueError, match="NaN"):
        lock.acquire(timeout=float("nan"))
    with pytest.raises(TypeError):
        lock.acquire("x")
    with pytest.raises(ValueError, match="whence"):
        FileLock(path, whence=3)
    with pytest.raises(TypeError):
        FileLock(path, start=1.5)
    with pytest.raises(ValueError):
        FileLock(path + "\0x")
    assert lock.acquire(timeout=-1) is True
    lock.release()


def test_bad_paths_raise_matching_oserror_with_path(tmp_path):
    with pytest.raises(IsADirectoryError, match=str(tmp_path)):
        FileLock(tmp_path)
    missing = tmp_path / "no" / "such" / "dir" / "lock"
    with pytest.raises(FileNotFoundError, match="no/such/dir"):
        FileLock(missing)
    target = tmp_path / "target"
    target.write_text("")
    link = tmp_path / "link"
    link.symlink_to(target)
    with pytest.raises(OSError, match="symbolic link") as info:
        FileLock(link)
    assert info.value.errno == errno.ELOOP


def test_no_permission(tmp_path):
    if os.geteuid() == 0:
        # root bypasses file permissions; check as an unprivileged user in a child.
        path = tmp_path / "private"
        path.write_text("")
        os.chmod(path, 0o000)
        os.chmod(tmp_path, 0o777)
        code = textwrap.dedent(f"""
            import os, sys
            import interlock
            os.setuid(65534)  # after the imports: nobody cannot read root's installation
            try:
                interlock.FileLock({str(path)!r})
            except PermissionError as e:
                print("PermissionError", {str(path)!r} in str(e))
        """)
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             timeout=60)
        assert out.stdout.strip() == "PermissionError True", out.stderr
    else:
        path = tmp_path / "private"
        path.write_text("")
        os.chmod(path, 0o000)
        with pytest.raises(PermissionError):
            FileLock(path)


def test_closing_another_descriptor_keeps_the_lock(path):
    lock = FileLock(path)
    lock.acquire()
    other = os.open(path, os.O_RDWR)
    os.close(other)  # with classic fcntl/lockf locks this would drop the process's lock
    with open(path) as f:
        f.read()
    assert FileLock(path).acquire(False) is False
    lock.release()


def test_upgrade_and_downgrade(path):
    lock, reader = FileLock(path, shared=True), FileLock(path, shared=True)
    lock.acquire()
    reader.acquire()
    assert lock.upgrade(timeout=0.1) is False  # another reader: still shared
    assert lock.shared and lock.locked()
    assert FileLock(path).acquire(False) is False  # never unlocked in between
    threading.Timer(0.1, reader.release).start()
    assert lock.upgrade(timeout=10) is True
    assert not lock.shared
    assert FileLock(path, shared=True).acquire(False) is False
    lock.downgrade()
    assert lock.shared
    other_reader = FileLock(path, shared=True)
    assert other_reader.acquire(False) is True  # readers may join again
    assert FileLock(path).acquire(False) is False  # but no writer: never unlocked
    other_reader.release()
    lock.release()
    with pytest.raises(ValueError):
        lock.upgrade()
    with pytest.raises(ValueError):
        lock.downgrade()


def test_cross_process_exclusion_and_handoff(ctx, path):
    held, results = ctx.Event(), ctx.Queue()
    p = ctx.Process(target=workers.file_lock_hold, args=(path, held, 0.5))
    p.start()
    assert held.wait(30)
    lock = FileLock(path)
    assert lock.acquire(False) is False
    start = time.monotonic()
    assert lock.acquire(timeout=30) is True  # woken by the kernel when the child releases
    assert time.monotonic() - start < 10
    q = ctx.Process(target=workers.file_lock_try, args=(path, results, 0.1))
    q.start()
    assert results.get(timeout=30) is False
    lock.release()
    p.join(30)
    q.join(30)


def test_holder_killed_by_sigkill_releases(ctx, path):
    held = ctx.Event()
    p = ctx.Process(target=workers.file_lock_hold_until_killed, args=(path, held))
    p.start()
    assert held.wait(30)
    lock = FileLock(path)
    assert lock.acquire(False) is False
    threading.Timer(0.2, os.kill, (p.pid, signal.SIGKILL)).start()
    start = time.monotonic()
    assert lock.acquire(timeout=30) is True
    assert time.monotonic() - start < 10
    lock.release()
    p.join(30)


def test_fork_child_does_not_share_parents_hold(path):
    import multiprocessing as mp

    lock = FileLock(path)
    lock.acquire()
    ctx = mp.get_context("fork")
    results = ctx.Queue()

    def child():
        results.put((lock.locked(), lock.acquire(False)))

    p = ctx.Process(target=child)
    p.start()
    assert results.get(timeout=30) == (False, False)  # not held in the child, and excluded
    p.join(30)
    assert lock.locked()
    assert FileLock(path).acquire(False) is False  # the child exiting did not drop it
    lock.release()


def test_pickled_copy_is_another_holder(ctx, path):
    start, length = SOME_RANGE
    lock = FileLock(path, start=start, length=length)
    lock.acquire()
    results = ctx.Queue()
    p = ctx.Process(target=workers.file_lock_try,
                    args=(path, results, 0.05, False, start, length))
    p.start()
    assert results.get(timeout=30) is False
    p.join(30)
    lock.release()


def test_ctrl_c_interrupts_wait(path):
    holder = FileLock(path)
    holder.acquire()
    threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGINT)).start()
    start = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        FileLock(path).acquire(timeout=30)
    assert time.monotonic() - start < 5
    holder.release()


def test_timeout_waits_in_kernel_without_burning_cpu(path):
    holder = FileLock(path)
    holder.acquire()
    before = time.process_time()
    start = time.monotonic()
    assert FileLock(path).acquire(timeout=0.5) is False
    elapsed = time.monotonic() - start
    assert 0.45 <= elapsed < 3
    assert time.process_time() - before < 0.05
    holder.release()


@RANGES
def test_lockf_like_fcntl(path):
    open(path, "w").close()
    with open(path, "r+") as f, open(path, "r+") as g:
        assert lockf(f, LOCK_EX) is None
        with pytest.raises(OSError) as info:
            lockf(g, interlock.file_lock.LOCK_EX | interlock.file_lock.LOCK_NB)
        assert info.value.errno in (errno.EAGAIN, errno.EACCES)
        with pytest.raises(TimeoutError):
            lockf(g.fileno(), LOCK_EX, timeout=0.1)
        lockf(f, LOCK_UN)
        lockf(g, LOCK_SH | interlock.file_lock.LOCK_NB)
        lockf(f, LOCK_SH | interlock.file_lock.LOCK_NB)  # two readers
        lockf(g, LOCK_UN)
        lockf(f, LOCK_UN)
        lockf(f, LOCK_EX, 5, 10, os.SEEK_SET)
        lockf(g, LOCK_EX | interlock.file_lock.LOCK_NB, 5, 0)  # bytes 0..4: free
        lockf(f, LOCK_UN, 5, 10)
        lockf(g, LOCK_UN, 5, 0)


LOCK_EX, LOCK_SH, LOCK_UN = fcntl.LOCK_EX, fcntl.LOCK_SH, fcntl.LOCK_UN


def test_lockf_errors_match_fcntl(path):
    with open(path, "w") as f:
        for call in (fcntl.lockf, lockf):
            with pytest.raises(ValueError, match="unrecognized lockf argument"):
                call(f, 0)
            with pytest.raises(TypeError):
                call(f, LOCK_EX, "1")
            with pytest.raises(TypeError):
                call("not a file", LOCK_EX)
            with pytest.raises(ValueError):
                call(-1, LOCK_EX)
        with pytest.raises(OSError) as ours:
            lockf(987654, LOCK_EX)
        assert ours.value.errno == errno.EBADF
        with pytest.raises(ValueError, match="NaN"):
            lockf(f, LOCK_EX, timeout=float("nan"))


def test_lockf_ownership_follows_the_open_file_description(path):
    with open(path, "w") as f:
        lockf(f, LOCK_EX)
        dup = os.dup(f.fileno())
        lockf(dup, LOCK_EX | interlock.file_lock.LOCK_NB)  # same description: same owner
        os.close(dup)  # closing a duplicate does not release it
        with open(path, "w") as g:
            with pytest.raises(BlockingIOError):
                lockf(g, LOCK_EX | interlock.file_lock.LOCK_NB)
        lockf(f, LOCK_UN)


@native_only("open-file-description locks to fall back from")
def test_flock_fallback_when_ofd_is_unavailable(tmp_path):
    code = textwrap.dedent(f"""
        import threading
        from interlock import FileLock, _core
        assert not _core.file_lock_uses_ofd()
        p = {str(tmp_path / "f")!r}
        a, b = FileLock(p), FileLock(p)
        assert a.acquire(False) and not b.acquire(False) and not b.acquire(timeout=0.1)
        a.release()
        assert b.acquire(timeout=1)
        b.release()
        r1, r2 = FileLock(p, shared=True), FileLock(p, shared=True)
        assert r1.acquire(False) and r2.acquire(False)
        try:
            FileLock(p, start=5, length=5).acquire()
        except OSError as e:
            print("ranges refused:", e.errno)
    """)
    env = dict(os.environ, INTERLOCK_NO_OFD="1")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f"ranges refused: {errno.ENOTSUP}"


@RANGES
def test_stress_no_conflicting_holds_overlap(ctx, path):
    log = ctx.Queue()
    procs = [ctx.Process(target=workers.file_lock_stress, args=(path, seed, 40, log))
             for seed in range(4)]
    for p in procs:
        p.start()
    holds, done = [], 0
    while done < len(procs):
        item = log.get(timeout=120)
        if item is None:
            done += 1
        else:
            holds.append(item)
    for p in procs:
        p.join(30)
    assert len(holds) > 20

    def end(start, length):
        return float("inf") if length == 0 else start + length

    for i, a in enumerate(holds):
        for b in holds[i + 1:]:
            if a[2] and b[2]:
                continue  # two shared holds may overlap
            if a[3] >= end(b[3], b[4]) or b[3] >= end(a[3], a[4]):
                continue  # disjoint byte ranges
            assert a[6] <= b[5] or b[6] <= a[5], (a, b)  # the intervals must not overlap


def test_closed_lock_refuses_use(path):
    lock = FileLock(path)
    lock.acquire()
    lock.close()  # releases, then closes the descriptor
    assert not lock.locked()
    assert FileLock(path).acquire(False) is True
    with pytest.raises(ValueError, match="closed FileLock"):
        lock.acquire()


@RANGES
def test_lockf_whence_and_write_access_like_fcntl(path):
    with open(path, "wb") as f:
        f.write(b"x" * 20)
    with open(path, "r+b") as f, open(path, "r+b") as g:
        lockf(f, LOCK_EX, 5, -5, os.SEEK_END)  # bytes 15..19
        with pytest.raises(OSError) as info:
            lockf(g, LOCK_EX | interlock.file_lock.LOCK_NB, 1, 19)
        assert info.value.errno in (errno.EAGAIN, errno.EACCES)
        lockf(g, LOCK_EX | interlock.file_lock.LOCK_NB, 5, 10)  # bytes 10..14 are free
        lockf(g, LOCK_UN, 5, 10)
        os.lseek(f.fileno(), 8, os.SEEK_SET)
        lockf(f, LOCK_EX, 2, 0, os.SEEK_CUR)  # bytes 8..9, from the descriptor's offset
        with pytest.raises(OSError):
            lockf(g, LOCK_EX | interlock.file_lock.LOCK_NB, 1, 9)
        lockf(g, LOCK_EX | interlock.file_lock.LOCK_NB, 1, 10)
    with open(path, "rb") as reader:  # an exclusive lock needs a descriptor open for writing
        for call in (fcntl.lockf, lockf):
            with pytest.raises(OSError) as info:
                call(reader, LOCK_EX)
            assert info.value.errno == errno.EBADF
        lockf(reader, LOCK_SH)  # a shared one does not
        lockf(reader, LOCK_UN)


def test_acquire_async_waits_for_another_process_without_blocking_the_loop(tmp_path, ctx):
    import asyncio

    path = str(tmp_path / "async.lock")
    held = ctx.Event()
    holder = ctx.Process(target=workers.file_lock_hold, args=(path, held, 0.5))
    holder.start()
    assert held.wait(60)

    async def main():
        lock = FileLock(path)
        assert await lock.acquire_async(False) is False
        assert await lock.acquire_async(timeout=0.1) is False
        ticks = 0
        task = asyncio.create_task(lock.acquire_async(timeout=30))
        while not task.done():
            await asyncio.sleep(0.01)
            ticks += 1
        assert await task is True and ticks > 5  # the loop ran while the task waited
        lock.release()
        async with lock:
            assert lock.locked()
        assert not lock.locked()

    asyncio.run(main())
    holder.join(30)


def test_a_cancelled_acquire_async_leaves_the_file_unlocked(tmp_path):
    import asyncio

    path = str(tmp_path / "cancel.lock")

    async def main():
        first, second = FileLock(path), FileLock(path)
        first.acquire()
        task = asyncio.create_task(second.acquire_async())
        await asyncio.sleep(0.05)
        first.release()
        task.cancel()
        outcome = (await asyncio.gather(task, return_exceptions=True))[0]
        await asyncio.sleep(0.3)  # the waiting thread's slice is over
        if outcome is True:
            second.release()
        assert not second.locked()
        assert first.acquire(False) is True  # nothing was left taken
        first.release()

    asyncio.run(main())
