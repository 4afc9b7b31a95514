"""Summaries of measured samples, the same in every benchmark."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass


def percentile(values: Sequence[float], p: float) -> float:
    """sorted[floor(n * p / 100)], clamped to the last element."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(math.floor(len(ordered) * p / 100), len(ordered) - 1)]


@dataclass(frozen=True)
class Summary:
    n: int
    p50: float
    p95: float
    p99: float
    mean: float
    max: float

    @classmethod
    def of(cls, values: Sequence[float]) -> Summary:
        return cls(
            n=len(values),
            p50=percentile(values, 50),
            p95=percentile(values, 95),
            p99=percentile(values, 99),
            mean=sum(values) / len(values) if values else math.nan,
            max=max(values) if values else math.nan,
        )

    def scaled(self, factor: float) -> dict[str, float | int]:
        """As a dict, every time multiplied by `factor` (1000: seconds -> ms)."""
        return {
            "n": self.n,
            "p50": self.p50 * factor,
            "p95": self.p95 * factor,
            "p99": self.p99 * factor,
            "mean": self.mean * factor,
            "max": self.max * factor,
        }


def mb(n_bytes: float) -> float:
    return n_bytes / (1024 * 1024)
