"""The must-show run: the embedded models on periodic-table questions, one command.

    .venv/bin/python benchmarks/eval_periodic.py            # 120 questions, ~10 min on 2 cores
    .venv/bin/python benchmarks/eval_periodic.py --n 40     # a quicker look

Generates the question set (Bowserinator/Periodic-Table-JSON, CC BY-SA 4.0), runs smollm2 and
gemma3 on every question, fits the calibration on half and reports on the other half, with
the selective retry of low-confidence answer spans. Writes the question set, the report, the
figure and the fitted calibration into --outdir.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ensemble_nb.eval.__main__ import main as eval_main
from ensemble_nb.eval.periodic import main as periodic_main

# One neutral worked example: the base model (gemma3) otherwise goes on describing the element.
SYSTEM = "Answer in one short sentence.\n\nQ: What is the capital of France?\nA: The capital of France is Paris."


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=120)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-tokens", type=int, default=20)
    p.add_argument("--retry-below", type=float, default=0.5)
    p.add_argument("--strategy", default="vote")
    p.add_argument("--outdir", default="examples/data")
    p.add_argument("--cache", default=None, help="pickle of generated runs: reused if present, else written")
    args = p.parse_args()
    out = Path(args.outdir)
    questions = out / f"periodic_questions_{args.n}.jsonl"
    periodic_main(["--n", str(args.n), "--seed", str(args.seed), "--out", str(questions)])
    argv = [str(questions), "--models", "smollm2", "gemma3", "--max-tokens", str(args.max_tokens),
            "--system", SYSTEM, "--strategy", args.strategy, "--retry-below", str(args.retry_below),
            "--seed", str(args.seed), "--out", str(out / "eval_periodic_report.json"),
            "--plot", str(out / "eval_periodic.png"),
            "--save-calibration", str(out / "calibration_smollm2_gemma3.json")]
    if args.cache:
        argv += ["--load-generated" if Path(args.cache).is_file() else "--save-generated", args.cache]
    return eval_main(argv)


if __name__ == "__main__":
    sys.exit(main())
