"""The playground's maths (temperature, top-p, perplexity) and its widget, headless."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ensemble_nb.core.entropy import entropy_from_probs
from ensemble_nb.core.events import TokenReceived
from ensemble_nb.core.sampling import (
    OTHER,
    Distribution,
    apply_temperature_top_p,
    contrast_tokens,
    perplexity,
    reshape,
    top_p_filter,
)
from ensemble_nb.core.tokens import Alternative

probs_st = st.lists(st.floats(min_value=1e-6, max_value=1.0), min_size=1, max_size=30)
temps = st.floats(min_value=0.05, max_value=5.0)
tops = st.floats(min_value=0.01, max_value=1.0)


@given(probs_st, temps, tops)
def test_probabilities_sum_to_one(probs: list[float], t: float, p: float) -> None:
    out = apply_temperature_top_p(probs, t, p)
    assert out.shape == (len(probs),)
    assert np.all(out >= 0)
    assert math.isclose(out.sum(), 1.0, abs_tol=1e-9)


@given(probs_st, tops)
def test_temperature_zero_is_one_hot_on_the_most_likely(probs: list[float], p: float) -> None:
    out = apply_temperature_top_p(probs, 0.0, p)
    assert out.sum() == 1.0 and np.count_nonzero(out) == 1
    assert int(np.argmax(out)) == int(np.argmax(probs))


@given(st.lists(st.floats(min_value=0.01, max_value=1.0), min_size=2, max_size=10, unique=True))
def test_small_temperature_tends_to_one_hot(probs: list[float]) -> None:
    out = apply_temperature_top_p(probs, 0.01, 1.0)
    if sorted(probs)[-1] / sorted(probs)[-2] > 1.2:
        assert out[int(np.argmax(probs))] > 0.99


@settings(max_examples=200)
@given(probs_st, tops)
def test_top_p_keeps_the_smallest_set_with_enough_mass(probs: list[float], p: float) -> None:
    q = np.asarray(probs) / np.sum(probs)
    out = top_p_filter(q, p)
    kept = out > 0
    assert q[kept].sum() >= p - 1e-9  # enough mass
    # smallest: dropping the least likely kept token would fall short of p
    if kept.sum() > 1:
        assert q[kept].sum() - q[kept].min() < p + 1e-9
    # the most likely tokens are the ones kept
    if (~kept).any():
        assert q[kept].min() >= q[~kept].max() - 1e-15
    assert math.isclose(out.sum(), 1.0, abs_tol=1e-9)


def test_temperature_one_changes_nothing_and_high_temperature_flattens() -> None:
    q = np.array([0.7, 0.2, 0.1])
    assert np.allclose(apply_temperature_top_p(q, 1.0, 1.0), q)
    hot = apply_temperature_top_p(q, 3.0, 1.0)
    assert entropy_from_probs(hot) > entropy_from_probs(q)
    with pytest.raises(ValueError):
        apply_temperature_top_p([], 1, 1)
    with pytest.raises(ValueError):
        apply_temperature_top_p([0.5, 0.5], -1, 1)


def test_perplexity_of_a_uniform_distribution_is_its_size() -> None:
    assert math.isclose(perplexity(float(entropy_from_probs([0.25] * 4))), 4.0)


def _tok(index: int, text: str, probs: dict[str, float], model: str = "m") -> TokenReceived:
    alts = tuple(Alternative(k, math.log(v)) for k, v in probs.items())
    h = float(entropy_from_probs([*probs.values(), max(0.0, 1 - sum(probs.values()))]))
    return TokenReceived(run_id="r", t=0.0, model=model, index=index, text=text, logprob=alts[0].logprob,
                         entropy=h, entropy_kind="full", alternatives=alts)


def test_distributions_by_hand_from_logits_and_from_a_token() -> None:
    d = Distribution.from_probs({"a": 0.5, "b": 0.3})
    assert d.labels == ("a", "b", OTHER) and math.isclose(sum(d.probs), 1.0)
    assert Distribution.from_probs({"a": 3, "b": 1}).probs == (0.75, 0.25)
    lg = Distribution.from_logits({"x": 0.0, "y": math.log(3)})
    assert lg.labels == ("y", "x") and math.isclose(lg.probs[0], 0.75)
    tok = _tok(0, " Paris", {" Paris": 0.6, " Lyon": 0.1})
    dt = Distribution.from_token(tok)
    assert dt.labels == (" Paris", " Lyon", OTHER) and math.isclose(dt.probs[2], 0.3)
    shaped = reshape(dt, 0.0, 1.0, np.random.default_rng(0))
    assert shaped.sampled == " Paris" and shaped.entropy == 0.0 and shaped.perplexity == 1.0
    assert math.isclose(reshape(dt, 1.0, 1.0).bits, shaped.bits + reshape(dt, 1.0, 1.0).entropy / math.log(2))


def test_contrast_tokens_picks_the_surest_and_the_least_sure() -> None:
    toks = [_tok(0, "A", {"A": 0.99}), _tok(1, " b", {" b": 0.4, " c": 0.3}), _tok(2, " ", {" ": 0.5})]
    low, high = contrast_tokens(toks)
    assert (low.index, high.index) == (0, 1)
    with pytest.raises(ValueError):
        contrast_tokens([])


# -- the widget -------------------------------------------------------------------------------
async def test_playground_sliders_reshape_the_bars_and_the_numbers() -> None:
    from ensemble_nb.widgets.playground import EntropyPlayground

    pg = EntropyPlayground({"Paris": 0.5, "Lyon": 0.3, "Nice": 0.1}, seed=1)
    assert pg.distribution.labels[-1] == OTHER
    assert "nats" in pg.stats.value and "bits" in pg.stats.value and "perplexity" in pg.stats.value
    cold = pg.set(temperature=0.0)
    assert list(pg.chart.data[1].y) == [1.0, 0.0, 0.0, 0.0] and cold.sampled == "Paris" and cold.entropy == 0
    hot = pg.set(temperature=2.0)
    assert hot.entropy > float(entropy_from_probs(pg.distribution.array()))
    pg.temperature.value = 1.0  # what a slider drag does
    assert math.isclose(pg.shaped.entropy if pg.shaped else 0, pg.base_entropy)
    nucleus = pg.set(top_p=0.5)
    assert nucleus.probs == (1.0, 0.0, 0.0, 0.0)
    assert "1 of 4" in pg.stats.value


async def test_playground_from_logits_and_from_a_real_token() -> None:
    from ensemble_nb.widgets.playground import EntropyPlayground, contrast

    pg = EntropyPlayground({"a": 2.0, "b": 1.0, "c": 0.0}, logits=True)
    assert math.isclose(sum(pg.distribution.probs), 1.0) and pg.distribution.labels == ("a", "b", "c")
    toks = [_tok(0, "A", {"A": 0.99}), _tok(1, " b", {" b": 0.4, " c": 0.3})]
    from ensemble_nb.core.result import ModelResult

    c = contrast(ModelResult("m", tokens=toks))
    assert c.low_token.index == 0 and c.high_token.index == 1
    assert c.high.base_entropy > c.low.base_entropy
    assert "least sure" in c.high.chart.layout.title.text
