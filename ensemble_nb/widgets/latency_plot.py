"""The figure of ``%ensemble latency``: p50/p90/p99 time to first token per model, as bars.

Built from :func:`ensemble_nb.core.orchestrator.latency_plot_data` rows (times in seconds); shown
in milliseconds. A plain ``go.Figure`` (not a widget): it is drawn once and never updated.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import plotly.graph_objects as go

PERCENTILES = ("p50", "p90", "p99")
_COLORS = {"p50": "#4c78a8", "p90": "#f58518", "p99": "#e45756"}


def label(row: Mapping[str, Any]) -> str:
    """``model`` at the default endpoint, ``model@endpoint`` elsewhere."""
    endpoint = str(row.get("endpoint", "default"))
    return str(row["model"]) if endpoint == "default" else f"{row['model']}@{endpoint}"


def latency_figure(rows: Sequence[Mapping[str, Any]]) -> go.Figure:
    """Grouped bars, one group per model and endpoint, one bar per percentile (missing ones
    are left out of their group)."""
    names = [label(row) for row in rows]
    traces = []
    for p in PERCENTILES:
        values = [row.get(f"ttft_{p}") for row in rows]
        ms = [v * 1000 if v is not None else None for v in values]
        traces.append(go.Bar(
            x=names, y=ms, name=f"TTFT {p}", marker={"color": _COLORS[p]},
            hovertemplate="%{x}<br>" + p + ": %{y:.0f} ms<extra></extra>",
        ))
    return go.Figure(data=traces, layout=go.Layout(
        title={"text": "Time to first token per model", "font": {"size": 13}},
        barmode="group", height=320, margin={"l": 60, "r": 10, "t": 40, "b": 80},
        xaxis={"title": {"text": "model"}, "automargin": True},
        yaxis={"title": {"text": "time to first token (ms)"}, "rangemode": "tozero"},
        legend={"orientation": "h", "y": 1.02, "yanchor": "bottom", "x": 1, "xanchor": "right"},
    ))
