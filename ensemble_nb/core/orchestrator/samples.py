"""Latency samples and their statistics: percentiles as numpy computes them, per-window stats."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

Outcome = Literal["ok", "error", "timeout", "cut", "cancelled"]
OUTCOMES: tuple[Outcome, ...] = ("ok", "error", "timeout", "cut", "cancelled")


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile with linear interpolation between ranks (numpy's default method)."""
    return percentile_of_sorted(sorted(values), q)


def percentile_of_sorted(xs: Sequence[float], q: float) -> float:
    if not xs:
        raise ValueError("percentile of no values")
    h = (len(xs) - 1) * q / 100.0
    lo = math.floor(h)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (h - lo) * (xs[hi] - xs[lo])


@dataclass(frozen=True, slots=True)
class CallSample:
    """One call. ``ttft`` is a lower bound when ``censored`` (it never came)."""

    at: float
    ttft: float | None
    tps: float | None
    n_tokens: int
    duration: float
    outcome: Outcome
    censored: bool = False


@dataclass(frozen=True, slots=True)
class Quantiles:
    p50: float
    p90: float
    p95: float
    p99: float

    @classmethod
    def of_sorted(cls, xs: Sequence[float]) -> Quantiles | None:
        if not xs:
            return None
        return cls(*(percentile_of_sorted(xs, q) for q in (50, 90, 95, 99)))


@dataclass(frozen=True)
class LatencyStats:
    """What the window of one (model, endpoint) says. Rates are fractions of ``calls``; the
    ``*_values`` are the window's samples, sorted."""

    model: str
    endpoint: str
    calls: int
    ttft: Quantiles | None
    gap: Quantiles | None
    tokens_per_second: float | None
    error_rate: float
    timeout_rate: float
    unreliability: float
    ttft_values: tuple[float, ...] = field(default=(), repr=False)
    gap_values: tuple[float, ...] = field(default=(), repr=False)

    def ttft_at(self, q: float) -> float | None:
        return percentile_of_sorted(self.ttft_values, q) if self.ttft_values else None

    def gap_at(self, q: float) -> float | None:
        return percentile_of_sorted(self.gap_values, q) if self.gap_values else None
