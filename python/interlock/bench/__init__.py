"""interlock's benchmark suite: ``python -m interlock.bench [--quick] [--json FILE] [--plot DIR]``.

Every figure is taken in one run, side by side, for interlock and its peers: CPython's
multiprocessing (the baseline; every ratio is interlock / multiprocessing from the same run),
threading (the in-process floor), posix_ipc semaphores and multiprocessing.Manager proxies.
Each figure is the median over repeats, reported with its spread (min..max).

Modules: ``peers`` (how each implementation builds a primitive), ``timing`` (repeats and
statistics), ``one_process``, ``creation`` (time, memory, scale to 1M), ``between_processes``
(ping-pong, Barrier(N), contended Lock, producer/consumer), ``waiting`` (CPU of a blocked
waiter), ``report`` (table, JSON, plots) and ``__main__`` (the command line).
"""
