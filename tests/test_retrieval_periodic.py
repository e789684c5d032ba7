"""Questions from the periodic-table facts: one right passage each, ambiguous ones left out."""

from __future__ import annotations

from pathlib import Path

import pytest

from ensemble_nb.core.errors import UserError
from ensemble_nb.core.retrieval import periodic
from ensemble_nb.core.retrieval.index import IndexCache
from ensemble_nb.core.retrieval.retriever import EnsembleRetriever

ELEMENTS = [
    {"name": "Uranium", "symbol": "U", "number": 92, "category": "actinide",
     "discovered_by": "Martin Heinrich Klaproth",
     "summary": "Uranium is a chemical element with symbol U and atomic number 92. "
                "It is named after the planet Uranus."},
    {"name": "Neptunium", "symbol": "Np", "number": 93, "category": "actinide", "discovered_by": "Edwin McMillan",
     "summary": "Neptunium has symbol Np. Its position just after uranium, named after the planet Uranus, led to it "
                "being named after Neptune."},
    {"name": "Gold", "symbol": "Au", "number": 79, "category": "transition metal", "discovered_by": "Middle East",
     "summary": "Gold is a chemical element with symbol Au and atomic number 79."},
    {"name": "Silver", "symbol": "Ag", "number": 47, "category": "transition metal", "discovered_by": None,
     "summary": "Silver is a chemical element with symbol Ag and atomic number 47."},
]


def test_each_family() -> None:
    qs = periodic.questions(ELEMENTS)
    by_family: dict[str, list[tuple[str, int]]] = {}
    for q in qs:
        by_family.setdefault(q.family, []).append((q.text, q.answer))
    assert by_family["symbol"][0] == ("Which element has the symbol U?", 0)
    assert by_family["number"][2] == ("Which element has atomic number 79?", 2)
    assert ("Who discovered gold?", 2) in by_family["discoverer"]
    assert all(a != 3 for _, a in by_family["discoverer"])  # silver has no discoverer on record
    # Both summaries say "named after the planet Uranus": the question would have two answers.
    assert "named_after" not in by_family
    # "Middle East" is a place, not a discoverer; only the actinides' discoverers make questions.
    assert by_family["indirect"] == [("Which actinide was discovered by Martin Heinrich Klaproth?", 0),
                                     ("Which actinide was discovered by Edwin McMillan?", 1)]


def test_named_after_skips_a_clause_about_another_element() -> None:
    # Here "the planet Uranus" is in one summary only, yet Neptunium's clause is about uranium,
    # named just before it; the pattern takes the first "named after" only.
    uranium = dict(ELEMENTS[0], summary="Uranium is a chemical element with symbol U.")
    assert periodic.questions([uranium, ELEMENTS[1]], ["named_after"]) == []
    curium = {"name": "Curium", "summary": "Curium is named after Marie and Pierre Curie, who studied radioactivity."}
    assert [q.text for q in periodic.questions([curium, ELEMENTS[2]], ["named_after"])] == [
        "Which element is named after Marie and Pierre Curie?"]


def test_ambiguous_questions_are_left_out() -> None:
    twins = [dict(ELEMENTS[2]), dict(ELEMENTS[2], name="Gold2", number=80)]
    assert [q.text for q in periodic.questions(twins, ["symbol"])] == []


def test_missing_data_is_a_user_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(UserError, match="not found"):
        periodic.load_elements(tmp_path / "nope.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    with pytest.raises(UserError, match="cannot read"):
        periodic.load_elements(bad)
    monkeypatch.setenv(periodic.DATA_ENV, str(bad))
    assert periodic.find_data() == bad


def test_the_real_table_if_present(tmp_path: Path) -> None:
    path = periodic.find_data()
    if path is None or not path.is_file():
        pytest.skip("shared/data/periodic_table is not beside this checkout")
    elements = periodic.load_elements(path)
    assert len(elements) == 119
    qs = periodic.questions(elements)
    assert len({q.text for q in qs}) == len(qs) > 400
    retriever = EnsembleRetriever(periodic.summaries(elements), top_k=5, cache=IndexCache(tmp_path))
    symbol_qs = [q for q in qs if q.family == "symbol"]
    found = sum(q.answer in {int(p.source.split()[1]) for p in retriever.search(q.text)} for q in symbol_qs)
    assert found / len(symbol_qs) > 0.95  # benchmarks/retrieval_recall.py measured 1.0
