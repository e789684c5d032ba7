"""``EntropyPlayground``: move temperature and top-p, watch a next-token distribution change.

For teaching. The distribution is a real token's top-k (the mass outside them as ``(other)``)
or one set by hand (token → probability, or token → logit with ``logits=True``). The bars show
the distribution before (outline) and after temperature and top-p (filled); beside them the
entropy in nats and bits, the perplexity e^H, and a token drawn from the new distribution.
All maths is in :mod:`ensemble_nb.core.sampling`.

Slider callbacks may run on any thread; they only recompute (microseconds) and set widget
state, which ipywidgets sends from whichever thread sets it, so no event loop is involved.
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from typing import Any

import ipywidgets as w
import numpy as np
import plotly.graph_objects as go

from ensemble_nb.core.entropy import LN2, entropy_from_probs
from ensemble_nb.core.events import TokenReceived
from ensemble_nb.core.result import ModelResult, RunResult
from ensemble_nb.core.run import EnsembleRun
from ensemble_nb.core.sampling import Distribution, Shaped, contrast_tokens, perplexity, reshape
from ensemble_nb.widgets.colors import entropy_color

Source = Distribution | TokenReceived | Mapping[str, float]


def as_distribution(source: Source, *, logits: bool = False) -> Distribution:
    """A real token (its top-k + tail), a ready ``Distribution``, or a dict set by hand."""
    if isinstance(source, Distribution):
        return source
    if isinstance(source, TokenReceived):
        return Distribution.from_token(source)
    if logits:
        return Distribution.from_logits(source, "set by hand (logits)")
    return Distribution.from_probs(source, "set by hand")


class EntropyPlayground(w.VBox):  # type: ignore[misc]
    def __init__(self, source: Source, *, logits: bool = False, temperature: float = 1.0, top_p: float = 1.0,
                 seed: int = 0, title: str | None = None) -> None:
        self.distribution = as_distribution(source, logits=logits)
        self.title = title if title is not None else self.distribution.title
        self.rng = np.random.default_rng(seed)
        p0 = self.distribution.array()
        self.base_entropy = float(entropy_from_probs(p0))
        style = {"description_width": "90px"}
        self.temperature = w.FloatSlider(value=temperature, min=0.0, max=2.0, step=0.05, description="temperature",
                                         continuous_update=True, style=style, layout=w.Layout(width="420px"))
        self.temperature.add_class("enb-temperature")
        self.top_p = w.FloatSlider(value=top_p, min=0.05, max=1.0, step=0.05, description="top-p",
                                   continuous_update=True, style=style, layout=w.Layout(width="420px"))
        self.top_p.add_class("enb-top-p")
        self.resample = w.Button(description="Sample again", icon="random", layout=w.Layout(width="auto"))
        self.resample.on_click(lambda _b: self.update())
        self.stats = w.HTML("")
        self.stats.add_class("enb-playground-stats")
        labels = [repr(lab) if lab != "(other)" else lab for lab in self.distribution.labels]
        self.labels = [f"{i + 1}. {lab}" for i, lab in enumerate(labels)]
        self.chart = go.FigureWidget(data=[
            go.Bar(name="as given (T = 1)", x=self.labels, y=list(p0),
                   marker={"color": "rgba(0,0,0,0)", "line": {"color": "#555", "width": 1.5}},
                   hovertemplate="%{x}: p = %{y:.3f}<extra>T = 1</extra>"),
            go.Bar(name="after temperature and top-p", x=self.labels, y=list(p0), marker={"color": "#60a5fa"},
                   hovertemplate="%{x}: p = %{y:.3f}<extra>reshaped</extra>"),
        ], layout=go.Layout(barmode="overlay", height=300, margin={"l": 50, "r": 10, "t": 40, "b": 70},
                            title={"text": self.title or "next-token distribution", "font": {"size": 13}},
                            yaxis={"title": {"text": "probability"}, "range": [0, 1]},
                            legend={"orientation": "h", "y": 1.02, "x": 1, "xanchor": "right", "yanchor": "bottom"}))
        self.chart.add_class("enb-playground-chart")
        self.shaped: Shaped | None = None
        self.temperature.observe(lambda _c: self.update(), "value")
        self.top_p.observe(lambda _c: self.update(), "value")
        controls = w.HBox([w.VBox([self.temperature, self.top_p]), self.resample])
        super().__init__([controls, self.chart, self.stats])
        self.add_class("enb-playground")
        self.update()

    def set(self, temperature: float | None = None, top_p: float | None = None) -> Shaped:
        """What moving the sliders does; returns the reshaped distribution."""
        if temperature is not None:
            self.temperature.value = temperature
        if top_p is not None:
            self.top_p.value = top_p
        self.update()
        assert self.shaped is not None
        return self.shaped

    def update(self) -> None:
        shaped = self.shaped = reshape(self.distribution, float(self.temperature.value), float(self.top_p.value),
                                       self.rng)
        with self.chart.batch_update():
            self.chart.data[1].y = list(shaped.probs)
            self.chart.data[1].marker.color = ["#2563eb" if lab == shaped.sampled else "#93c5fd"
                                               for lab in self.distribution.labels]
        self.stats.value = stats_html(shaped, self.base_entropy, float(self.temperature.value),
                                      float(self.top_p.value))


def stats_html(s: Shaped, base: float, temperature: float, top_p: float) -> str:
    kept = sum(1 for p in s.probs if p > 0)
    color = entropy_color(s.entropy) or "#eee"
    rows = [("entropy", f"{s.entropy:.3f} nats = {s.bits:.3f} bits", f"at T = 1: {base:.3f} nats = "
             f"{base / LN2:.3f} bits"),
            ("perplexity e^H", f"{s.perplexity:.2f}", f"as unsure as a fair choice among {s.perplexity:.1f} tokens"),
            ("tokens kept", f"{kept} of {len(s.probs)}", f"top-p {top_p:.2f}, temperature {temperature:.2f}"),
            ("sampled token", html.escape(repr(s.sampled)), "drawn from the bars above")]
    body = "".join(f"<tr><td style='padding:1px 10px 1px 0'><b>{a}</b></td><td style='padding:1px 10px 1px 0'>"
                   f"{b}</td><td style='color:#666'>{c}</td></tr>" for a, b, c in rows)
    return (f'<div class="enb-playground-summary" data-entropy="{s.entropy:.4f}" '
            f'style="border-left:6px solid {color};padding-left:8px"><table>{body}</table></div>')


class EntropyContrast(w.VBox):  # type: ignore[misc]
    """Two playgrounds side by side: the model's surest token and its least sure one."""

    def __init__(self, low: TokenReceived, high: TokenReceived, **kwargs: Any) -> None:
        self.low_token, self.high_token = low, high
        self.low = EntropyPlayground(low, title=_token_title("surest", low), **kwargs)
        self.high = EntropyPlayground(high, title=_token_title("least sure", high), **kwargs)
        ratio = perplexity((high.entropy or 0.0) - (low.entropy or 0.0))
        note = w.HTML(f"<b>{html.escape(low.model)}</b>: the high-entropy token's perplexity is "
                      f"{ratio:.1f}× the low-entropy one's (e^ΔH, ΔH = "
                      f"{(high.entropy or 0) - (low.entropy or 0):.2f} nats)")
        super().__init__([note, w.HBox([self.low, self.high])])


def _token_title(kind: str, tok: TokenReceived) -> str:
    h = tok.entropy or 0.0
    return f"{kind}: token {tok.index} {tok.text!r} of {tok.model} (H = {h:.2f} nats = {h / LN2:.2f} bits)"


def contrast(source: EnsembleRun | RunResult | ModelResult, model: str | None = None,
             **kwargs: Any) -> EntropyContrast:
    """The lowest- and highest-entropy tokens of ``model``'s own output (default: the first
    model with tokens) in two playgrounds."""
    if isinstance(source, ModelResult):
        tokens = source.tokens
    else:
        result = source.result if isinstance(source, EnsembleRun) else source
        name = model or next((m for m, r in result.models.items() if r.tokens), None)
        if name is None or name not in result.models:
            raise ValueError(f"no tokens for {model or 'any model'}: await the run first")
        tokens = result.models[name].tokens
    low, high = contrast_tokens(tokens)
    return EntropyContrast(low, high, **kwargs)

