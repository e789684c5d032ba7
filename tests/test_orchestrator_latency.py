"""The latency tracker: percentiles, what counts as a sample, persistence, feeding from runs."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ensemble_nb.core import prepare
from ensemble_nb.core.events import ModelCancelled, ModelStarted, ModelTimedOut, TokenReceived
from ensemble_nb.core.orchestrator import (
    LatencyTracker,
    default_tracker,
    latency_plot_data,
    latency_table,
    percentile,
    set_default_tracker,
)
from ensemble_nb.core.orchestrator.latency import CACHE_ENV, default_path, split_member_id
from ensemble_nb.core.providers.scripted import ScriptedProvider, steps_from_text
from ensemble_nb.core.tokens import Usage

finite = st.floats(0.0, 1e4, allow_nan=False, allow_infinity=False)


@pytest.fixture(autouse=True)
def private_default_tracker(tmp_path: Path) -> Iterator[LatencyTracker]:
    tracker = LatencyTracker(tmp_path / "default.json")
    set_default_tracker(tracker)
    yield tracker
    set_default_tracker(None)


@settings(max_examples=300, deadline=None)
@given(st.lists(finite, min_size=1, max_size=300), st.floats(0.0, 100.0))
def test_percentile_matches_numpy(values: list[float], q: float) -> None:
    assert percentile(values, q) == pytest.approx(float(np.percentile(values, q)), rel=1e-9, abs=1e-9)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.floats(0.001, 30.0), min_size=1, max_size=80), st.integers(5, 50))
def test_tracker_quantiles_are_those_of_its_rolling_window(ttfts: list[float], window: int) -> None:
    tracker = LatencyTracker(persist=False, window=window)
    for t in ttfts:
        tracker.record("m", ttft=t, duration=t + 1.0, n_tokens=5, outcome="ok")
    kept = ttfts[-window:]
    s = tracker.stats("m")
    assert s.calls == len(kept) and s.ttft is not None
    for q, got in ((50, s.ttft.p50), (90, s.ttft.p90), (95, s.ttft.p95), (99, s.ttft.p99)):
        assert got == pytest.approx(float(np.percentile(kept, q)))


def test_events_feed_the_tracker_and_timeouts_count_as_flagged_samples() -> None:
    tracker = LatencyTracker(persist=False)
    listen = tracker.recorder()
    listen(ModelStarted(run_id="r", t=0.0, model="m"))
    for i, t in enumerate((0.30, 0.32, 0.36, 0.37)):
        listen(TokenReceived(run_id="r", t=t, model="m", index=i, text="x", logprob=None, entropy=None,
                             entropy_kind="none", alternatives=()))
    listen(ModelCancelled(run_id="r", t=0.4, model="m", text="xxxx", n_tokens=4, usage=Usage(3, 4), ttft=0.30,
                          duration=0.4, reason="quorum"))
    listen(ModelStarted(run_id="r", t=0.0, model="m"))
    listen(ModelTimedOut(run_id="r", t=2.0, model="m", text="", n_tokens=0, usage=Usage(), ttft=None,
                         duration=2.0, timeout=2.0))
    listen(ModelStarted(run_id="r", t=0.0, model="m"))
    listen(ModelCancelled(run_id="r", t=0.1, model="m", text="", n_tokens=0, usage=Usage(), ttft=None,
                          duration=0.1, reason="user"))  # says nothing about speed: not a sample
    s = tracker.stats("m")
    assert s.calls == 2 and s.timeout_rate == 0.5 and s.error_rate == 0.0
    assert sorted(s.ttft_values) == [0.30, 2.0]
    assert s.gap_values == pytest.approx((0.01, 0.02, 0.04))
    assert s.tokens_per_second == pytest.approx(3 / 0.1)
    assert s.unreliability == 0.5


def test_hedge_copies_are_tracked_per_endpoint() -> None:
    assert split_member_id("openai:gpt-4o-mini@eu") == ("openai:gpt-4o-mini", "eu")
    assert split_member_id("smollm2") == ("smollm2", "default")


def test_persistence_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "latency.json"
    tracker = LatencyTracker(path)
    for i in range(30):
        tracker.record("a", ttft=0.1 + i / 100, duration=1.0, n_tokens=20, outcome="ok", gaps=[0.01, 0.02])
    tracker.record("a", "alt", ttft=None, duration=0.5, n_tokens=0, outcome="error")
    tracker.save()
    again = LatencyTracker(path)
    assert again.keys() == tracker.keys() == [("a", "alt"), ("a", "default")]
    for key in tracker.keys():
        before, after = tracker.stats(*key), again.stats(*key)
        assert after.calls == before.calls and after.error_rate == before.error_rate
        assert after.ttft == before.ttft and after.gap == before.gap
    assert json.loads(path.read_text())["version"] == 1


def test_cache_location_env_var_and_a_damaged_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(CACHE_ENV, str(tmp_path))
    assert default_path() == tmp_path / "latency.json"
    (tmp_path / "latency.json").write_text("{not json")
    tracker = LatencyTracker()
    assert tracker.keys() == [] and tracker.last_error is not None
    monkeypatch.delenv(CACHE_ENV)
    assert default_path() == Path.home() / ".cache" / "ensemble_nb" / "latency.json"


async def test_every_run_records_and_saves_its_samples(private_default_tracker: LatencyTracker) -> None:
    providers = {m: ScriptedProvider(m, steps_from_text("one two three four"), first_token_delay=0.02,
                                     token_delay=0.005) for m in ("a", "b")}
    await prepare("q", models="a b", providers=providers)
    s = private_default_tracker.stats("a")
    assert s.calls == 1 and s.ttft is not None and s.ttft.p50 >= 0.02
    assert len(s.gap_values) == 3
    reloaded = LatencyTracker(private_default_tracker.path)
    assert reloaded.stats("b").calls == 1
    assert default_tracker() is private_default_tracker


def test_table_and_plot_data() -> None:
    tracker = LatencyTracker(persist=False)
    assert "no latency measured yet" in latency_table(tracker)
    for i in range(10):
        tracker.record("openai:gpt-4o-mini", ttft=0.2 + i / 100, duration=1.0, n_tokens=30, outcome="ok",
                       gaps=[0.02])
    text = tracker.table()
    assert "ttft p50" in text and "openai:gpt-4o-mini" in text and "245ms" in text
    (row,) = latency_plot_data(tracker)
    assert row["model"] == "openai:gpt-4o-mini" and len(row["ttft"]) == 10
    assert row["ttft_p50"] == pytest.approx(0.245)
