"""Measured latency of each model at each endpoint, kept across kernel restarts.

Measured the way OpenRouter ranks providers: time to the first real token (a keep-alive comment
is not one: the member stamps ``ttft`` at the first Token it receives), the gaps between tokens,
tokens per second once streaming, and how often calls fail or time out. Each (model, endpoint)
keeps a rolling window of its last calls; a call that timed out or was cut before its first
token still counts, at the time it waited, flagged as censored (dropping it would make a slow
provider look fast). A run feeds its events in through :meth:`LatencyTracker.recorder`.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from ensemble_nb.core.events import (
    Event,
    ModelCancelled,
    ModelEnded,
    ModelFailed,
    ModelFinished,
    ModelStarted,
    ModelTimedOut,
    RunFinished,
    TokenReceived,
)
from ensemble_nb.core.orchestrator.samples import (
    OUTCOMES,
    CallSample,
    LatencyStats,
    Outcome,
    Quantiles,
    percentile,
    percentile_of_sorted,
)
from ensemble_nb.core.paths import CACHE_ENV as CACHE_ENV  # re-exported: the tests and callers read it here
from ensemble_nb.core.paths import cache_root

__all__ = ["CallSample", "LatencyStats", "LatencyTracker", "Quantiles", "default_tracker", "percentile",
           "set_default_tracker"]
EndpointOf = Callable[[str], tuple[str, str]]
_FORMAT = 1


def default_path() -> Path:
    """``$ENSEMBLE_NB_CACHE/latency.json``, else ``~/.cache/ensemble_nb/latency.json``."""
    return cache_root() / "latency.json"


def split_member_id(member: str) -> tuple[str, str]:
    """``model@endpoint`` (a hedge copy) → (model, endpoint); a plain id is the default endpoint."""
    model, sep, endpoint = member.rpartition("@")
    return (model, endpoint) if sep and model and endpoint else (member, "default")


def series_key(spec_id: str, endpoint: str) -> tuple[str, str]:
    """The (model, endpoint) a spec's calls are tracked under: a hedge copy ``MODEL@NAME`` with
    endpoint ``NAME`` is its model at that endpoint."""
    return (spec_id.removesuffix(f"@{endpoint}") if endpoint != "default" else spec_id), endpoint


class _Series:
    def __init__(self, window: int, gap_window: int) -> None:
        self.calls: deque[CallSample] = deque(maxlen=window)
        self.gaps: deque[float] = deque(maxlen=gap_window)
        self.version = 0
        self.cached: LatencyStats | None = None  # planning reads stats far more often than calls end


class LatencyTracker:
    """Rolling latency windows per (model, endpoint), saved to a small JSON file.

    ``path`` defaults to :func:`default_path`; ``persist=False`` keeps everything in memory.
    ``unreliability`` is the share of calls that failed, timed out, were cut before their first
    token, or whose first token came over ``spike_factor`` × the median. Safe to read from
    other threads (a widget callback) while the run's loop records.
    """

    def __init__(self, path: str | Path | None = None, *, persist: bool = True, window: int = 200,
                 gap_window: int = 1000, spike_factor: float = 4.0, max_age: float = 14 * 86400) -> None:
        self.path = Path(path) if path is not None else default_path()
        self.persist = persist
        self.window, self.gap_window = window, gap_window
        self.spike_factor = spike_factor
        self.max_age = max_age
        self.last_error: str | None = None
        self._series: dict[tuple[str, str], _Series] = {}
        self._lock = threading.Lock()
        if persist:
            self.load()

    # -- recording -------------------------------------------------------------------------
    def record(self, model: str, endpoint: str = "default", *, ttft: float | None, duration: float,
               n_tokens: int, outcome: Outcome, gaps: Iterable[float] = (), censored: bool = False,
               at: float | None = None) -> None:
        streaming = duration - ttft if ttft is not None and not censored else 0.0
        tps = (n_tokens - 1) / streaming if n_tokens >= 2 and streaming > 0 else None
        sample = CallSample(time.time() if at is None else at, ttft, tps, n_tokens, duration, outcome, censored)
        with self._lock:
            series = self._get(model, endpoint)
            series.calls.append(sample)
            series.gaps.extend(gaps)
            series.version += 1
            series.cached = None

    def recorder(self, endpoint_of: EndpointOf = split_member_id, *, save_on_finish: bool = True,
                 ) -> Callable[[Event], None]:
        """A listener for one run's events: records each member's call when it ends."""
        last_token: dict[str, float] = {}
        gaps: dict[str, list[float]] = {}

        def listen(event: Event) -> None:
            if isinstance(event, ModelStarted):
                last_token.pop(event.model, None)
                gaps[event.model] = []
            elif isinstance(event, TokenReceived):
                prev = last_token.get(event.model)
                if prev is not None:
                    gaps.setdefault(event.model, []).append(max(event.t - prev, 0.0))
                last_token[event.model] = event.t
            elif isinstance(event, ModelEnded):
                own = gaps.pop(event.model, [])
                prev = last_token.pop(event.model, None)
                if isinstance(event, ModelTimedOut) and prev is not None:
                    own.append(max(event.t - prev, 0.0))  # the stall that ended it is a gap too
                self._record_end(event, endpoint_of, own)
            elif isinstance(event, RunFinished) and save_on_finish and self.persist:
                self.save()

        return listen

    def _record_end(self, e: ModelEnded, endpoint_of: EndpointOf, gaps: list[float]) -> None:
        outcome: Outcome
        if isinstance(e, ModelFinished):
            outcome = "ok"
        elif isinstance(e, ModelFailed):
            outcome = "error"
        elif isinstance(e, ModelTimedOut):
            outcome = "timeout"
        elif isinstance(e, ModelCancelled) and e.reason in ("quorum", "hedge"):
            outcome = "cut"
        else:
            outcome = "cancelled"
        ttft, censored = e.ttft, False
        if ttft is None and outcome in ("timeout", "cut"):
            # Waited this long and saw nothing: a lower bound, kept so a slow provider can't look fast.
            ttft, censored = (e.timeout if isinstance(e, ModelTimedOut) else e.duration), True
        if ttft is None and outcome == "cancelled":
            return  # a user's cancel before any token says nothing about speed
        model, endpoint = endpoint_of(e.model)
        self.record(model, endpoint, ttft=ttft, duration=e.duration, n_tokens=e.n_tokens, outcome=outcome,
                    gaps=gaps, censored=censored)

    # -- reading ---------------------------------------------------------------------------
    def keys(self) -> list[tuple[str, str]]:
        with self._lock:
            return sorted(k for k, s in self._series.items() if s.calls)

    def stats(self, model: str, endpoint: str = "default") -> LatencyStats:
        with self._lock:
            series = self._series.get((model, endpoint))
            if series is not None and series.cached is not None:
                return series.cached
            version = series.version if series else 0
            calls = list(series.calls) if series else []
            gap_values = tuple(sorted(series.gaps)) if series else ()
        ttfts = tuple(sorted(c.ttft for c in calls if c.ttft is not None))
        tps = [c.tps for c in calls if c.tps is not None]
        n = len(calls)
        median = percentile_of_sorted(ttfts, 50) if ttfts else math.inf
        # Cut before its first token also counts: whatever its true latency, it gave nothing in time.
        bad = sum(c.outcome in ("error", "timeout") or c.censored
                  or (c.ttft is not None and c.ttft > self.spike_factor * median) for c in calls)
        stats = LatencyStats(
            model=model, endpoint=endpoint, calls=n, ttft=Quantiles.of_sorted(ttfts),
            gap=Quantiles.of_sorted(gap_values), tokens_per_second=percentile(tps, 50) if tps else None,
            error_rate=sum(c.outcome == "error" for c in calls) / n if n else 0.0,
            timeout_rate=sum(c.outcome == "timeout" for c in calls) / n if n else 0.0,
            unreliability=bad / n if n else 0.0, ttft_values=ttfts, gap_values=gap_values,
        )
        with self._lock:
            if series is not None and series.version == version:
                series.cached = stats
        return stats

    def all_stats(self) -> list[LatencyStats]:
        return [self.stats(m, e) for m, e in self.keys()]

    def clear(self) -> None:
        with self._lock:
            self._series.clear()

    def table(self) -> str:
        from ensemble_nb.core.orchestrator.report import latency_table

        return latency_table(self)

    # -- persistence -----------------------------------------------------------------------
    def load(self) -> None:
        """Read the file if there is one; a missing or damaged file leaves the windows empty."""
        try:
            data = json.loads(self.path.read_text())
            if data.get("version") != _FORMAT:
                return
            oldest = time.time() - self.max_age
            with self._lock:
                for entry in data["series"]:
                    series = self._get(str(entry["model"]), str(entry["endpoint"]))
                    for row in entry["calls"]:
                        sample = _sample_from_row(row)
                        if sample.at >= oldest:
                            series.calls.append(sample)
                    series.gaps.extend(float(g) for g in entry.get("gaps", []))
                    series.version += 1
                    series.cached = None
        except FileNotFoundError:
            return
        except (OSError, ValueError, KeyError, TypeError, IndexError) as exc:
            self.last_error = f"ignored {self.path}: {exc}"

    def save(self) -> None:
        """Write atomically (a crash mid-write leaves the old file); errors are kept, not raised."""
        with self._lock:
            payload = {"version": _FORMAT, "series": [
                {"model": m, "endpoint": e, "calls": [_row(c) for c in s.calls],
                 "gaps": [round(g, 5) for g in s.gaps]}
                for (m, e), s in sorted(self._series.items()) if s.calls or s.gaps]}
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".latency-", suffix=".json", dir=self.path.parent)
            with os.fdopen(fd, "w") as fh:
                json.dump(payload, fh, separators=(",", ":"))
            os.replace(tmp, self.path)
        except OSError as exc:
            self.last_error = f"could not save {self.path}: {exc}"

    def _get(self, model: str, endpoint: str) -> _Series:
        key = (model, endpoint)
        if key not in self._series:
            self._series[key] = _Series(self.window, self.gap_window)
        return self._series[key]


def _round(x: float | None) -> float | None:
    return None if x is None else round(x, 5)


def _row(c: CallSample) -> list[Any]:
    return [round(c.at, 1), _round(c.ttft), _round(c.tps), c.n_tokens, _round(c.duration), c.outcome,
            int(c.censored)]


def _sample_from_row(row: Sequence[Any]) -> CallSample:
    at, ttft, tps, n, duration, outcome, censored = row
    if outcome not in OUTCOMES:
        raise ValueError(f"unknown outcome {outcome!r}")
    return CallSample(float(at), None if ttft is None else float(ttft), None if tps is None else float(tps),
                      int(n), float(duration), outcome, bool(censored))


_default: LatencyTracker | None = None
_default_lock = threading.Lock()


def default_tracker() -> LatencyTracker:
    """The process's tracker, at :func:`default_path` (created on first use)."""
    global _default
    with _default_lock:
        if _default is None:
            _default = LatencyTracker()
        return _default


def set_default_tracker(tracker: LatencyTracker | None) -> None:
    """Use ``tracker`` for runs not given one (``None``: make a fresh default on next use)."""
    global _default
    with _default_lock:
        _default = tracker
