"""A function-based environment: every public module-level function is a method."""

import math
from typing import List


def add(a: float, b: float) -> float:
    """Returns a + b."""
    return a + b


def divide(a: float, b: float) -> float:
    """Returns a / b; raises ZeroDivisionError for b == 0, which reaches the caller with its traceback."""
    return a / b


def stats(values: List[float]) -> dict:
    """Mean and standard deviation of a list of numbers."""
    if not values:
        raise ValueError("values must not be empty")
    mean = sum(values) / len(values)
    var = sum((v - mean) ** 2 for v in values) / len(values)
    return {"mean": mean, "std": math.sqrt(var), "count": len(values)}


def _private_helper():
    """Never exposed: the name starts with an underscore."""
    return "hidden"
