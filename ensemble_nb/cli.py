"""``python -m ensemble_nb "question"``: run the ensemble in a terminal."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import NoReturn

from ensemble_nb.core.api import prepare
from ensemble_nb.core.errors import UserError
from ensemble_nb.core.events import Event
from ensemble_nb.core.registry import DEFAULT_MODELS
from ensemble_nb.textview import TextRenderer


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, no usage dump
        self.exit(2, f"error: {message} (see python -m ensemble_nb --help)\n")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="python -m ensemble_nb", description="Run an LLM ensemble on one prompt.")
    p.add_argument("prompt", nargs="*", help="the question (several words are joined)")
    p.add_argument("--models", default=" ".join(DEFAULT_MODELS),
                   help=f"space- or comma-separated model ids (default: {' '.join(DEFAULT_MODELS)})")
    p.add_argument("--max-tokens", type=int, default=48)
    p.add_argument("--temperature", type=float, default=0.0)
    p.add_argument("--top-k", type=int, default=5, help="alternatives kept per token")
    p.add_argument("--timeout", type=float, default=120.0, help="seconds per model")
    p.add_argument("--system", default=None, help="a system prompt")
    p.add_argument("--effort", default=None, metavar="LEVEL",
                   help="reasoning effort: none, minimal, low, medium, high or a number of thinking tokens")
    p.add_argument("--synthesis", default="best_confidence",
                   help="how answers merge: best_confidence, vote, span_merge or llm")
    p.add_argument("--retry-below", type=float, default=None, metavar="C",
                   help="retry the synthesis spans whose confidence is below C (0 to 1); keep better ones")
    p.add_argument("--json", action="store_true", help="print every event as a JSON line instead")
    p.add_argument("--quiet", action="store_true", help="print only the summary, not the token stream")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    prompt = " ".join(args.prompt)
    try:
        run = prepare(prompt, models=args.models, max_tokens=args.max_tokens, temperature=args.temperature,
                      top_k=args.top_k, timeout=args.timeout, system=args.system, reasoning_effort=args.effort,
                      synthesis=args.synthesis, retry_below=args.retry_below)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    listener = _json_line if args.json else TextRenderer(stream_tokens=not args.quiet)
    run.add_listener(listener)
    try:
        result = asyncio.run(run.wait())
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130
    return 0 if result.status in ("ok", "partial") else 1


def _json_line(event: Event) -> None:
    print(json.dumps(event.to_dict(), default=str), flush=True)
