"""python -m ensemble_nb.eval QUESTIONS [--models smollm2 gemma3] [--plot out.png] ..."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

from ensemble_nb.core.confidence import Calibration, default_calibration_path
from ensemble_nb.eval.harness import (
    Report,
    evaluate,
    format_report,
    generate,
    load_generated,
    load_questions,
    save_generated,
)

DEFAULT_SYSTEM = "Answer in one short sentence."


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m ensemble_nb.eval",
                                description="accuracy and AUROC/PRR of each confidence signal on a question set")
    p.add_argument("questions", help="CSV (question, answers with | between) or JSONL (question, answers list)")
    p.add_argument("--models", nargs="+", default=["smollm2", "gemma3"])
    p.add_argument("--limit", type=int, default=None, help="use the first N questions")
    p.add_argument("--max-tokens", type=int, default=20)
    p.add_argument("--system", default=DEFAULT_SYSTEM)
    p.add_argument("--strategy", default="vote", choices=["best_confidence", "vote", "span_merge", "llm"])
    p.add_argument("--folds", type=int, default=2, help="cross-fitting folds (1: one split, see --calib-fraction)")
    p.add_argument("--calib-fraction", type=float, default=0.5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--l2", type=float, default=1.0)
    p.add_argument("--retry-below", type=float, default=0.5, help="answer-span confidence to retry below (<0: never)")
    p.add_argument("--save-generated", default=None, help="cache the generated runs here (pickle)")
    p.add_argument("--load-generated", default=None, help="analyse cached runs instead of generating")
    p.add_argument("--out", default=None, help="write the full report (JSON) here")
    p.add_argument("--plot", default=None, help="save the reliability / risk-coverage figure (PNG) here")
    p.add_argument("--save-calibration", nargs="?", const=str(default_calibration_path()), default=None,
                   help=f"save the fitted calibration (default {default_calibration_path()})")
    args = p.parse_args(argv)

    items = load_questions(args.questions)[: args.limit]

    def progress(i: int, g: object) -> None:
        print(f"\r{i + 1}/{len(items)}", end="", file=sys.stderr, flush=True)

    async def go() -> Report:
        if args.load_generated:
            generated = load_generated(args.load_generated)[: args.limit]
        else:
            generated = await generate(items, args.models, max_tokens=args.max_tokens,
                                       system=args.system or None, progress=progress)
            print(file=sys.stderr)
            if args.save_generated:
                save_generated(generated, args.save_generated)
        return await evaluate(generated, strategy=args.strategy, folds=args.folds,
                              calib_fraction=args.calib_fraction,
                              seed=args.seed, l2=args.l2,
                              retry_below=None if args.retry_below < 0 else args.retry_below)

    report = asyncio.run(go())
    print(format_report(report))
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(report.to_json(), indent=1, default=str))
    if args.plot:
        from ensemble_nb.eval.plot import save_plot

        print("plot:", save_plot(report, args.plot, f"{args.questions}: {', '.join(args.models)}"))
    if args.save_calibration:
        print("calibration:", Calibration.from_json(report.calibration).save(args.save_calibration))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
