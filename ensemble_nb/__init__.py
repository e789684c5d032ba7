"""ensemble_nb: run an LLM ensemble in a Jupyter cell.

``%load_ext ensemble_nb`` registers ``%%ensemble``. ``import ensemble_nb`` is light: the public
names below are imported on first use, and heavy libraries (numpy, httpx, ipywidgets, plotly,
llama_cpp) only when a run starts.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ensemble_nb.core.api import prepare, run, run_async
    from ensemble_nb.core.errors import UserError
    from ensemble_nb.core.options import RunOptions
    from ensemble_nb.core.result import RunResult
    from ensemble_nb.core.run import EnsembleRun
    from ensemble_nb.textview import TextRenderer

_LAZY = {
    "prepare": "ensemble_nb.core.api",
    "run": "ensemble_nb.core.api",
    "run_async": "ensemble_nb.core.api",
    "UserError": "ensemble_nb.core.errors",
    "RunOptions": "ensemble_nb.core.options",
    "RunResult": "ensemble_nb.core.result",
    "EnsembleRun": "ensemble_nb.core.run",
    "TextRenderer": "ensemble_nb.textview",
}

__all__ = [
    "EnsembleRun",
    "RunOptions",
    "RunResult",
    "TextRenderer",
    "UserError",
    "load_ipython_extension",
    "prepare",
    "run",
    "run_async",
    "unload_ipython_extension",
]


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext ensemble_nb``."""
    from ensemble_nb.magics import load

    load(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    """``%unload_ext ensemble_nb``."""
    from ensemble_nb.magics import unload

    unload(ipython)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value  # later look-ups skip this hook
        return value
    raise AttributeError(f"module 'ensemble_nb' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})
