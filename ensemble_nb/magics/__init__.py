"""IPython integration: the ``%%ensemble`` magic and its ``Ensemble`` config.

``%load_ext ensemble_nb`` calls :func:`load`. Loading stays cheap: only IPython and traitlets
(both already imported by IPython) are needed until a magic is first used.
"""

from __future__ import annotations

import threading
from typing import Any

from ensemble_nb.magics.config import Ensemble
from ensemble_nb.magics.magic import EnsembleMagics

__all__ = ["Ensemble", "EnsembleMagics", "load", "unload"]


def load(shell: Any) -> None:
    """Register the magics and the ``Ensemble`` configurable on ``shell`` (idempotent)."""
    if any(isinstance(c, Ensemble) for c in shell.configurables):
        return
    # parent=shell: the Ensemble section of the shell's config (ipython_config.py) applies, and
    # being in shell.configurables is what lets %config Ensemble.NAME = ... reach it.
    settings = Ensemble(parent=shell)
    shell.configurables.append(settings)
    shell.register_magics(EnsembleMagics(shell, settings))
    if getattr(shell, "kernel", None) is not None:
        threading.Thread(target=_warm_up, name="ensemble-nb-warm-up", daemon=True).start()


def _warm_up() -> None:
    """Import the live view's libraries in the background after ``%load_ext``.

    plotly's FigureWidget pulls in nbformat and jsonschema: 2-4 s on these machines. Doing it
    here keeps both the extension load and the first ``%%ensemble`` cell quick; a cell that
    comes sooner simply waits on the import lock, as it would have anyway.
    """
    try:
        import ensemble_nb.core.api
        import ensemble_nb.widgets.ensemble_view  # noqa: F401
    except Exception:  # a broken optional import surfaces, with its message, when a cell needs it
        pass


def unload(shell: Any) -> None:
    """Undo :func:`load` (for ``%unload_ext`` / ``%reload_ext``)."""
    shell.configurables[:] = [c for c in shell.configurables if not isinstance(c, Ensemble)]
    manager = shell.magics_manager
    for kind in ("line", "cell"):
        manager.magics[kind].pop("ensemble", None)
    manager.registry.pop(EnsembleMagics.__name__, None)
    from ensemble_nb.magics.execution import worker

    worker.shutdown()
