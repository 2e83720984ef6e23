"""Run CPython's own multiprocessing synchronization tests against interlock.

``python -m interlock.conformance [--start METHOD] [--wide] [-v]`` imports the test package of
the running interpreter (``test._test_multiprocessing``; nothing is copied) with interlock's
primitives in place of multiprocessing's, and runs the Lock, Semaphore, Condition, Event and
Barrier test classes (with ``--wide`` also Queue, Pool, Value, Array, the heap and shared
ctypes, with interlock patched into every multiprocessing context) under each start method.

It prints a summary per test class and ends with a line ``N passed, N failed, N skipped``.
The exit status is 0 when nothing failed, 1 otherwise, and 2 when the interpreter's test
package is missing.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import unittest
from typing import Dict, List, Optional

START_METHODS = ("fork", "spawn", "forkserver")


def _missing_test_package() -> Optional[str]:
    try:
        found = importlib.util.find_spec("test._test_multiprocessing") is not None
    except (ImportError, ValueError):
        found = False
    if found:
        return None
    version = f"{sys.version_info[0]}.{sys.version_info[1]}"
    return (
        f"interlock.conformance needs CPython's own test package (test._test_multiprocessing), "
        f"which this Python {version} does not have.\n"
        f"On Debian or Ubuntu install it with:  apt install libpython{version}-testsuite\n"
        f"(other distributions name the package python{version}-test or similar; a Python "
        f"built from source, e.g. with pyenv, includes it)."
    )


class _PerClassResult(unittest.TextTestResult):
    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.per_class: Dict[str, Dict[str, int]] = {}

    def _count(self, test: unittest.TestCase, outcome: str) -> None:
        row = self.per_class.setdefault(type(test).__name__,
                                        {"passed": 0, "failed": 0, "skipped": 0})
        row[outcome] += 1

    def addSuccess(self, test: unittest.TestCase) -> None:
        super().addSuccess(test)
        self._count(test, "passed")

    def addFailure(self, test, err):  # type: ignore[no-untyped-def]
        super().addFailure(test, err)
        self._count(test, "failed")

    def addError(self, test, err):  # type: ignore[no-untyped-def]
        super().addError(test, err)
        if isinstance(test, unittest.TestCase):
            self._count(test, "failed")

    def addSkip(self, test: unittest.TestCase, reason: str) -> None:
        super().addSkip(test, reason)
        self._count(test, "skipped")

    def addExpectedFailure(self, test, err):  # type: ignore[no-untyped-def]
        super().addExpectedFailure(test, err)
        self._count(test, "passed")

    def addUnexpectedSuccess(self, test: unittest.TestCase) -> None:
        super().addUnexpectedSuccess(test)
        self._count(test, "failed")


def _run_one(start: str, wide: bool, verbose: bool) -> int:
    """In a child interpreter: run the classes for one start method; print a JSON summary."""
    module = importlib.import_module(f"interlock.conformance.start_{start}")
    from interlock.conformance import _suite

    names = _suite.CORE_CLASSES + (_suite.WIDE_CLASSES if wide else ())
    suite = unittest.TestSuite()
    loader = unittest.TestLoader()
    for name in names:
        cls = getattr(module, f"WithProcessesTest{name}", None)
        if cls is not None:
            suite.addTests(loader.loadTestsFromTestCase(cls))
    runner = unittest.TextTestRunner(stream=sys.stderr, verbosity=2 if verbose else 1,
                                     resultclass=_PerClassResult)
    module.setUpModule()
    try:
        result = runner.run(suite)
    finally:
        module.tearDownModule()
    print("INTERLOCK-CONFORMANCE " + json.dumps(result.per_class), flush=True)  # type: ignore
    return 0 if result.wasSuccessful() else 1


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m interlock.conformance",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--start", choices=START_METHODS, action="append",
                        help="start method to test (repeatable; default: all three)")
    parser.add_argument("--wide", action="store_true",
                        help="also run Queue, Pool, Value, Array, heap and shared ctypes tests")
    parser.add_argument("-v", "--verbose", action="store_true", help="list every test")
    parser.add_argument("--one", choices=START_METHODS, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    missing = _missing_test_package()
    if missing:
        print(missing, file=sys.stderr)
        return 2
    if args.one:
        return _run_one(args.one, args.wide, args.verbose)

    totals = {"passed": 0, "failed": 0, "skipped": 0}
    env = dict(os.environ, INTERLOCK_CONFORMANCE_WIDE="1" if args.wide else "0")
    print(f"interlock conformance: CPython {sys.version.split()[0]}'s test._test_multiprocessing"
          f"{' (wide)' if args.wide else ''}")
    for start in args.start or START_METHODS:
        cmd = [sys.executable, "-m", "interlock.conformance", "--one", start]
        cmd += ["--wide"] if args.wide else []
        cmd += ["-v"] if args.verbose else []
        proc = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, text=True)
        summary = None
        for line in proc.stdout.splitlines():
            if line.startswith("INTERLOCK-CONFORMANCE "):
                summary = json.loads(line.split(" ", 1)[1])
        if summary is None:
            print(f"[{start}] the test run crashed (exit status {proc.returncode})")
            totals["failed"] += 1
            continue
        for cls, row in sorted(summary.items()):
            print(f"  [{start:10}] {cls:36} {row['passed']:4} passed, {row['failed']:3} failed, "
                  f"{row['skipped']:3} skipped")
            for key in totals:
                totals[key] += row[key]
        if proc.returncode != 0 and not any(r["failed"] for r in summary.values()):
            totals["failed"] += 1  # a failure outside any test (e.g. module set-up)
    print(f"{totals['passed']} passed, {totals['failed']} failed, {totals['skipped']} skipped")
    return 0 if totals["failed"] == 0 and totals["passed"] > 0 else 1
