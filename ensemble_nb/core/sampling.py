"""How temperature and top-p reshape a next-token distribution: the maths behind the playground.

Pure numpy, no notebook imports. Temperature divides the logits (p_i ∝ p_i^(1/T)); T → 0 puts
all the mass on the most likely token (greedy decoding), T = 1 leaves the distribution as it is
and T > 1 flattens it. Top-p (nucleus) keeps the smallest set of most likely tokens whose mass
reaches p and renormalises them. Temperature is applied first, as llama.cpp and most servers do.

A distribution taken from a real token has only its top-k and an ``(other)`` bar for the rest of
the vocabulary; here that bar is reshaped as if it were one token. That is exact for the top-k
relative to each other and an approximation for the tail, good enough to teach the shapes.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ensemble_nb.core.entropy import entropy_from_probs, log_softmax, to_bits
from ensemble_nb.core.events import TokenReceived

OTHER = "(other)"
"""The label of the mass outside a token's top-k."""


def apply_temperature_top_p(probs: ArrayLike, temperature: float = 1.0, top_p: float = 1.0) -> NDArray[np.float64]:
    """The distribution after temperature then top-p; same order as ``probs``, sums to 1."""
    p: NDArray[np.float64] = np.asarray(probs, dtype=np.float64)
    if p.ndim != 1 or p.size == 0 or not np.all(np.isfinite(p)) or np.any(p < 0) or p.sum() <= 0:
        raise ValueError("probs must be a non-empty vector of non-negative numbers with a positive sum")
    if temperature < 0 or not 0 < top_p <= 1:
        raise ValueError("temperature must be >= 0 and top_p in (0, 1]")
    p = p / p.sum()
    if temperature == 0 or temperature < 1e-6:
        out: NDArray[np.float64] = np.zeros_like(p)
        out[int(np.argmax(p))] = 1.0  # argmax takes the first of equals: greedy is deterministic
        return out
    with np.errstate(divide="ignore"):
        logp = np.log(p)
    p = np.exp(log_softmax(np.where(np.isfinite(logp), logp / temperature, -np.inf)))
    return top_p_filter(p, top_p)


def top_p_filter(probs: ArrayLike, top_p: float) -> NDArray[np.float64]:
    """Keep the smallest set of most likely tokens whose mass is ≥ ``top_p``; renormalise."""
    p: NDArray[np.float64] = np.asarray(probs, dtype=np.float64)
    p = p / p.sum()
    if top_p >= 1.0:
        return p
    order = np.argsort(-p, kind="stable")
    cum = np.cumsum(p[order])
    # A tolerance keeps a set whose mass equals p up to rounding from pulling in one more token.
    n_keep = int(np.searchsorted(cum, top_p - 1e-12, side="left")) + 1
    keep = order[:min(n_keep, p.size)]
    out: NDArray[np.float64] = np.zeros_like(p)
    out[keep] = p[keep]
    out = out / out.sum()
    return out


def perplexity(entropy_nats: float) -> float:
    """e^H: the number of equally likely tokens that would be as uncertain."""
    return math.exp(entropy_nats)


@dataclass(frozen=True)
class Distribution:
    """Named next-token probabilities (most likely first), e.g. a token's top-k plus 'other'."""

    labels: tuple[str, ...]
    probs: tuple[float, ...]
    title: str = ""

    @classmethod
    def from_probs(cls, probs: Mapping[str, float], title: str = "") -> Distribution:
        """From token → probability; any missing mass becomes an ``(other)`` bar."""
        items = sorted(probs.items(), key=lambda kv: -kv[1])
        if not items or any(v < 0 or not math.isfinite(v) for _, v in items):
            raise ValueError("give at least one token with a non-negative probability")
        total = sum(v for _, v in items)
        if total > 1 + 1e-6:  # counts or scores: read as relative weights
            items = [(k, v / total) for k, v in items]
        elif total < 1 - 1e-9:
            items.append((OTHER, 1.0 - total))
        return cls(tuple(k for k, _ in items), tuple(float(v) for _, v in items), title)

    @classmethod
    def from_logits(cls, logits: Mapping[str, float], title: str = "") -> Distribution:
        """From token → logit (softmax over exactly these tokens)."""
        names = list(logits)
        p = np.exp(log_softmax(np.array([logits[n] for n in names], dtype=np.float64)))
        return cls.from_probs(dict(zip(names, p.tolist(), strict=True)), title)

    @classmethod
    def from_token(cls, tok: TokenReceived) -> Distribution:
        """A generated token's top-k alternatives, the mass outside them as ``(other)``."""
        if not tok.alternatives:
            raise ValueError(f"token {tok.index} of {tok.model} has no alternatives: run with top_k > 0")
        probs: dict[str, float] = {}
        for alt in tok.alternatives:
            probs[alt.text] = probs.get(alt.text, 0.0) + math.exp(alt.logprob)
        if sum(probs.values()) > 1:
            probs = {k: v / sum(probs.values()) for k, v in probs.items()}
        return cls.from_probs(probs, f"{tok.model} token {tok.index}: {tok.text!r}")

    def array(self) -> NDArray[np.float64]:
        return np.asarray(self.probs, dtype=np.float64)


@dataclass(frozen=True)
class Shaped:
    """A distribution after temperature and top-p, with its entropy and a sampled token."""

    labels: tuple[str, ...]
    probs: tuple[float, ...]
    entropy: float
    sampled: str

    @property
    def bits(self) -> float:
        return float(to_bits(self.entropy))

    @property
    def perplexity(self) -> float:
        return perplexity(self.entropy)


def reshape(dist: Distribution, temperature: float, top_p: float, rng: np.random.Generator | None = None) -> Shaped:
    """``dist`` after temperature and top-p; one token drawn from the result with ``rng``."""
    p = apply_temperature_top_p(dist.array(), temperature, top_p)
    rng = rng if rng is not None else np.random.default_rng()
    sampled = dist.labels[int(rng.choice(p.size, p=p))]
    return Shaped(dist.labels, tuple(float(x) for x in p), float(entropy_from_probs(p)), sampled)


def contrast_tokens(tokens: Iterable[TokenReceived], skip_blank: bool = True,
                    ) -> tuple[TokenReceived, TokenReceived]:
    """The lowest- and highest-entropy tokens (with alternatives) of a model's own output."""
    pool: Sequence[TokenReceived] = [t for t in tokens if t.entropy is not None and t.alternatives
                                     and (t.text.strip() or not skip_blank)]
    if not pool:
        raise ValueError("no token with an entropy and alternatives: run a model that returns probabilities")
    low = min(pool, key=lambda t: t.entropy or 0.0)
    high = max(pool, key=lambda t: t.entropy or 0.0)
    return low, high
