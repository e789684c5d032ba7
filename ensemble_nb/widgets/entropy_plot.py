"""The live plot of per-token entropy (nats), one trace per model, last ``window`` tokens each.

Points are buffered as tokens arrive and pushed in one ``batch_update`` per flush. Plotly's
widget sends four comm messages for any update (two edit ids, the update, its reset), so the
view flushes the plot less often than the panes (see ``EnsembleView``).
"""

from __future__ import annotations

import math
from collections import deque

import plotly.graph_objects as go

from ensemble_nb.core.events import TokenReceived

PLOT_MESSAGES = 4
"""Comm messages plotly's FigureWidget sends for one batch_update (measured, plotly 6-7)."""


class EntropyPlot:
    def __init__(self, models: list[str], window: int = 300) -> None:
        self.window = window
        self._points: dict[str, deque[tuple[int, float | None, str]]] = {}
        self._dirty: set[str] = set()
        self._points.update({m: deque(maxlen=window) for m in models})
        self.figure = go.FigureWidget(data=[_trace(m) for m in models], layout=go.Layout(
            title={"text": f"Per-token entropy (nats) — last {window} tokens per model", "font": {"size": 13}},
            height=260, margin={"l": 50, "r": 10, "t": 36, "b": 36},
            xaxis={"title": {"text": "token index"}},
            yaxis={"title": {"text": "entropy (nats)"}, "rangemode": "tozero"},
            legend={"orientation": "h", "y": -0.25},
            shapes=[{"type": "line", "xref": "paper", "x0": 0, "x1": 1, "y0": math.log(2), "y1": math.log(2),
                     "line": {"dash": "dot", "width": 1, "color": "#888"}}],
            annotations=[{"xref": "paper", "x": 1, "y": math.log(2), "xanchor": "right", "yanchor": "bottom",
                          "text": "coin flip (ln 2)", "showarrow": False, "font": {"size": 10, "color": "#666"}}],
        ))
        self.figure.add_class("enb-plot")

    # listener side
    def add(self, tok: TokenReceived) -> None:
        entropy = tok.entropy if tok.entropy_kind != "none" else None
        points = self._points.get(tok.model)
        if points is None:
            points = self._points[tok.model] = deque(maxlen=self.window)
        points.append((tok.index, entropy, tok.text))
        self._dirty.add(tok.model)

    @property
    def dirty(self) -> bool:
        return bool(self._dirty)

    # tick side
    def flush(self) -> int:
        if not self._dirty:
            return 0
        traces = {trace.name: trace for trace in self.figure.data}
        for model in self._dirty - traces.keys():  # a model the run added after the view was built
            self.figure.add_trace(_trace(model))
        traces = {trace.name: trace for trace in self.figure.data}
        with self.figure.batch_update():
            for model in self._dirty:
                xs, ys, texts = zip(*self._points[model], strict=True) if self._points[model] else ((), (), ())
                trace = traces[model]
                trace.x, trace.y, trace.text = list(xs), list(ys), list(texts)
        self._dirty.clear()
        return PLOT_MESSAGES

    def entropies(self, model: str) -> list[float | None]:
        """What the model's trace shows (for tests and reports)."""
        trace = next(tr for tr in self.figure.data if tr.name == model)
        return list(trace.y or ())


def _trace(model: str) -> go.Scatter:
    return go.Scatter(
        x=[], y=[], text=[], name=model, mode="lines+markers", marker={"size": 4}, connectgaps=False,
        hovertemplate="%{text}<br>token %{x}: %{y:.3f} nats<extra>" + model + "</extra>",
    )
