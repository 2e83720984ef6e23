"""Argument checks that the Python-level calls share, whichever backend runs them: the same
input gets the same exception from FileLock, the portable primitives and the native ones'
Python helpers."""

from __future__ import annotations

import math
import operator
from typing import Any, Optional


def check_timeout(timeout: Any) -> Optional[float]:
    """None, or a number of seconds >= 0: a negative timeout means zero, NaN raises
    ValueError, a non-number (a string included) TypeError."""
    if timeout is None:
        return None
    kind = type(timeout)
    if hasattr(kind, "__float__"):  # as PyFloat_AsDouble: no strings
        value = float(timeout)
    elif hasattr(kind, "__index__"):
        value = float(operator.index(timeout))
    else:
        raise TypeError(f"must be real number, not {kind.__name__}")
    if math.isnan(value):
        raise ValueError("timeout must be a number, not NaN")
    return max(value, 0.0)


def check_owner_check_interval(seconds: Any) -> float:
    """The argument of set_owner_check_interval(): seconds from 0.001 to 3600."""
    kind = type(seconds)
    if not (hasattr(kind, "__float__") or hasattr(kind, "__index__")) or isinstance(seconds, str):
        raise TypeError(f"must be real number, not {kind.__name__}")
    value = float(seconds)
    if not (0.001 <= value <= 3600):
        raise ValueError("the owner check interval must be between 0.001 and 3600 seconds")
    return value
