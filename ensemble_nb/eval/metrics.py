"""How well a confidence score predicts correctness: AUROC, PRR, risk-coverage, reliability.

Scores are oriented "higher = more confident" (negate entropies before calling).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray


def _arrays(scores: Sequence[float], correct: Sequence[bool]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(correct, dtype=np.float64)
    if s.shape != y.shape:
        raise ValueError("give one score per answer")
    return s, y


def _ranks(x: NDArray[np.float64]) -> NDArray[np.float64]:
    """1-based ranks, ties sharing their mean rank."""
    order = np.argsort(x, kind="mergesort")
    ranks = np.empty(len(x), dtype=np.float64)
    sx = x[order]
    i = 0
    while i < len(x):
        j = i
        while j + 1 < len(x) and sx[j + 1] == sx[i]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def auroc(scores: Sequence[float], correct: Sequence[bool]) -> float:
    """P(a right answer scores above a wrong one), ties counting half (Mann–Whitney U).

    NaN when all answers are right or all wrong: there is nothing to separate.
    """
    s, y = _arrays(scores, correct)
    n_pos, n_neg = int(y.sum()), int(len(y) - y.sum())
    if n_pos == 0 or n_neg == 0:
        return math.nan
    r = _ranks(s)
    return float((r[y == 1].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def risk_coverage(scores: Sequence[float], correct: Sequence[bool]) -> tuple[NDArray[np.float64],
                                                                             NDArray[np.float64]]:
    """Coverage k/n and error rate of the k most confident answers, k = 1..n.

    Ties are averaged (the order inside a tie is arbitrary, so each tied group counts with
    its mean error), which makes the curve independent of how a sort breaks ties.
    """
    s, y = _arrays(scores, correct)
    order = np.argsort(-s, kind="mergesort")
    err = 1.0 - y[order]
    ss = s[order]
    i = 0
    while i < len(ss):
        j = i
        while j + 1 < len(ss) and ss[j + 1] == ss[i]:
            j += 1
        err[i:j + 1] = err[i:j + 1].mean()
        i = j + 1
    k = np.arange(1, len(s) + 1, dtype=np.float64)
    return k / len(s), np.cumsum(err) / k


def aurc(scores: Sequence[float], correct: Sequence[bool]) -> float:
    """Area under the risk-coverage curve (mean over k of the error of the top k)."""
    _, risk = risk_coverage(scores, correct)
    return float(risk.mean())


def prr(scores: Sequence[float], correct: Sequence[bool]) -> float:
    """Prediction rejection ratio (Malinin et al.): the share of the oracle's gain over random
    rejection that the score achieves. 1 = rejects errors first, 0 = random, < 0 worse.

    PRR = (AURC_random - AURC_score) / (AURC_random - AURC_oracle); NaN when all right or all wrong.
    """
    s, y = _arrays(scores, correct)
    if y.all() or not y.any():
        return math.nan
    random_rc = float(1.0 - y.mean())  # rejecting at random keeps the error rate flat
    oracle = aurc(y.tolist(), y.astype(bool).tolist())
    return float((random_rc - aurc(s.tolist(), y.astype(bool).tolist())) / (random_rc - oracle))


def reliability(probs: Sequence[float], correct: Sequence[bool], bins: int = 10) -> list[tuple[float, float, int]]:
    """(mean confidence, accuracy, count) per equal-width bin, empty bins left out."""
    p, y = _arrays(probs, correct)
    idx = np.minimum((p * bins).astype(int), bins - 1)
    return [(float(p[idx == b].mean()), float(y[idx == b].mean()), int((idx == b).sum()))
            for b in range(bins) if (idx == b).any()]


def ece(probs: Sequence[float], correct: Sequence[bool], bins: int = 10) -> float:
    """Expected calibration error: count-weighted |confidence - accuracy| over the bins."""
    rows = reliability(probs, correct, bins)
    n = sum(c for _, _, c in rows)
    return sum(abs(conf - acc) * c for conf, acc, c in rows) / n if n else math.nan


def brier(probs: Sequence[float], correct: Sequence[bool]) -> float:
    p, y = _arrays(probs, correct)
    return float(((p - y) ** 2).mean())
