"""Per-member deadlines and the hedged-request budget, derived from measured latency.

A member that has not sent its first token by its first-token deadline, or goes silent for
longer than its stall deadline, is ended as timed out so it cannot hold the answer back. Both
deadlines are a multiple of that member's own measured tail (p99 by default) so a model that is
always slow is not punished for being itself, only for being unusually slow. With few samples
the estimate of p99 is noise, so the prior (the registry's typical first-token time, with a
heavy-tail allowance) and generous floors are used instead.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from ensemble_nb.core.orchestrator.latency import LatencyStats
from ensemble_nb.core.registry import HedgeEndpoint, ModelSpec


@dataclass(frozen=True, slots=True)
class Deadlines:
    """Seconds from the member's start to its first token, and the longest gap between tokens."""

    first_token: float | None = None
    stall: float | None = None

    def describe(self) -> str:
        parts = []
        if self.first_token is not None:
            parts.append(f"first token by {self.first_token:.2f} s")
        if self.stall is not None:
            parts.append(f"no gap over {self.stall:.2f} s")
        return ", ".join(parts) or "no deadline"


@dataclass(frozen=True)
class DeadlineRules:
    """How deadlines and the hedge delay follow from measurements. Times are seconds."""

    quantile: float = 99.0
    first_token_factor: float = 2.0
    stall_factor: float = 3.0
    first_token_floor: float = 5.0
    first_token_cap: float = 60.0
    stall_floor: float = 5.0
    stall_cap: float = 30.0
    min_samples: int = 20
    prior_tail: float = 4.0  # unmeasured: assume p99 is this many times the typical first token
    hedge_quantile: float = 95.0
    hedge_floor: float = 0.05

    def deadlines(self, spec: ModelSpec, stats: LatencyStats | None) -> Deadlines:
        enough = stats is not None and stats.calls >= self.min_samples
        prior = self.prior_tail * spec.typical_ttft
        ttft_tail = stats.ttft_at(self.quantile) if enough and stats else None
        gap_tail = stats.gap_at(self.quantile) if enough and stats else None
        if ttft_tail is None:
            observed = max(stats.ttft_values, default=0.0) if stats else 0.0
            ttft_tail = max(prior, observed)
        first: float | None = _clamp(self.first_token_factor * ttft_tail, self.first_token_floor,
                                     self.first_token_cap)
        if spec.provider == "llama_cpp":
            # A local model's first call includes loading its weights, and it has no network tail
            # to cut: only a stall ends it early.
            first = None
        # Unmeasured gaps: a stall floor alone; the typical gap (1/tps) is far below any floor.
        stall_basis = gap_tail if gap_tail is not None else 0.0
        stall = _clamp(self.stall_factor * stall_basis, self.stall_floor, self.stall_cap)
        return Deadlines(first_token=first, stall=stall)

    def hedge_delay(self, spec: ModelSpec, stats: LatencyStats | None) -> float:
        """When to fire the hedge: the measured p95 time to first token (prior: 2 × typical)."""
        measured = stats.ttft_at(self.hedge_quantile) if stats and stats.calls >= self.min_samples else None
        return max(self.hedge_floor, measured if measured is not None else 2.0 * spec.typical_ttft)


def _clamp(x: float, lo: float, hi: float) -> float:
    return min(max(x, lo), hi)


class HedgeLimiter:
    """A token bucket: each hedgeable call adds ``rate`` tokens (up to ``burst``), a hedge spends
    one, so over many calls at most about ``rate`` of them are hedged. Shared by concurrent runs."""

    def __init__(self, rate: float = 0.05, burst: float = 1.0) -> None:
        self.rate, self.burst = rate, burst
        self._tokens = burst
        self.calls = 0
        self.hedges = 0
        self._lock = threading.Lock()

    def note_call(self) -> None:
        with self._lock:
            self.calls += 1
            self._tokens = min(self.burst, self._tokens + self.rate)

    def try_acquire(self) -> bool:
        with self._lock:
            if self._tokens < 1.0:
                return False
            self._tokens -= 1.0
            self.hedges += 1
            return True

    @property
    def available(self) -> float:
        return self._tokens


def hedge_spec(spec: ModelSpec, endpoint: HedgeEndpoint) -> ModelSpec:
    """The spec of ``spec``'s model at ``endpoint``; its id is ``MODEL@ENDPOINT``."""
    own_url = endpoint.base_url is not None or endpoint.base_url_env is not None
    return spec.model_copy(update={
        "id": f"{spec.id}@{endpoint.name}",
        "endpoint": endpoint.name,
        "model": endpoint.model or spec.model,
        "base_url": endpoint.base_url if own_url else spec.base_url,
        # The model's own URL variable must not redirect the hedge back to the usual server.
        "base_url_env": endpoint.base_url_env if own_url else spec.base_url_env,
        "api_key_env": endpoint.api_key_env or spec.api_key_env,
        "hedge_endpoints": (),
    })
