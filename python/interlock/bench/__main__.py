"""``python -m interlock.bench``: the benchmark suite's command line."""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from typing import List, Optional

from . import (awaiting, between_processes, cluster, creation, one_process, report, rwlock,
               threads, transport, waiting)
from .peers import available
from .timing import Row, fmt_time

GROUPS = ["one", "create", "scale", "between", "waiting", "threads", "rwlock", "asyncio"]
# Run only when asked (--only cluster): it starts etcd servers (and redis-server if present).
OPT_IN = ["cluster", "transport"]


def _gil_enabled() -> bool:
    is_enabled = getattr(sys, "_is_gil_enabled", None)  # 3.13 and newer
    return True if is_enabled is None else bool(is_enabled())


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m interlock.bench",
        description="interlock against multiprocessing, threading, posix_ipc and Manager "
        "proxies, side by side in one run.",
    )
    parser.add_argument("--quick", action="store_true", help="a short run (under a minute)")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    parser.add_argument("--plot", metavar="DIR", help="also write PNG charts (needs matplotlib)")
    parser.add_argument("--markdown", metavar="FILE", help="also write the table as Markdown")
    parser.add_argument("--only", choices=GROUPS + OPT_IN, action="append",
                        help="run only these groups (repeatable); 'cluster' (interlock.cluster "
                        "on etcd against a SyncManager and redis) and 'transport' (etcd's "
                        "gateway against gRPC) run only when named")
    args = parser.parse_args(argv)
    groups = args.only or GROUPS
    if args.plot:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            parser.error("--plot needs matplotlib: pip install .[bench]")

    notes: List[str] = []
    peers = available(notes)
    started = time.perf_counter()
    rows: List[Row] = []
    try:
        if "one" in groups:
            rows += one_process.run(peers, args.quick)
        if "create" in groups:
            rows += creation.creation_time(peers, args.quick)
        if "scale" in groups:
            rows += creation.scale(peers, args.quick, notes)
        if "between" in groups:
            rows += between_processes.run(peers, args.quick)
        if "waiting" in groups:
            rows += waiting.run(peers, args.quick)
        if "threads" in groups:
            rows += threads.run(peers, args.quick)
        if "rwlock" in groups:
            rows += rwlock.run(args.quick, notes)
        if "asyncio" in groups:
            rows += awaiting.run(args.quick, notes)
        if "cluster" in groups:
            rows += cluster.run(args.quick, notes)
        if "transport" in groups:
            rows += transport.run(args.quick, notes)
    finally:
        for peer in peers.values():
            peer.close()
    floor = one_process.call_floor(args.quick)
    elapsed = time.perf_counter() - started
    meta = {
        "python": f"{platform.python_implementation()} {platform.python_version()}"
                  f"{' (free-threaded, GIL off)' if not _gil_enabled() else ''}",
        "machine": f"{platform.system()} {platform.release()} {platform.machine()}",
        "cpus": os.cpu_count(),
        "mode": "quick" if args.quick else "full",
        "seconds": round(elapsed, 1),
        "call_floor_seconds": floor,
        "notes": notes,
    }
    header = [
        f"{meta['python']} on {meta['machine']}, {meta['cpus']} CPUs; {meta['mode']} run "
        f"in {elapsed:.0f} s",
        "each figure: median over repeats; ratio = interlock / multiprocessing, same run; "
        "lower is better",
        f"interpreter floor: acquire()+release() of a no-op object takes "
        f"{fmt_time(floor['call floor'])}, with a lock's two atomic instructions "
        f"{fmt_time(floor['lock floor'])}",
    ] + notes
    if "threads" in groups:
        header.append("threads group: the uncontended rows and the one marked 'against "
                      "threading' divide by threading, same run")
    if "rwlock" in groups:
        header.append("rwlock group: ratio = interlock's RWLock / the row's baseline (interlock's "
                      "Lock, or the file-based lock it names), same run")
    if "asyncio" in groups:
        header.append("asyncio group: ratio = awaiting interlock / the executor approach, "
                      "same run")
    if "cluster" in groups:
        header.append("cluster group: ratio = interlock.cluster / etcd's own put latency, "
                      "same run and same etcd cluster")
    if "transport" in groups:
        header.append("transport group: ratio = etcd's JSON gateway over HTTP (interlock's "
                      "transport) / gRPC (etcd-sdk-python), same run and same etcd cluster")
    report.print_table(rows, header, sys.stdout)
    summary = report.targets_summary(rows)
    if summary:
        print(f"\n{summary}")
    if args.json:
        report.write_json(args.json, rows, meta)
        print(f"wrote {args.json}")
    if args.markdown:
        report.write_markdown(args.markdown, rows)
        print(f"wrote {args.markdown}")
    if args.plot:
        for path in report.write_plots(args.plot, rows):
            print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
