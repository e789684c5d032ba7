"""What ``%load_ext ensemble_nb`` costs on top of a bare IPython shell.

Each sample is a fresh interpreter (so nothing is cached in ``sys.modules``); baseline and
extension samples are interleaved, alternating which goes first, so drift in machine load
hits both alike. Two measures:

* in-process: the time of ``import ensemble_nb; ensemble_nb.load_ipython_extension(shell)``
  itself, after the shell exists;
* whole process: median wall time of an interpreter that also loads the extension minus that
  of one that only builds the shell (includes interpreter teardown of whatever was imported).

Heavy dependencies must load only when a run starts; the script lists any that the load
pulled in, and times the first ``%%ensemble`` cell (where they do load) for reference.

    python benchmarks/import_time.py [--reps 9] [--check]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from typing import TypedDict

GOAL = 0.3  # seconds
HEAVY = ("numpy", "httpx", "pydantic", "ipywidgets", "anywidget", "plotly", "llama_cpp", "ensemble_nb.core")

CHILD = """\
import json, sys, time
t0 = time.perf_counter()
from IPython.core.interactiveshell import InteractiveShell
from traitlets.config import Config
config = Config()
config.HistoryManager.hist_file = ":memory:"
shell = InteractiveShell.instance(config=config)
t1 = time.perf_counter()
mode = sys.argv[1]
if mode != "baseline":
    import ensemble_nb
    ensemble_nb.load_ipython_extension(shell)
t2 = time.perf_counter()
heavy = sorted(m for m in {heavy!r} if m in sys.modules)
t3 = t2
if mode == "first_run":
    shell.run_cell("%%ensemble --models scripted:sure --quiet --block --max-tokens 1\\nq")
    t3 = time.perf_counter()
print(json.dumps({{"shell": t1 - t0, "load": t2 - t1, "first_run": t3 - t2, "heavy": heavy}}))
"""


class Sample(TypedDict):
    shell: float
    load: float
    first_run: float
    wall: float
    heavy: list[str]


def sample(mode: str, env: dict[str, str]) -> Sample:
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", CHILD.format(heavy=HEAVY), mode], capture_output=True,
                         text=True, env=env, check=True)
    wall = time.perf_counter() - start
    data = json.loads(out.stdout.strip().splitlines()[-1])
    return Sample(shell=data["shell"], load=data["load"], first_run=data["first_run"], wall=wall,
                  heavy=data["heavy"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=9, help="samples of each kind (default 9)")
    parser.add_argument("--check", action="store_true", help=f"exit 1 if the load costs more than {GOAL} s")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as ipython_dir:
        # A private IPYTHONDIR: no user config or startup file can add to either side.
        env = {**os.environ, "IPYTHONDIR": ipython_dir}
        sample("baseline", env)  # warm the OS file cache; not counted
        base: list[Sample] = []
        ext: list[Sample] = []
        for i in range(args.reps):
            order = [("baseline", base), ("extension", ext)]
            for mode, into in order if i % 2 == 0 else order[::-1]:
                into.append(sample(mode, env))
        first = [sample("first_run", env) for _ in range(max(3, args.reps // 3))]

    def med(rows: list[Sample], key: str) -> float:
        return statistics.median(float(str(r.get(key))) for r in rows)

    load = med(ext, "load")
    wall_delta = med(ext, "wall") - med(base, "wall")
    heavy = sorted({m for r in ext for m in r["heavy"]})
    spread = (min(r["load"] for r in ext), max(r["load"] for r in ext))
    print(f"python {sys.version.split()[0]}, {args.reps} interleaved samples each, medians:")
    print(f"  bare IPython shell, whole process   {med(base, 'wall'):.3f} s  (shell {med(base, 'shell'):.3f} s)")
    print(f"  with %load_ext, whole process       {med(ext, 'wall'):.3f} s")
    print(f"  extension cost, in-process          {load * 1000:.1f} ms  (min {spread[0] * 1000:.1f}, "
          f"max {spread[1] * 1000:.1f})")
    print(f"  extension cost, whole-process delta {wall_delta * 1000:+.1f} ms")
    print(f"  heavy modules loaded by %load_ext   {', '.join(heavy) or 'none'}")
    print(f"  first %%ensemble cell (lazy imports + a 1-token scripted run) {med(first, 'first_run'):.3f} s")
    cost = max(load, wall_delta)
    verdict = "met" if cost <= GOAL and not heavy else "NOT met"
    print(f"goal: %load_ext costs <= {GOAL} s and loads no heavy module: {verdict} ({cost * 1000:.1f} ms)")
    return 1 if args.check and verdict != "met" else 0


if __name__ == "__main__":
    raise SystemExit(main())
