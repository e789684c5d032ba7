"""The notebook views of a run: ``EnsembleView`` (live widgets) and ``result_mimebundle`` (static).

Everything that imports ipywidgets, anywidget, traitlets or plotly lives here, never in
``ensemble_nb.core``. Names are imported on first use so that ``static_html`` (used by
``RunResult``'s repr) does not pull in plotly and the widget libraries.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ensemble_nb.widgets.ensemble_view import EnsembleView
    from ensemble_nb.widgets.explorer import TokenExplorer, explore
    from ensemble_nb.widgets.playground import EntropyContrast, EntropyPlayground, contrast
    from ensemble_nb.widgets.static_html import result_html, result_mimebundle

__all__ = ["EnsembleView", "EntropyContrast", "EntropyPlayground", "TokenExplorer", "contrast", "explore",
           "result_html", "result_mimebundle"]

_LAZY = {"TokenExplorer": "explorer", "explore": "explorer", "EntropyPlayground": "playground",
         "EntropyContrast": "playground", "contrast": "playground"}


def __getattr__(name: str) -> Any:
    if name == "EnsembleView":
        from ensemble_nb.widgets.ensemble_view import EnsembleView

        return EnsembleView
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f"ensemble_nb.widgets.{_LAZY[name]}"), name)
    if name in ("result_html", "result_mimebundle"):
        from ensemble_nb.widgets import static_html

        return getattr(static_html, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
