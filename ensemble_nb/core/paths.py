"""Where ensemble_nb keeps files between sessions: one rule for every cache.

``$ENSEMBLE_NB_CACHE`` when set (and not empty), else ``~/.cache/ensemble_nb``. The latency
samples, the retrieval indexes and the confidence calibration live under :func:`cache_root`;
the assembled Gemma weights go to ``$ENSEMBLE_NB_CACHE`` or plain ``~/.cache`` (see
:func:`ensemble_nb.core.providers.embedded.cache_dir`), where the model's package puts them.
"""

from __future__ import annotations

import os
from pathlib import Path

CACHE_ENV = "ENSEMBLE_NB_CACHE"


def cache_override() -> Path | None:
    """``$ENSEMBLE_NB_CACHE`` as a path (``~`` expanded), or ``None`` when unset or empty."""
    value = os.environ.get(CACHE_ENV)
    return Path(value).expanduser() if value else None


def cache_root() -> Path:
    """``$ENSEMBLE_NB_CACHE``, else ``~/.cache/ensemble_nb``."""
    override = cache_override()
    return override if override is not None else Path.home() / ".cache" / "ensemble_nb"
