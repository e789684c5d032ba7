"""Every example notebook executes cleanly, top to bottom, on the embedded models (nbclient).

The kernel is "python3" from this venv's ipykernel, started with cwd = examples/ (where a reader
opens them). Headless clients make ``%%ensemble`` block until its run ends, so each cell's
output is complete when the next cell runs.
"""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "examples").glob("*.ipynb"))

pytestmark = pytest.mark.local  # they run the embedded llama.cpp models


def test_the_examples_are_there_and_say_what_they_teach() -> None:
    import nbformat

    names = [p.name for p in NOTEBOOKS]
    for expected in ("quickstart.ipynb", "02_token_distributions.ipynb", "03_teaching_entropy.ipynb",
                     "04_orchestrator_policy.ipynb", "05_retrieval.ipynb"):
        assert expected in names
    for path in NOTEBOOKS:
        first = nbformat.read(path, as_version=4).cells[0]  # type: ignore[no-untyped-call]
        assert first.cell_type == "markdown" and "What this teaches" in first.source, path.name


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_executes_cleanly(path: Path) -> None:
    pytest.importorskip("llama_cpp")
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)  # type: ignore[no-untyped-call]
    client = NotebookClient(nb, timeout=600, kernel_name="python3",
                            resources={"metadata": {"path": str(ROOT / "examples")}})
    client.execute()
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
              if o.get("output_type") == "error"]
    assert not errors, f"{path.name}: {errors[0].get('ename')}: {errors[0].get('evalue')}"
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.get("execution_count") for c in code), f"{path.name}: a cell did not run"
