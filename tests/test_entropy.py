"""Entropy maths against closed forms, scipy, and the top-k bounds on random distributions."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.special import log_softmax as sp_log_softmax
from scipy.stats import entropy as sp_entropy

from ensemble_nb.core.entropy import (
    aggregate,
    analyze_logits,
    entropy_from_logits,
    entropy_from_probs,
    log_softmax,
    to_bits,
    top_k,
    topk_entropy,
)


@pytest.mark.parametrize("v", [2, 10, 49_152, 262_144])
def test_uniform_logits_have_entropy_log_v(v: int) -> None:
    assert entropy_from_logits(np.full(v, 3.5, dtype=np.float32)) == pytest.approx(math.log(v), rel=1e-5)
    assert to_bits(entropy_from_logits(np.zeros(v))) == pytest.approx(math.log2(v), rel=1e-9)


def test_one_hot_has_zero_entropy() -> None:
    logits = np.full(1000, -1e4)
    logits[17] = 10.0
    assert entropy_from_logits(logits) == pytest.approx(0.0, abs=1e-12)
    assert entropy_from_probs(np.eye(5)[2]) == 0.0


def test_two_way_coin_flip_is_one_bit() -> None:
    assert to_bits(entropy_from_logits([0.0, 0.0])) == pytest.approx(1.0)


def test_masked_minus_inf_logits_contribute_nothing() -> None:
    assert entropy_from_logits([0.0, -np.inf, 0.0, -np.inf]) == pytest.approx(math.log(2))


def test_huge_logits_do_not_overflow() -> None:
    assert entropy_from_logits([1e4, 1e4 - 1.0]) == pytest.approx(
        sp_entropy(np.exp(sp_log_softmax([0.0, -1.0]))))


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("scale", [0.1, 1.0, 5.0, 20.0])
def test_random_logits_match_scipy(seed: int, scale: float) -> None:
    rng = np.random.default_rng(seed)
    logits = rng.standard_normal(5000) * scale
    ref = sp_entropy(np.exp(sp_log_softmax(logits)))
    assert entropy_from_logits(logits) == pytest.approx(ref, rel=1e-9, abs=1e-12)
    assert entropy_from_logits(logits.astype(np.float32)) == pytest.approx(ref, rel=1e-4, abs=1e-5)
    np.testing.assert_allclose(log_softmax(logits), sp_log_softmax(logits), atol=1e-10)


def test_batched_entropy_matches_rows() -> None:
    rng = np.random.default_rng(1)
    batch = rng.standard_normal((4, 300)) * 3
    rows = [entropy_from_logits(row) for row in batch]
    np.testing.assert_allclose(entropy_from_logits(batch), rows, rtol=1e-10)


@pytest.mark.parametrize("seed", range(5))
def test_analyze_logits_top_k_is_the_true_top_k(seed: int) -> None:
    rng = np.random.default_rng(seed)
    logits = (rng.standard_normal(262_144) * (1 + seed)).astype(np.float32)
    h, idx, lps = analyze_logits(logits, 20)
    ref_lp = sp_log_softmax(logits.astype(np.float64))
    ref_idx = np.argsort(-ref_lp, kind="stable")[:20]
    assert list(idx) == list(ref_idx)
    np.testing.assert_allclose(lps, ref_lp[ref_idx], atol=1e-4)
    assert h == pytest.approx(sp_entropy(np.exp(ref_lp)), rel=1e-4)
    assert list(top_k(logits, 3)[0]) == list(ref_idx[:3])


def test_aggregate_skips_missing() -> None:
    assert aggregate([1.0, None, 3.0]) == 2.0
    assert aggregate([1.0, None, 3.0], "max") == 3.0
    assert aggregate([None]) is None


def test_topk_with_all_mass_is_exact() -> None:
    est, b = topk_entropy(np.log([0.5, 0.25, 0.25]), vocab_size=1000)
    assert est == pytest.approx(1.5 * math.log(2))
    assert b.lower == b.tight_lower == b.upper == pytest.approx(est)
    assert b.tail_mass == pytest.approx(0.0, abs=1e-12)


def test_topk_bounds_closed_form() -> None:
    # p = (0.4, 0.2); tail m = 0.4 over V - 2 = 8 unseen tokens.
    est, b = topk_entropy(np.log([0.4, 0.2]), vocab_size=10)
    h_k = -(0.4 * math.log(0.4) + 0.2 * math.log(0.2))
    assert b.lower == pytest.approx(h_k)
    assert b.tight_lower == pytest.approx(h_k + 2 * 0.2 * -math.log(0.2))  # q = 2, r = 0
    assert b.upper == pytest.approx(h_k + 0.4 * math.log(8 / 0.4))
    assert b.tight_lower <= est <= b.upper


@st.composite
def distributions(draw: st.DrawFn) -> tuple[np.ndarray, int]:
    v = draw(st.integers(min_value=3, max_value=3000))
    k = draw(st.integers(min_value=1, max_value=min(20, v - 1)))
    seed = draw(st.integers(min_value=0, max_value=2**32 - 1))
    temperature = draw(st.floats(min_value=0.05, max_value=5.0))
    heavy = draw(st.booleans())
    rng = np.random.default_rng(seed)
    raw = rng.standard_cauchy(v) if heavy else rng.standard_normal(v) * 3
    logits = np.clip(raw, -50, 50) / temperature
    return np.exp(sp_log_softmax(logits)), k


@settings(max_examples=300, deadline=None)
@given(distributions())
def test_topk_bounds_hold(dist: tuple[np.ndarray, int]) -> None:
    p, k = dist
    true = float(sp_entropy(p))
    head = np.sort(p)[::-1][:k]
    head = head[head > 0]  # underflow at low temperature: those tokens are simply unseen
    est, b = topk_entropy(np.log(head), vocab_size=p.size)
    tol = 1e-9
    assert b.lower <= b.tight_lower + tol
    assert b.tight_lower <= true + 1e-7
    assert true <= b.upper + 1e-7
    assert b.tight_lower - tol <= est <= b.upper + tol
    assert b.tail_mass == pytest.approx(max(0.0, 1 - head.sum()), abs=1e-9)
