"""Fitting the per-model maps from confidence signals to P(correct).

Logistic regression by Newton's method (IRLS) with an L2 penalty, in numpy: a few dozen
labelled answers per model are all an evaluation has, and the penalty keeps five
coefficients from chasing them. Features are standardised for the fit and the map is stored
in raw units, so applying it needs nothing but the JSON.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from ensemble_nb.core.confidence import FEATURES, Calibration, LogisticMap


def fit_logistic(x: Sequence[Sequence[float]], y: Sequence[bool], l2: float = 1.0, iters: int = 50) -> LogisticMap:
    """The penalised maximum-likelihood logistic map of ``x`` (n × d) to ``y``.

    With a single class the map is the constant log-odds of the smoothed rate (no slope can
    be learned from it).
    """
    xa = np.asarray(x, dtype=np.float64)
    ya = np.asarray(y, dtype=np.float64)
    n, d = xa.shape
    rate = (ya.sum() + 0.5) / (n + 1.0)
    if n == 0 or ya.min() == ya.max():
        return LogisticMap(tuple([0.0] * d), float(np.log(rate / (1 - rate))), n)
    mu, sd = xa.mean(axis=0), xa.std(axis=0)
    sd[sd < 1e-9] = 1.0
    z = np.hstack([np.ones((n, 1)), (xa - mu) / sd])
    w = np.zeros(d + 1)
    w[0] = np.log(rate / (1 - rate))
    # The intercept is barely shrunk; a tiny penalty keeps its Newton step finite when every
    # prediction saturates.
    penalty = np.diag([1e-4] + [l2] * d)

    def loss(v: np.ndarray) -> float:
        zv = z @ v
        return float(np.logaddexp(0.0, zv).sum() - ya @ zv + 0.5 * v @ penalty @ v)

    current = loss(w)
    for _ in range(iters):
        p = 1.0 / (1.0 + np.exp(-np.clip(z @ w, -40, 40)))
        grad = z.T @ (ya - p) - penalty @ w
        hess = (z * (p * (1 - p))[:, None]).T @ z + penalty
        step = np.linalg.solve(hess, grad)
        # Damped Newton: halve the step until the penalised loss goes down.
        t = 1.0
        while t > 1e-6 and loss(w + t * step) > current:
            t /= 2
        w = w + t * step
        new = loss(w)
        if current - new < 1e-10:
            break
        current = new
    coef = w[1:] / sd
    intercept = w[0] - float((coef * mu).sum())
    return LogisticMap(tuple(float(c) for c in coef), float(intercept), n)


def fit_calibration(rows: Mapping[str, tuple[Sequence[Sequence[float]], Sequence[bool]]],
                    l2: float = 1.0) -> Calibration:
    """One map per model from its (features, correct) rows, plus a pooled "*" map for others."""
    maps = {m: fit_logistic(x, y, l2) for m, (x, y) in rows.items()}
    all_x = [f for x, _ in rows.values() for f in x]
    all_y = [c for _, y in rows.values() for c in y]
    if all_x:
        maps["*"] = fit_logistic(all_x, all_y, l2)
    return Calibration(maps, FEATURES, source="fitted")


def fit_single(values: Sequence[float], y: Sequence[bool], l2: float = 0.1) -> LogisticMap:
    """Platt scaling of one signal: for comparing a single signal's calibration with the combined one."""
    return fit_logistic([[v] for v in values], y, l2)
