"""Entropy of next-token distributions: exact from logits, bounded and estimated from top-k.

All results are in nats; :func:`to_bits` converts. Everything is vectorised over the last axis
and numerically stable (log-sum-exp with the max subtracted), so a 262k-entry vocabulary costs
well under a millisecond per token.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import lru_cache
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ensemble_nb.core.tokens import EntropyBounds

LN2 = math.log(2.0)


def to_bits(nats: float | NDArray[np.floating]) -> float | NDArray[np.floating]:
    return nats / LN2


def log_softmax(logits: ArrayLike) -> NDArray[np.float64]:
    x = np.asarray(logits, dtype=np.float64)
    z = x - x.max(axis=-1, keepdims=True)
    out: NDArray[np.float64] = z - np.log(np.exp(z).sum(axis=-1, keepdims=True))
    return out


def entropy_from_logits(logits: ArrayLike) -> float | NDArray[np.floating]:
    """Shannon entropy (nats) of softmax(logits) over the last axis.

    H = log S - sum(e*z)/S with z = x - max(x), e = exp(z), S = sum(e): one exp and two
    reductions, no log of tiny probabilities. -inf logits (masked tokens) contribute nothing.
    """
    x = np.asarray(logits)
    if not np.issubdtype(x.dtype, np.floating):
        x = x.astype(np.float64)
    if x.ndim == 1:
        return analyze_logits(x, 0)[0]
    z = x - x.max(axis=-1, keepdims=True)
    z = np.maximum(z, np.finfo(z.dtype).min)
    e = np.exp(z)
    s = e.sum(axis=-1)
    h = np.log(s) - (e * z).sum(axis=-1) / s
    out: NDArray[np.floating] = np.maximum(h, 0.0)
    return out


def analyze_logits(logits: NDArray[np.floating], k: int) -> tuple[float, NDArray[np.intp], NDArray[np.float64]]:
    """Entropy (nats) of one logit vector, and its k most likely tokens with log-probabilities.

    The hot path of a local model: it shares one exp between the entropy and the
    normaliser, uses BLAS dot products for the reductions, and finds the top-k among the few
    logits near the maximum instead of partitioning the whole vocabulary.
    """
    x = np.asarray(logits)
    mx = x.max()
    z = x - mx
    e = np.exp(z)
    s = float(e.sum(dtype=np.float64))
    with np.errstate(invalid="ignore"):
        ez = float(np.dot(e, z))
    if not math.isfinite(ez):  # -inf logits: exp gave 0, 0 * -inf gave nan
        ez = float(np.dot(e, np.maximum(z, np.finfo(z.dtype).min)))
    log_s = math.log(s)
    h = max(log_s - ez / s, 0.0)
    if k <= 0:
        return h, np.empty(0, dtype=np.intp), np.empty(0)
    k = min(k, x.shape[-1])
    idx = _top_indices(z, k)
    return h, idx, z[idx].astype(np.float64) - log_s


def _top_indices(z: NDArray[np.floating], k: int) -> NDArray[np.intp]:
    # Few logits sit within a few nats of the maximum; partition only those.
    for gap in (8.0, 24.0):
        cand = np.flatnonzero(z >= -gap)
        if cand.size >= k:
            break
    else:
        cand = np.arange(z.size)
    sub = z[cand]
    part = np.argpartition(sub, -k)[-k:] if cand.size > k else np.arange(cand.size)
    order = part[np.argsort(sub[part], kind="stable")[::-1]]
    out: NDArray[np.intp] = cand[order]
    return out


def entropy_from_probs(probs: ArrayLike) -> float | NDArray[np.floating]:
    """Entropy (nats) of a probability vector over the last axis; zeros contribute nothing."""
    p = np.asarray(probs, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, -p * np.log(p), 0.0)
    h = terms.sum(axis=-1)
    return float(h) if np.ndim(h) == 0 else h


def top_k(logits: NDArray[np.floating], k: int) -> tuple[NDArray[np.intp], NDArray[np.float64]]:
    """Indices and log-probabilities of the k most likely tokens, most likely first."""
    _, idx, logprobs = analyze_logits(np.asarray(logits), k)
    return idx, logprobs


def topk_entropy(logprobs: Sequence[float] | NDArray[np.floating], vocab_size: int) -> tuple[float, EntropyBounds]:
    """Estimate of the entropy from the top-k log-probabilities only, and its bounds.

    With p sorted descending and tail mass m = 1 - sum(p):
    lower = H_k = -sum p log p (ignores the tail);
    tight_lower adds the least-entropy tail: q tokens of p_k and one of r = m - q p_k
    (no unseen token can be likelier than p_k);
    upper adds the tail spread evenly over the V - k unseen tokens: m log((V - k) / m).
    The estimate fits a power law to the top-k ranks, extends it over the unseen ranks with
    mass m, and is clipped into [tight_lower, upper].
    """
    p = np.sort(np.exp(np.asarray(logprobs, dtype=np.float64)))[::-1]
    p = p[p > 0]
    k = p.size
    if k == 0:
        raise ValueError("topk_entropy needs at least one log-probability")
    if k > 1 and p.sum() > 1.0:  # rounding in a provider's values: renormalise the head
        p = p / p.sum()
    h_k = float(-(p * np.log(p)).sum())
    m = max(0.0, 1.0 - float(p.sum()))
    unseen = max(vocab_size - k, 0)
    if m <= 1e-12 or unseen == 0:
        return h_k, EntropyBounds(lower=h_k, tight_lower=h_k, upper=h_k, tail_mass=m)
    p_k = float(p[-1])
    q = math.floor(m / p_k)
    q = min(q, unseen - 1) if unseen > 1 else 0
    r = m - q * p_k
    tight = h_k + q * p_k * -math.log(p_k) + (r * -math.log(r) if r > 0 else 0.0)
    upper = h_k + m * math.log(unseen / m)
    tight = min(tight, upper)
    estimate = h_k + _power_law_tail_entropy(p, m, unseen)
    estimate = min(max(estimate, tight), upper)
    return estimate, EntropyBounds(lower=h_k, tight_lower=tight, upper=upper, tail_mass=m)


def _power_law_tail_entropy(p: NDArray[np.float64], m: float, unseen: int) -> float:
    k = p.size
    if k >= 3:
        ranks = np.log(np.arange(1, k + 1, dtype=np.float64))
        slope = float(np.polyfit(ranks, np.log(p), 1)[0])
        alpha = max(-slope, 0.0)
    else:
        alpha = 1.0
    log_r, counts = _rank_grid(k, unseen)
    logw = -alpha * log_r
    logw -= logw.max()
    w = np.exp(logw)
    t = m * w / (counts * w).sum()
    keep = t > 0
    return float(-(counts[keep] * t[keep] * np.log(t[keep])).sum())


@lru_cache(maxsize=32)
def _rank_grid(k: int, unseen: int) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """log(rank) of the unseen ranks and how many ranks each entry stands for.

    The first 2048 unseen ranks are exact; the rest are grouped in geometric bins (the power
    law is smooth there), which keeps the estimate near 0.1 ms for any vocabulary size.
    """
    exact = min(unseen, 2048)
    log_r = [np.log(np.arange(k + 1, k + 1 + exact, dtype=np.float64))]
    counts = [np.ones(exact)]
    if unseen > exact:
        edges = np.unique(np.geomspace(k + 1 + exact, k + unseen + 1, num=512).round())
        lo, hi = edges[:-1], edges[1:]
        log_r.append(0.5 * (np.log(lo) + np.log(hi - 1)))
        counts.append(hi - lo)
    return np.concatenate(log_r), np.concatenate(counts)


def aggregate(entropies: Sequence[float | None], how: Literal["mean", "max"] = "mean") -> float | None:
    """Mean or max entropy over a span; tokens without an entropy are skipped."""
    vals = [e for e in entropies if e is not None]
    if not vals:
        return None
    return float(np.mean(vals)) if how == "mean" else float(np.max(vals))
