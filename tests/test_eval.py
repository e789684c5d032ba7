"""The evaluation harness: metrics against sklearn / hand values, question files, an end-to-end run."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from ensemble_nb.core.providers.base import GenerationRequest
from ensemble_nb.core.providers.scripted import ScriptedProvider, Step, steps_from_text
from ensemble_nb.eval.harness import (
    ENSEMBLE,
    SIGNALS,
    evaluate,
    format_report,
    generate,
    is_correct,
    load_generated,
    load_questions,
    save_generated,
)
from ensemble_nb.eval.metrics import aurc, auroc, ece, prr, reliability, risk_coverage
from ensemble_nb.eval.periodic import CREDIT, DEFAULT_DATA
from ensemble_nb.eval.periodic import generate as periodic


def test_auroc_matches_sklearn_with_ties() -> None:
    metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(1)
    for _ in range(20):
        y = rng.random(60) < 0.4
        s = np.round(rng.random(60) + 0.5 * y, 1)  # rounding makes ties
        assert auroc(s.tolist(), y.tolist()) == pytest.approx(metrics.roc_auc_score(y, s))
    assert math.isnan(auroc([0.1, 0.2], [True, True]))


def test_prr_by_hand() -> None:
    scores, correct = [0.9, 0.8, 0.7, 0.6], [True, False, True, False]
    cov, risk = risk_coverage(scores, correct)
    assert cov.tolist() == [0.25, 0.5, 0.75, 1.0]
    assert risk.tolist() == pytest.approx([0.0, 0.5, 1 / 3, 0.5])
    assert aurc(scores, correct) == pytest.approx((0 + 0.5 + 1 / 3 + 0.5) / 4)
    oracle = (0 + 0 + 1 / 3 + 0.5) / 4
    assert prr(scores, correct) == pytest.approx((0.5 - aurc(scores, correct)) / (0.5 - oracle))
    assert prr([1, 1, 0, 0], [True, True, False, False]) == pytest.approx(1.0)
    assert prr([0, 0, 1, 1], [True, True, False, False]) < 0
    # All tied: no better than random.
    assert prr([0.5] * 4, correct) == pytest.approx(0.0)


def test_reliability_and_ece() -> None:
    probs, ok = [0.1, 0.1, 0.9, 0.9], [False, False, True, False]
    assert reliability(probs, ok, bins=2) == [(0.1, 0.0, 2), (0.9, 0.5, 2)]
    assert ece(probs, ok, bins=2) == pytest.approx((0.1 * 2 + 0.4 * 2) / 4)


def test_question_files(tmp_path: Path) -> None:
    (tmp_path / "q.csv").write_text("question,answers\nWho?,Scheele|Carl Wilhelm Scheele\n")
    (tmp_path / "q.jsonl").write_text(json.dumps({"id": "x", "question": "What?", "answers": ["26"]}) + "\n")
    assert load_questions(tmp_path / "q.csv")[0].answers == ("Scheele", "Carl Wilhelm Scheele")
    assert load_questions(tmp_path / "q.jsonl")[0].id == "x"
    (tmp_path / "bad.jsonl").write_text(json.dumps({"question": "What?"}) + "\n")
    with pytest.raises(ValueError, match="row 1"):
        load_questions(tmp_path / "bad.jsonl")


def test_matching_is_in_the_answer_span() -> None:
    q = "What is the atomic number of iron?"
    assert is_correct("The atomic number of iron is 26.", q, ["26"])
    assert is_correct("The atomic number of iron is twenty-six.", q, ["26"])
    # 26 appears, but not as the answer.
    assert not is_correct("The atomic number of iron is 8, not 26 as some say.", q, ["26"])


@pytest.mark.skipif(not DEFAULT_DATA.is_file(), reason="periodic table data not on this machine")
def test_periodic_generator() -> None:
    qs = periodic(40, seed=3)
    assert len(qs) == 40 and {q["kind"] for q in qs} == {"symbol", "name", "number", "phase", "discoverer"}
    assert all(q["question"].endswith("?") and q["answers"] for q in qs)
    assert periodic(40, seed=3) == qs and "CC BY-SA" in CREDIT


FACTS = {"iron": "26", "gold": "79", "neon": "10", "zinc": "30", "tin": "50", "lead": "82"}


def _member(name: str, good: bool) -> ScriptedProvider:
    """A member that knows half the facts (surely) and guesses the rest (unsurely)."""

    def script(request: GenerationRequest) -> list[Step]:
        element = request.prompt.split()[-1].rstrip("?")
        known = (sorted(FACTS).index(element) % 2 == 0) == good and element != "lead"  # nobody knows lead
        head = steps_from_text(f"The atomic number of {element} is", 0.95)
        if request.prefix:  # a retry from the answer slot
            return [Step(" " + FACTS[element] + ".", {" " + FACTS[element] + ".": 0.9})]
        if known:
            return [*head, Step(" " + FACTS[element] + ".", {" " + FACTS[element] + ".": 0.95})]
        return [*head, Step(" 7.", {" 7.": 0.3, " 8.": 0.3, " 9.": 0.2})]

    return ScriptedProvider(name, script)


async def test_evaluate_end_to_end_with_scripted_members(tmp_path: Path) -> None:
    path = tmp_path / "q.jsonl"
    path.write_text("".join(json.dumps({"question": f"What is the atomic number of {e}?", "answers": [n]}) + "\n"
                            for e, n in FACTS.items()) * 2)
    items = load_questions(path)
    providers = {"a": _member("a", True), "b": _member("b", False)}
    generated = await generate(items, ["a", "b"], max_tokens=12, providers=providers)
    save_generated(generated, tmp_path / "gen.pkl")
    reloaded = load_generated(tmp_path / "gen.pkl", providers)
    assert [g.run.result.models["a"].text for g in reloaded] == [g.run.result.models["a"].text for g in generated]
    report = await evaluate(reloaded, folds=2, retry_below=0.6)
    assert report.n_test == 12 and report.n_calibration == 6 and set(report.auroc) == {"a", "b", ENSEMBLE}
    assert report.accuracy[ENSEMBLE] >= max(report.accuracy["a"], report.accuracy["b"])
    assert report.auroc["a"]["answer_entropy"] > 0.9
    assert report.retry["retried"] > 0 and report.retry["accuracy_after"] > report.retry["accuracy_before"]
    split = await evaluate(load_generated(tmp_path / "gen.pkl", providers), folds=1, retry_below=None)
    assert split.n_test == 6 and split.retry["retried"] == 0
    text = format_report(report)
    assert "AUROC" in text and all(s in text for s in SIGNALS)
    pytest.importorskip("matplotlib")
    from ensemble_nb.eval.plot import save_plot

    assert save_plot(report, tmp_path / "p.png").stat().st_size > 1000
