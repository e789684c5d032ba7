"""Retrieval questions with known answers, generated from the periodic-table facts.

Data: the 119 elements of Bowserinator/Periodic-Table-JSON (CC BY-SA 4.0), each with a
one-paragraph Wikipedia summary. The corpus is the summaries; each question is made from one
element's facts, and its answer is that element's summary. A question whose facts fit more
than one element is left out, so that every question has exactly one right passage and
recall@k means what it says.
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ensemble_nb.core.errors import UserError

CREDIT = ("Periodic-table data: Bowserinator/Periodic-Table-JSON (summaries from Wikipedia), "
          "CC BY-SA 4.0")
DATA_ENV = "ENSEMBLE_NB_PERIODIC_JSON"
_RELATIVE = Path("shared/data/periodic_table/PeriodicTableJSON.json")
FAMILIES = ("symbol", "number", "discoverer", "named_after", "indirect")
_NAMED_AFTER = re.compile(r"named (?:after|for|in honou?r of) ([^.;,()–]+)")

_TRAILING = frozenset({"in", "of", "the", "and", "for", "at", "a", "an"})

Element = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Question:
    """A question, the index of the one element (and passage) that answers it, and its kind."""

    text: str
    answer: int
    family: str


def find_data() -> Path | None:
    """The JSON file: ``$ENSEMBLE_NB_PERIODIC_JSON``, else ``shared/data/...`` in a parent folder
    of the working directory or of this package (where the project's checkout keeps it)."""
    if env := os.environ.get(DATA_ENV):
        return Path(env)
    for base in (Path.cwd(), Path(__file__).resolve()):
        for parent in (base, *base.parents):
            if (parent / _RELATIVE).is_file():
                return parent / _RELATIVE
    return None


def load_elements(path: str | Path | None = None) -> list[Element]:
    found = Path(path) if path is not None else find_data()
    if found is None or not found.is_file():
        raise UserError(f"periodic-table data not found: set {DATA_ENV} to PeriodicTableJSON.json")
    try:
        data = json.loads(found.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot read {found} ({exc}): pass the PeriodicTableJSON.json file") from exc
    elements: list[Element] = data["elements"] if isinstance(data, dict) else data
    return elements


def summaries(elements: Sequence[Element]) -> list[str]:
    """The corpus: one passage per element, in the elements' order."""
    return [str(e["summary"]) for e in elements]


def questions(elements: Sequence[Element], families: Sequence[str] = FAMILIES) -> list[Question]:
    """Every unambiguous question of the asked families, family by family."""
    makers = {"symbol": _symbol, "number": _number, "discoverer": _discoverer,
              "named_after": _named_after, "indirect": _indirect}
    out: list[Question] = []
    for family in families:
        candidates = [(i, text) for i, e in enumerate(elements) if (text := makers[family](e, elements))]
        counts = Counter(text.lower() for _, text in candidates)
        out.extend(Question(text, i, family) for i, text in candidates if counts[text.lower()] == 1)
    return out


def _symbol(e: Element, _: Sequence[Element]) -> str | None:
    return f"Which element has the symbol {e['symbol']}?" if e.get("symbol") else None


def _number(e: Element, _: Sequence[Element]) -> str | None:
    return f"Which element has atomic number {e['number']}?" if e.get("number") else None


def _discoverer(e: Element, _: Sequence[Element]) -> str | None:
    return f"Who discovered {str(e['name']).lower()}?" if e.get("discovered_by") else None


def _named_after(e: Element, elements: Sequence[Element]) -> str | None:
    """From the summary's own "named after …"; skipped when another summary says the same
    (Neptunium's mentions Uranus, after which uranium is named)."""
    summary = str(e.get("summary", ""))
    m = _NAMED_AFTER.search(summary)
    if m is None:
        return None
    before = summary[max(0, m.start() - 40):m.start()].lower()
    if any(str(o["name"]).lower() in before for o in elements if o is not e):
        return None  # the clause is about the element just named, not this one
    words = m.group(1).split()[:8]
    while words and words[-1].lower() in _TRAILING:
        words.pop()
    honoree = " ".join(words)
    if sum(honoree.lower() in str(o.get("summary", "")).lower() for o in elements) != 1:
        return None
    return f"Which element is named after {honoree}?"


def _indirect(e: Element, _: Sequence[Element]) -> str | None:
    """Facts that are mostly not in the summary's words: the discoverer and the category.
    These test what a paraphrase-aware ranker adds over word overlap."""
    who, category = str(e.get("discovered_by") or ""), str(e.get("category") or "")
    if not _is_person_or_lab(who) or not category or category.startswith("unknown"):
        return None
    return f"Which {category} was discovered by {who}?"


def _is_person_or_lab(who: str) -> bool:
    """Leaves out places and eras ("Ancient Egypt", "unknown, before 2000 BCE")."""
    return (" " in who and who[0].isupper() and not any(c.isdigit() for c in who)
            and not who.startswith(("Ancient", "Bronze", "Middle")))
