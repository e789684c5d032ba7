"""ensemble_nb.core must import no notebook or plotting library (checked in a fresh process)."""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys

import ensemble_nb.core

FORBIDDEN = ("IPython", "ipywidgets", "traitlets", "plotly", "anywidget", "ipykernel")


def test_core_imports_no_notebook_library() -> None:
    modules = [m.name for m in pkgutil.walk_packages(ensemble_nb.core.__path__, "ensemble_nb.core.")]
    assert "ensemble_nb.core.run" in modules
    code = (
        "import importlib, json, sys\n"
        f"for name in {modules!r}:\n"
        "    try:\n"
        "        importlib.import_module(name)\n"
        "    except ImportError as exc:\n"  # an optional extra that is absent
        "        if 'llama_cpp' not in str(exc):\n"
        "            raise\n"
        f"print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in {FORBIDDEN!r})))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []
