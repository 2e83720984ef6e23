"""Shared memory lifetime and scale: nothing left in /dev/shm, arenas instead of one mapping
per primitive, bounded memory under churn."""

import os
import subprocess
import sys
import textwrap

import pytest

from conftest import START_METHODS, native_core

_core = native_core("shared arenas and slot references")


SHM = "/dev/shm"


def _shm_entries():
    return set(os.listdir(SHM)) if os.path.isdir(SHM) else set()


def _run(code, timeout=300):
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, timeout=timeout)


@pytest.mark.parametrize("method", START_METHODS)
@pytest.mark.parametrize("ending", ["normal", "exception", "child_crash", "parent_sigkill"])
def test_no_dev_shm_entries_left_behind(method, ending):
    before = _shm_entries()
    code = f"""
        import multiprocessing as mp, os, signal
        import interlock
        from interlock import synchronize

        def child(lock, sem, ev, cond, bar):
            lock.acquire()
            if {ending!r} == "child_crash":
                os.kill(os.getpid(), signal.SIGKILL)

        if __name__ == "__main__":
            ctx = mp.get_context({method!r})
            objs = (synchronize.Lock(ctx=ctx), synchronize.Semaphore(2, ctx=ctx),
                    synchronize.Event(ctx=ctx), synchronize.Condition(ctx=ctx),
                    synchronize.Barrier(2, ctx=ctx))
            p = ctx.Process(target=child, args=objs)
            p.start()
            p.join()
            if {ending!r} == "exception":
                raise SystemExit("boom")
            if {ending!r} == "parent_sigkill":
                os.kill(os.getpid(), signal.SIGKILL)
    """
    _run(code, timeout=120)
    leaked = {name for name in _shm_entries() - before if "interlock" in name or
              name.startswith("sem.")}
    assert leaked == set()


@pytest.mark.parametrize("kind, take, held", [
    ("Lock", "acquire()", "locked()"),
    ("RWLock", "acquire_write()", "write_lock().locked()"),  # one slot each, as a Lock
])
def test_a_million_primitives_in_one_process(kind, take, held):
    out = _run(f"""
        import resource
        import interlock
        from interlock import _core
        locks = [interlock.{kind}() for _ in range(1_000_000)]
        locks[0].{take}; locks[-1].{take}
        assert locks[-1].{held} and not locks[500_000].{held}
        print(_core._arena_count(), _core._live_handles())
    """, timeout=600)
    assert out.returncode == 0, out.stderr
    arenas, live = map(int, out.stdout.split())
    assert live >= 1_000_000
    # 64-byte slots, 16383 usable per 1 MiB arena: one mapping per ~16k primitives.
    assert arenas <= 1_000_000 // (_core.ARENA_SLOTS - 1) + 2


def test_shared_memory_per_lock_is_at_most_128_bytes():
    assert _core.SLOT_SIZE <= 128


def test_churn_does_not_grow_memory():
    out = _run("""
        import resource, gc
        import interlock
        from interlock import _core
        def rss_kib():
            with open("/proc/self/status") as f:
                for line in f:
                    if line.startswith("VmRSS"):
                        return int(line.split()[1])
        for _ in range(50_000):
            interlock.Lock(); interlock.Condition(); interlock.Barrier(2)
        base_rss, base_arenas = rss_kib(), _core._arena_count()
        for _ in range(340_000):  # with the warm-up: over a million create/destroy cycles
            interlock.Lock(); interlock.Condition(); interlock.Barrier(2)
        print(rss_kib() - base_rss, _core._arena_count() - base_arenas)
    """, timeout=600)
    assert out.returncode == 0, out.stderr
    grown_kib, new_arenas = map(int, out.stdout.split())
    assert new_arenas == 0
    assert grown_kib < 4096


def test_foreign_file_descriptor_is_refused(tmp_path):
    path = tmp_path / "not-an-arena"
    path.write_bytes(b"\0" * 4096)
    fd = os.open(path, os.O_RDWR)
    with pytest.raises(_core.SegmentError, match="size"):
        _core._attach_arena(fd, 1)
    big = tmp_path / "big"
    big.write_bytes(b"\x01" * (_core.ARENA_SLOTS * _core.SLOT_SIZE))
    fd = os.open(big, os.O_RDWR)
    with pytest.raises(_core.SegmentError, match="not an interlock arena"):
        _core._attach_arena(fd, 1)
    r, w = os.pipe()
    with pytest.raises(_core.SegmentError, match="regular file"):
        _core._attach_arena(r, 1)
    os.close(w)


def test_wrong_token_kind_or_generation_is_refused():
    import interlock
    from interlock import synchronize

    from interlock._sharing import _rebuild

    lock = interlock.Lock()
    token, index, generation, _ = lock._slot_info()
    with pytest.raises(_core.SegmentError, match="not mapped"):
        _rebuild(synchronize.Lock, _Ref(token ^ 1), index, generation)
    with pytest.raises(_core.SegmentError, match="another kind"):
        _rebuild(synchronize.Event, _Ref(token), index, generation)
    with pytest.raises(_core.SegmentError, match="reused"):
        _rebuild(synchronize.Lock, _Ref(token), index, generation + 1)
    with pytest.raises(_core.SegmentError, match="outside"):
        _rebuild(synchronize.Lock, _Ref(token), 10**6, 1)
    with pytest.raises(TypeError, match="not an interlock primitive"):
        _rebuild(dict, _Ref(token), index, generation)
    with pytest.raises(TypeError, match="malformed"):
        _rebuild(synchronize.Lock, token, index, generation)


def _Ref(token):
    from interlock._sharing import ArenaRef

    return ArenaRef(-1, token)


def test_dev_shm_fallback_is_private_unguessable_and_unlinked(tmp_path):
    """Without memfd_create, arenas are O_EXCL files in /dev/shm, mode 0600, random names,
    unlinked at once; sharing with spawned children still works."""
    before = _shm_entries()
    env = dict(os.environ, INTERLOCK_NO_MEMFD="1")
    script = tmp_path / "fallback.py"
    script.write_text(textwrap.dedent("""
        import multiprocessing as mp, os, stat
        from interlock import synchronize

        def child(lock, q):
            q.put(lock.acquire(timeout=5))
            lock.release()

        if __name__ == "__main__":
            ctx = mp.get_context("spawn")
            a, b = synchronize.Lock(ctx=ctx), synchronize.Lock(ctx=ctx)
            names = []
            for fd in os.listdir("/proc/self/fd"):
                try:
                    target = os.readlink(f"/proc/self/fd/{fd}")
                except OSError:
                    continue
                if "interlock-" in target:
                    names.append(target)
                    assert stat.S_IMODE(os.fstat(int(fd)).st_mode) == 0o600
            q = ctx.Queue()
            p = ctx.Process(target=child, args=(a, q))
            p.start()
            print(q.get(timeout=30), names)
            p.join()
    """))
    out = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("True")
    names = eval(out.stdout.split(" ", 1)[1])
    assert len(names) == 1  # both locks live in one arena
    assert names[0].startswith("/dev/shm/interlock-") and names[0].endswith("(deleted)")
    assert len(names[0].split("interlock-")[1].split()[0]) == 16  # 64 random bits, in hex
    assert _shm_entries() - before == set()


def test_arena_of_another_layout_version_is_refused():
    import mmap
    import struct

    fd = os.memfd_create("fake-arena", os.MFD_ALLOW_SEALING)
    os.ftruncate(fd, _core.ARENA_SLOTS * _core.SLOT_SIZE)
    with mmap.mmap(fd, 64) as m:
        # magic "ITLOCK01", then a layout version this build does not know
        m[:16] = struct.pack("<QI", 0x31304B434F4C5449, _core.LAYOUT_VERSION + 1) + b"\0" * 4
    import fcntl

    fcntl.fcntl(fd, fcntl.F_ADD_SEALS, fcntl.F_SEAL_SHRINK)
    with pytest.raises(_core.SegmentError, match="layout version"):
        _core._attach_arena(fd, 1)


def test_unsealed_memfd_is_refused():
    fd = os.memfd_create("unsealed", os.MFD_ALLOW_SEALING)
    os.ftruncate(fd, _core.ARENA_SLOTS * _core.SLOT_SIZE)
    with pytest.raises(_core.SegmentError, match="not sealed"):
        _core._attach_arena(fd, 1)


def test_inherited_primitive_destroyed_by_an_early_fork_hook_is_counted():
    """Regression: a forked child used to count its inherited references in a Python fork
    hook. A collection that ran in the child before that hook (here: a hook registered
    earlier) released references the child had not taken; the slots were later freed twice
    and handed to two primitives at once. The child's references are now taken inside
    fork() itself."""
    script = textwrap.dedent(
        """
        import gc, os
        os.register_at_fork(after_in_child=gc.collect)  # runs before any hook of interlock
        import interlock

        gc.disable()
        live = []
        for _ in range(20):
            garbage = [interlock.Lock() for _ in range(8)]
            garbage.append(garbage)  # a cycle: freed only by a collection
            del garbage
            pid = os.fork()
            if pid == 0:
                os._exit(0)
            assert os.waitpid(pid, 0)[1] == 0
            live += [interlock.Lock() for _ in range(8)]  # would reuse slots freed too early
            gc.collect()
            live += [interlock.Lock() for _ in range(8)]
        fresh = live + [interlock.Lock() for _ in range(100)]
        taken = sum(lock.acquire(False) for lock in fresh)
        assert taken == len(fresh), f"only {taken} of {len(fresh)} fresh locks were free"
        print("ok")
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


# Resident shared memory of the process running the code, for the tests below.
SHMEM = """
def shmem():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("RssShmem"):
                return int(line.split()[1]) * 1024
"""


def test_destroying_primitives_returns_their_shared_memory():
    """Once every slot of a grown arena is free, its pages go back to the kernel: resident
    shared memory falls back, and primitives made afterwards work as new ones."""
    out = _run(SHMEM + textwrap.dedent("""
        import gc
        import interlock
        base = shmem()
        locks = [interlock.Lock() for _ in range(200_000)]
        for lock in locks:
            lock.acquire()
        grown = shmem() - base
        del locks
        gc.collect()
        left = shmem() - base
        again = [interlock.Lock() for _ in range(200_000)]
        assert not any(lock.locked() for lock in again)
        assert all(lock.acquire(False) for lock in again)
        print(grown, left)
    """))
    assert out.returncode == 0, out.stderr
    grown, left = map(int, out.stdout.split())
    assert grown >= 200_000 * 60  # 64-byte slots were resident
    assert left < grown * 0.05, (grown, left)


def test_an_arena_in_use_elsewhere_is_not_given_back():
    """A forked child still holds references to the parent's primitives: the parent dropping
    all of its own must not retire the arena under the child; the child's exit does."""
    out = _run(SHMEM + textwrap.dedent("""
        import gc, os
        import multiprocessing as mp
        import interlock
        fork = mp.get_context("fork")
        locks = [interlock.Lock() for _ in range(20_000)]
        go, done = fork.Event(), fork.Event()
        def child(locks, go, done):
            go.wait(30)
            # The parent dropped its objects: these must still be the same, working locks.
            assert all(lock.acquire(False) for lock in locks)
            assert not any(lock.acquire(False) for lock in locks)
            for lock in locks:
                lock.release()
            done.set()
        p = fork.Process(target=child, args=(locks, go, done))
        p.start()
        before = shmem()
        del locks
        gc.collect()
        go.set()
        assert done.wait(60)
        p.join(60)
        assert p.exitcode == 0, p.exitcode
        gc.collect()
        print(before, shmem())
    """))
    assert out.returncode == 0, out.stderr
    before, after = map(int, out.stdout.split())
    assert after < before * 0.2, (before, after)  # the child's exit freed the last slots


def test_a_reference_in_transit_keeps_its_arena():
    import gc

    import interlock
    from interlock._sharing import ArenaRef, _rebuild

    locks = [interlock.Lock() for _ in range(3000)]
    kept = locks[-1]
    kept.acquire()
    fd, token, index, generation = kept._export()  # a reference for a receiver, not yet taken
    del locks, kept
    gc.collect()
    again = _rebuild(interlock.synchronize.Lock, ArenaRef(fd, token), index, generation)
    assert again.locked()  # the same slot, still held: nothing was reset under it
    again.release()
