"""A question set from the periodic table: symbols, names, atomic numbers, phases, discoverers.

Built from PeriodicTableJSON.json of Bowserinator/Periodic-Table-JSON (CC BY-SA 4.0: credit
its authors wherever the questions are shown). The harness does not depend on this module;
it reads any question file with ``question`` and ``answers``.

    python -m ensemble_nb.eval.periodic --n 120 --out examples/data/periodic_questions.jsonl
"""

from __future__ import annotations

import argparse
import json
import random
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

DEFAULT_DATA = Path("/work/shared/data/periodic_table/PeriodicTableJSON.json")
CREDIT = "Periodic table data: Bowserinator/Periodic-Table-JSON, CC BY-SA 4.0"
_NUMBER_WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
                 "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen",
                 "nineteen", "twenty"]

Element = dict[str, Any]
Question = dict[str, Any]


def load_elements(path: Path | str = DEFAULT_DATA) -> list[Element]:
    data = json.loads(Path(path).read_text())
    return [e for e in data["elements"] if e.get("number", 999) <= 118]


def _symbol(e: Element) -> Question:
    return {"question": f"What is the chemical symbol of {e['name'].lower()}?", "answers": [e["symbol"]]}


def _name(e: Element) -> Question:
    return {"question": f"Which element has the chemical symbol {e['symbol']}?", "answers": [e["name"]]}


def _number(e: Element) -> Question:
    n = int(e["number"])
    answers = [str(n)] + ([_NUMBER_WORDS[n]] if n < len(_NUMBER_WORDS) else [])
    return {"question": f"What is the atomic number of {e['name'].lower()}?", "answers": answers}


def _phase(e: Element) -> Question:
    return {"question": f"Is {e['name'].lower()} a gas, liquid or solid at room temperature?",
            "answers": [str(e["phase"]).lower()]}


def _discoverer(e: Element) -> Question | None:
    who = str(e.get("discovered_by") or "")
    # Skip "Ancient Egypt", "Middle East" and teams: one person's name is checkable.
    if not who or not re.fullmatch(r"[A-Z][\w.'’-]+(?: [A-Z]?[\w.'’-]+){1,3}", who) or "Ancient" in who:
        return None
    surname = who.split()[-1]
    return {"question": f"Who discovered {e['name'].lower()}?", "answers": [who, surname]}


KINDS: dict[str, Callable[[Element], Question | None]] = {
    "symbol": _symbol, "name": _name, "number": _number, "phase": _phase, "discoverer": _discoverer,
}


def generate(n: int = 120, *, seed: int = 0, kinds: tuple[str, ...] = tuple(KINDS), max_number: int = 56,
             path: Path | str = DEFAULT_DATA) -> list[Question]:
    """``n`` questions, the kinds in turn, on elements up to ``max_number`` (well-known ones:
    beyond barium even the answers of large models mostly guess)."""
    rng = random.Random(seed)
    elements = [e for e in load_elements(path) if int(e["number"]) <= max_number]
    pools: dict[str, Iterator[Question]] = {}
    for kind in kinds:
        qs = [q for e in elements if (q := KINDS[kind](e)) is not None]
        rng.shuffle(qs)
        pools[kind] = iter(qs)
    out: list[Question] = []
    while len(out) < n and pools:
        for kind in list(pools):
            q = next(pools[kind], None)
            if q is None:
                del pools[kind]
                continue
            out.append({"id": f"{kind}-{len(out)}", "kind": kind, **q})
            if len(out) >= n:
                break
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=120)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-number", type=int, default=56)
    parser.add_argument("--kinds", default=",".join(KINDS))
    parser.add_argument("--data", default=str(DEFAULT_DATA))
    parser.add_argument("--out", default="-")
    args = parser.parse_args(argv)
    qs = generate(args.n, seed=args.seed, kinds=tuple(args.kinds.split(",")), max_number=args.max_number,
                  path=args.data)
    text = "".join(json.dumps(q) + "\n" for q in qs)
    if args.out == "-":
        print(text, end="")
    else:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text)
        print(f"{len(qs)} questions -> {args.out} ({CREDIT})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
