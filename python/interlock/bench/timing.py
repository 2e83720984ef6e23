"""Repeats, statistics and formatting."""

from __future__ import annotations

import statistics
import timeit
from typing import Any, Dict, List, Sequence


def per_call(stmt: str, env: Dict[str, Any], number: int) -> float:
    """Seconds per execution of ``stmt`` (one sample of ``number`` executions)."""
    return timeit.Timer(stmt, globals=env).timeit(number) / number


def summary(samples: Sequence[float]) -> Dict[str, float]:
    """Median and spread of a list of samples."""
    return {
        "median": statistics.median(samples),
        "min": min(samples),
        "max": max(samples),
        "n": len(samples),
    }


def fmt_time(seconds: float) -> str:
    if seconds < 1e-6:
        return f"{seconds * 1e9:.1f} ns"
    if seconds < 1e-3:
        return f"{seconds * 1e6:.2f} us"
    if seconds < 1:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds:.2f} s"


def fmt_ratio(x: float) -> str:
    return f"{x:.2f}x"


def fmt_value(unit: str, value: float) -> str:
    """A figure in its row's unit: seconds, bytes or a ratio."""
    return {"B": fmt_bytes, "x": fmt_ratio}.get(unit, fmt_time)(value)


def fmt_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


class Row:
    """One line of the results: an operation, its figures per peer, and the target ratio."""

    def __init__(
        self, group: str, operation: str, unit: str = "s", target: Any = None, limit: Any = None
    ) -> None:
        self.group = group
        self.operation = operation
        self.unit = unit  # "s" (seconds per op), "B" (bytes) or "x" (a ratio)
        self.target = target  # the most interlock / multiprocessing may be
        self.limit = limit  # an absolute bound on interlock's median, in `unit`
        self.samples: Dict[str, List[float]] = {}
        self.notes: Dict[str, str] = {}
        self.baseline = "multiprocessing"  # the peer the ratio divides by
        self.subject = "interlock"  # the peer the ratio is of

    def add(self, peer: str, value: float) -> None:
        self.samples.setdefault(peer, []).append(value)

    def note(self, peer: str, text: str) -> None:
        self.notes[peer] = text

    def stats(self) -> Dict[str, Dict[str, float]]:
        return {peer: summary(values) for peer, values in self.samples.items() if values}

    def ratio(self) -> Any:
        if self.unit == "x":
            return None  # already a ratio (to a floor)
        stats = self.stats()
        baseline = stats.get(self.baseline)
        if self.subject in stats and baseline and baseline["median"]:
            return stats[self.subject]["median"] / baseline["median"]
        return None

    def as_dict(self) -> Dict[str, Any]:
        return {
            "group": self.group,
            "operation": self.operation,
            "unit": self.unit,
            "stats": self.stats(),
            "ratio": self.ratio(),
            "target": self.target,
            "limit": self.limit,
            "notes": self.notes,
        }
