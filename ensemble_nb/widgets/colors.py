"""The entropy colour scale shared by the live view, the static HTML and the legend.

Entropy is in nats throughout (the core's unit); bits are only shown alongside. A span's
confidence is exp(-mean entropy), so confidence is drawn on the same scale through -ln(c):
a span and the tokens it was built from get the same colour.
"""

from __future__ import annotations

import html
import itertools
import math

# Light tints so dark text stays readable on every token. The top stop is where a model
# spreads its mass over ~20 equally likely tokens (ln 20 ≈ 3); everything above is "guessing".
SCALE_MAX = 3.0
_STOPS: tuple[tuple[float, tuple[int, int, int]], ...] = (
    (0.0, (214, 240, 210)),
    (0.5, (240, 246, 196)),
    (1.0, (254, 227, 145)),
    (2.0, (253, 174, 107)),
    (SCALE_MAX, (244, 120, 120)),
)
LN2 = math.log(2.0)
NO_PROBS_LABEL = "no token probabilities"


def entropy_color(entropy: float | None) -> str | None:
    """A CSS colour for an entropy in nats; None when there is nothing honest to draw."""
    if entropy is None or not math.isfinite(entropy):
        return None
    h = min(max(entropy, 0.0), SCALE_MAX)
    for (h0, c0), (h1, c1) in itertools.pairwise(_STOPS):
        if h <= h1:
            f = (h - h0) / (h1 - h0)
            r, g, b = (round(a + (z - a) * f) for a, z in zip(c0, c1, strict=True))
            return f"#{r:02x}{g:02x}{b:02x}"
    r, g, b = _STOPS[-1][1]
    return f"#{r:02x}{g:02x}{b:02x}"


def confidence_color(confidence: float) -> str:
    """The colour of the entropy whose confidence this is (see the module docstring)."""
    color = entropy_color(-math.log(max(confidence, 1e-9)))
    assert color is not None  # a finite confidence always maps to a finite entropy
    return color


def format_entropy(entropy: float | None) -> str:
    if entropy is None:
        return NO_PROBS_LABEL
    return f"{entropy:.3f} nats ({entropy / LN2:.3f} bits)"


def _gradient() -> str:
    parts = []
    for h, _ in _STOPS:
        color = entropy_color(h)
        parts.append(f"{color} {100 * h / SCALE_MAX:.0f}%")
    return "linear-gradient(to right, " + ", ".join(parts) + ")"


def legend_html() -> str:
    """The legend of the scale: a gradient with nats ticks and the 'no probabilities' swatch."""
    ticks = "".join(
        f'<span style="position:absolute;left:{100 * h / SCALE_MAX:.0f}%;transform:translateX(-50%)">'
        f"{h:g}{'+' if h == SCALE_MAX else ''}</span>"
        for h in (0.0, 0.5, 1.0, 2.0, SCALE_MAX)
    )
    return (
        '<div class="enb-legend" style="display:flex;gap:1.5em;align-items:center;'
        'font-size:12px;flex-wrap:wrap">'
        "<span>token entropy (nats; bits = nats / ln 2):</span>"
        '<span style="display:inline-flex;flex-direction:column;width:220px">'
        f'<span style="height:12px;border-radius:3px;background:{_gradient()}"></span>'
        f'<span style="position:relative;height:14px">{ticks}</span></span>'
        "<span>sure &#8592; &#8594; guessing</span>"
        '<span class="enb-token enb-noprob" style="border-bottom:1px dashed #888">'
        f"{html.escape(NO_PROBS_LABEL)}</span>"
        "<span>span colour: confidence = exp(&#8722;mean entropy), same scale</span>"
        "</div>"
    )
