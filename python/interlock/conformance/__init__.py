"""Run CPython's own multiprocessing tests against interlock.

``python -m interlock.conformance [--start METHOD] [--wide | --full [--baseline all]] [-v]``
imports the test package of the running interpreter (``test._test_multiprocessing``; nothing is
copied) with interlock's primitives in place of multiprocessing's, and runs, under each start
method:

* by default, the Lock, Semaphore, Condition, Event and Barrier test classes;
* with ``--wide``, also Queue, Pool, Value, Array, the heap and shared ctypes, with interlock
  installed in every multiprocessing context (``interlock.install()``);
* with ``--cluster ENDPOINTS`` (comma-separated ``host:port``), the core classes on
  interlock.cluster's primitives, on the etcd cluster at those endpoints;
* with ``--full``, every class CPython runs with processes (``WithProcessesTest*``:
  connections, managers, pools, queues, listeners, heaps, shared memory, ...), with interlock
  installed, and then, with the standard library alone, the tests that did not pass with
  interlock, so that each outcome is compared: every test that passes with the stdlib must
  pass with interlock. ``--full --baseline all`` runs every class with the stdlib too, for a
  side-by-side count.

It prints a summary per test class and ends with a line ``N passed, N failed, N skipped``
(for ``--full``, one such line each for interlock and for the stdlib's run, then the tests
that pass with the stdlib but not with interlock). The exit status is 0 when nothing failed
(``--full``: when no test passes with the stdlib and fails with interlock), 1 otherwise, and 2
when the interpreter's test package is missing.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import re
import subprocess
import sys
import unittest
from typing import Any, Dict, List, Optional

START_METHODS = ("fork", "spawn", "forkserver")
PROCESSES_PREFIX = "WithProcessesTest"  # every class CPython runs with processes


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
        self.passed_ids: List[str] = []
        self.other_ids: List[str] = []  # what did not pass: "Class.method", or "Class"

    def _count(self, test: unittest.TestCase, outcome: str) -> None:
        if not isinstance(test, unittest.TestCase):
            # A class or module fixture's outcome (unittest's _ErrorHolder): the whole class.
            # Anything else (setUpModule) stands for every class: "*".
            match = re.search(r"\((?:[\w.]*\.)?(\w+)\)", str(test))
            cls = match.group(1) if match else ""
            whole = cls if cls.startswith(PROCESSES_PREFIX) else "*"
            self.other_ids.append(whole)
            row = self.per_class.setdefault(whole if whole != "*" else str(test),
                                            {"passed": 0, "failed": 0, "skipped": 0})
            row[outcome] += 1
            return
        row = self.per_class.setdefault(type(test).__name__,
                                        {"passed": 0, "failed": 0, "skipped": 0})
        row[outcome] += 1
        test_id = f"{type(test).__name__}.{test._testMethodName}"
        (self.passed_ids if outcome == "passed" else self.other_ids).append(test_id)

    def addSuccess(self, test: unittest.TestCase) -> None:
        super().addSuccess(test)
        self._count(test, "passed")

    def addFailure(self, test, err):  # type: ignore[no-untyped-def]
        super().addFailure(test, err)
        self._count(test, "failed")

    def addError(self, test, err):  # type: ignore[no-untyped-def]
        super().addError(test, err)
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


MODES = ("core", "wide", "full", "stdlib", "cluster")
# The child's list of tests to run (JSON), when the stdlib runs only what interlock did not pass.
ONLY_VARIABLE = "INTERLOCK_CONFORMANCE_ONLY"


def _class_names(module: Any, mode: str) -> List[str]:
    from interlock.conformance import _suite

    if mode in ("full", "stdlib"):
        return sorted(name for name in vars(module) if name.startswith(PROCESSES_PREFIX))
    names = _suite.CORE_CLASSES + (_suite.WIDE_CLASSES if mode == "wide" else ())
    return [PROCESSES_PREFIX + name for name in names]


def _run_one(start: str, mode: str, verbose: bool, only: Optional[List[str]] = None) -> int:
    """In a child interpreter: run the classes for one start method (or, given ``only``, those
    of its "Class.method" and "Class" entries that are in the classes); print a JSON
    summary."""
    module = importlib.import_module(f"interlock.conformance.start_{start}")
    suite = unittest.TestSuite()
    loader = unittest.TestLoader()
    for name in _class_names(module, mode):
        cls = getattr(module, name, None)
        if cls is None:
            continue
        tests = loader.loadTestsFromTestCase(cls)
        if only is not None:
            tests = unittest.TestSuite(
                test for test in tests
                if name in only or f"{name}.{test._testMethodName}" in only)  # type: ignore
        suite.addTests(tests)
    runner = unittest.TextTestRunner(stream=sys.stderr, verbosity=2 if verbose else 1,
                                     resultclass=_PerClassResult)
    module.setUpModule()
    try:
        result = runner.run(suite)
    finally:
        module.tearDownModule()
    summary = {"classes": result.per_class, "passed": result.passed_ids,  # type: ignore
               "other": result.other_ids}  # type: ignore
    print("INTERLOCK-CONFORMANCE " + json.dumps(summary), flush=True)
    return 0 if result.wasSuccessful() else 1


def _run_child(start: str, mode: str, verbose: bool, endpoints: Optional[str] = None,
               only: Optional[List[str]] = None) -> Optional[Dict[str, Any]]:
    """Runs one start method's classes (or the tests ``only`` names) in a fresh interpreter;
    its summary, or None if the run crashed before it could report."""
    env = dict(os.environ, INTERLOCK_CONFORMANCE_MODE=mode)
    if endpoints is not None:
        env["INTERLOCK_CONFORMANCE_ENDPOINTS"] = endpoints
    if only is not None:
        env[ONLY_VARIABLE] = json.dumps(only)
    cmd = [sys.executable, "-m", "interlock.conformance", "--one", start, "--mode", mode]
    cmd += ["-v"] if verbose else []
    proc = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, text=True)
    summary: Optional[Dict[str, Any]] = None
    for line in proc.stdout.splitlines():
        if line.startswith("INTERLOCK-CONFORMANCE "):
            summary = json.loads(line.split(" ", 1)[1])
    if summary is not None:
        summary["exit"] = proc.returncode
    return summary


def _print_run(start: str, label: str, summary: Optional[Dict[str, Any]],
               totals: Dict[str, int]) -> None:
    if summary is None:
        print(f"  [{start:10}] {label}: the test run crashed")
        totals["failed"] += 1
        return
    classes = summary["classes"]
    for cls, row in sorted(classes.items()):
        print(f"  [{start:10}] {label:9} {cls:42} {row['passed']:4} passed, "
              f"{row['failed']:3} failed, {row['skipped']:3} skipped")
        for key in totals:
            totals[key] += row[key]
    if summary["exit"] != 0 and not any(r["failed"] for r in classes.values()):
        totals["failed"] += 1  # a failure outside any test (e.g. module set-up)


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m interlock.conformance",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--start", choices=START_METHODS, action="append",
                        help="start method to test (repeatable; default: all three)")
    scope = parser.add_mutually_exclusive_group()
    scope.add_argument("--wide", action="store_true",
                       help="also run Queue, Pool, Value, Array, heap and shared ctypes tests")
    scope.add_argument("--full", action="store_true",
                       help="every 'processes' class, compared with the stdlib's results")
    scope.add_argument("--cluster", metavar="ENDPOINTS",
                       help="the core classes on interlock.cluster, on the etcd cluster at "
                            "ENDPOINTS (host:port,host:port,...)")
    parser.add_argument("--baseline", choices=("failed", "all"), default="failed",
                        help="with --full, what runs with the stdlib alone: the tests that did "
                             "not pass with interlock (default), or every class")
    parser.add_argument("-v", "--verbose", action="store_true", help="list every test")
    parser.add_argument("--one", choices=START_METHODS, help=argparse.SUPPRESS)
    parser.add_argument("--mode", choices=MODES, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    missing = _missing_test_package()
    if missing:
        print(missing, file=sys.stderr)
        return 2
    if args.baseline != "failed" and not args.full:
        parser.error("--baseline goes with --full")
    mode = ("full" if args.full else "wide" if args.wide else
            "cluster" if args.cluster else "core")
    if args.one:
        only = os.environ.get(ONLY_VARIABLE)
        return _run_one(args.one, args.mode or mode, args.verbose,
                        json.loads(only) if only is not None else None)

    totals = {"passed": 0, "failed": 0, "skipped": 0}
    baseline = {"passed": 0, "failed": 0, "skipped": 0}
    regressions: List[str] = []
    scope_text = {"core": "", "wide": " (wide)", "full": " (full, against the stdlib)",
                  "cluster": f" on interlock.cluster at {args.cluster}"}[mode]
    print(f"interlock conformance: CPython {sys.version.split()[0]}'s test._test_multiprocessing"
          f"{scope_text}")
    for start in args.start or START_METHODS:
        ours = _run_child(start, mode, args.verbose, args.cluster)
        _print_run(start, "interlock", ours, totals)
        if mode != "full":
            continue
        # The stdlib decides only what interlock did not pass: a test interlock passes cannot
        # be a regression. A crashed run has no list, so everything runs.
        only = None if args.baseline == "all" or ours is None else ours["other"]
        if only is not None and "*" in only:
            only = None
        if only == []:
            print(f"  [{start:10}] stdlib    not run: interlock passed every test")
            continue
        theirs = _run_child(start, "stdlib", args.verbose, only=only)
        _print_run(start, "stdlib", theirs, baseline)
        if ours is not None and theirs is not None:
            lost = sorted(set(theirs["passed"]) - set(ours["passed"]))
            regressions += [f"[{start}] {test}" for test in lost]
    print(f"{totals['passed']} passed, {totals['failed']} failed, {totals['skipped']} skipped")
    if mode != "full":
        return 0 if totals["failed"] == 0 and totals["passed"] > 0 else 1
    ran_on = "" if args.baseline == "all" else " (on the tests interlock did not pass)"
    print(f"stdlib{ran_on}: {baseline['passed']} passed, {baseline['failed']} failed, "
          f"{baseline['skipped']} skipped")
    print(f"passing with the stdlib but not with interlock: {len(regressions)}")
    for test in regressions:
        print(f"  {test}")
    return 0 if not regressions and totals["passed"] > 0 else 1
