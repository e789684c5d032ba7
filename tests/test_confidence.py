"""Confidence maths: answer spans, agreement and semantic entropy, calibration, top-k vs full entropy."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from ensemble_nb.core.agreement import (
    cluster_answers,
    default_judge,
    matches,
    normalise,
    semantic_entropy,
    support,
)
from ensemble_nb.core.answer_span import answer_tokens, find_answer_span
from ensemble_nb.core.confidence import (
    DEFAULT_MAP,
    FEATURES,
    AnswerSignals,
    Calibration,
    LogisticMap,
    answer_signals,
    load_calibration,
    span_focus_confidence,
    stretch_confidence,
    token_confidence_bounds,
)
from ensemble_nb.core.entropy import topk_entropy
from ensemble_nb.core.tokens import Alternative, EntropyBounds, Token
from ensemble_nb.eval.calibrate import fit_logistic


def _tokens(pieces: list[tuple[str, float]]) -> list[Token]:
    return [Token(text, -h / 2, h, "full", (Alternative(text, -h / 2),)) for text, h in pieces]


BENIN = _tokens([("The", 0.05), (" capital", 0.1), (" of", 0.02), (" Benin", 0.05), (" is", 0.1),
                 (" Bak", 2.9), ("ura", 1.8), (".", 0.1)])


def test_answer_span_of_the_benin_example_is_the_guess() -> None:
    question = "What is the capital of Benin?"
    span = find_answer_span("The capital of Benin is Bakura.", question)
    assert span.text == "Bakura"
    assert answer_tokens(BENIN, question) == (5, 7)
    # Without the question the copula still points at it.
    assert find_answer_span("The capital of Benin is Bakura.").text == "Bakura"
    whole, focus = stretch_confidence(BENIN), span_focus_confidence(BENIN, question)
    assert focus == pytest.approx(math.exp(-(2.9 + 1.8 + 0.1) / 3))  # the answer and its end
    assert whole > 0.5 > focus  # averaging over the sentence hides the guess
    sig = answer_signals(BENIN, question)
    assert sig.answer_text == "Bakura" and sig.answer_entropy == pytest.approx(4.7)
    assert sig.max_prob == pytest.approx(math.exp(-4.7 / 2))


@pytest.mark.parametrize(("text", "question", "expected"), [
    ("The atomic number of krypton is 26.", "What is the atomic number of krypton?", "26"),
    ("Iron is a metal, but not always.", "Which element has the chemical symbol Fe?", "Iron"),
    (" Oxygen was discovered by Carl Wilhelm Scheele in 1771.", "Who discovered oxygen?", "Carl Wilhelm Scheele"),
    ("Neon is a gas, a noble gas.", "Is neon a gas, liquid or solid at room temperature?", "gas"),
    (" Carbon is a chemical element with the symbol C. It is", "What is the chemical symbol of carbon?", "C"),
    ("The chemical symbol of tungsten is Tungsten.", "What is the chemical symbol of tungsten?", "Tungsten"),
    ("The atomic number of fluorine is 9, as it is the 11st element.", "What is the atomic number of fluorine?", "9"),
])
def test_answer_span_heuristics(text: str, question: str, expected: str) -> None:
    assert find_answer_span(text, question).text == expected


def test_an_echo_of_the_question_is_no_answer() -> None:
    q = "Which element has the chemical symbol Rh?"
    echo = find_answer_span("The element with the chemical symbol Rh is Rh.", q)
    assert echo.echo and not find_answer_span("The element with the chemical symbol Rh is Rhodium.", q).echo
    toks = _tokens([("The", 0.1), (" element", 0.1), (" with", 0.1), (" the", 0.1), (" chemical", 0.1),
                    (" symbol", 0.1), (" Rh", 0.1), (" is", 0.1), (" Rh", 0.1), (".", 0.1)])
    assert answer_signals(toks, q).answer_text == ""  # so two echoes do not count as agreeing


def test_normalise_and_match() -> None:
    assert normalise("The Twenty-Six!") == "26"
    assert normalise("one hundred and eighteen") == "118"
    assert normalise("Jöns Jacob Berzelius.") == "jons jacob berzelius"
    assert matches("Scheele", ["Carl Wilhelm Scheele", "Scheele"])
    assert matches("a gas", ["gas"]) and not matches("gasoline", ["gas"])
    assert default_judge("Carl Wilhelm Scheele", "scheele") and not default_judge("26", "62")


def test_semantic_entropy_on_hand_made_clusters() -> None:
    answers = ["Paris", "paris.", "The city of Lyon", "Lyon", "Marseille"]
    clusters = cluster_answers(answers)
    assert [c.members for c in clusters] == [(0, 1), (2, 3), (4,)]
    p = [0.4, 0.4, 0.2]
    assert semantic_entropy(clusters) == pytest.approx(-sum(x * math.log(x) for x in p))
    # Weighted by confidence: a sure "Paris" outweighs two guesses.
    weighted = cluster_answers(answers, [0.9, 0.9, 0.1, 0.1, 0.0])
    assert weighted[0].members == (0, 1) and weighted[0].share == pytest.approx(0.9)
    assert support(weighted, 3) == pytest.approx(0.1)
    assert semantic_entropy(cluster_answers(["16", "sixteen"])) == 0.0
    # A pluggable judge: here one that only accepts exact strings.
    assert len(cluster_answers(["Paris", "paris"], judge=lambda a, b: a == b)) == 2


def test_topk_token_confidence_has_bounds() -> None:
    tok = Token("a", -0.5, 1.0, "topk", (), EntropyBounds(lower=0.8, tight_lower=0.9, upper=1.4, tail_mass=0.1))
    lo, hi = token_confidence_bounds(tok) or (0.0, 0.0)
    assert lo == pytest.approx(math.exp(-1.4)) and hi == pytest.approx(math.exp(-0.9))
    assert lo <= math.exp(-1.0) <= hi
    none = Token("a")
    assert token_confidence_bounds(none) is None
    assert stretch_confidence([none]) == 0.5  # unknown; agreement has to carry the answer


def test_no_logprobs_falls_back_to_agreement() -> None:
    agree = AnswerSignals("Paris", None, None, None, agreement=1.0, semantic_entropy=0.0)
    alone = AnswerSignals("Lyon", None, None, None, agreement=0.0, semantic_entropy=math.log(2))
    assert DEFAULT_MAP(agree.features()) > 0.5 > DEFAULT_MAP(alone.features())


def test_logistic_fit_recovers_a_known_map() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4000, 2))
    p = 1 / (1 + np.exp(-(0.5 + 2.0 * x[:, 0] - 1.0 * x[:, 1])))
    y = rng.random(4000) < p
    fmap = fit_logistic(x.tolist(), y.tolist(), l2=1e-3)
    assert fmap.intercept == pytest.approx(0.5, abs=0.15)
    assert fmap.coef[0] == pytest.approx(2.0, abs=0.2) and fmap.coef[1] == pytest.approx(-1.0, abs=0.15)
    const = fit_logistic([[1.0], [2.0]], [True, True])
    assert const.coef == (0.0,) and const([5.0]) > 0.5


def test_calibration_json_round_trip_and_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cal = Calibration({"smollm2": LogisticMap((-1.0, 0.0, 0.0, 2.0, 0.0, -1.0), 0.2, 40)})
    path = cal.save(tmp_path / "cal.json")
    loaded = load_calibration(path)
    sig = AnswerSignals("x", 0.3, 0.5, 0.8, 1.0, 0.0)
    assert loaded.score("smollm2", sig) == pytest.approx(cal.score("smollm2", sig))
    assert loaded.score("other", sig) == pytest.approx(DEFAULT_MAP(sig.features()))  # no map: the default
    assert json.loads(path.read_text())["features"] == list(FEATURES)
    monkeypatch.setenv("ENSEMBLE_NB_CALIBRATION", str(tmp_path / "missing.json"))
    assert load_calibration().maps == {}
    (tmp_path / "bad.json").write_text("{not json")
    assert load_calibration(tmp_path / "bad.json").maps == {}


@pytest.mark.local
def test_topk_estimate_tracks_full_entropy_on_real_logits() -> None:
    llama_cpp = pytest.importorskip("llama_cpp")
    from ensemble_nb.core.entropy import entropy_from_logits, log_softmax
    from ensemble_nb.core.providers.base import GenerationRequest
    from ensemble_nb.core.providers.embedded import get_model
    from ensemble_nb.core.providers.llama_local import LlamaLocalProvider
    from ensemble_nb.core.registry import resolve

    spec = resolve("smollm2")
    provider = LlamaLocalProvider(spec)
    loaded = get_model(spec, n_ctx=512, n_threads=None)
    provider.loaded = loaded
    ids = provider.prompt_tokens(GenerationRequest(prompt="What is the capital of Benin?"), loaded)
    full, est, lower, errs = [], [], [], []
    with loaded.lock:
        llama = loaded.llama
        llama.reset()
        llama.eval(ids)
        for _ in range(12):
            ptr = llama_cpp.llama_get_logits_ith(llama._ctx.ctx, -1)
            logits = np.ctypeslib.as_array(ptr, shape=(loaded.n_vocab,)).copy()
            h = float(entropy_from_logits(logits))
            lp = np.sort(log_softmax(logits))[::-1][:20]
            e, b = topk_entropy(lp, loaded.n_vocab)
            assert b.tight_lower - 1e-9 <= h <= b.upper + 1e-9  # the bounds hold on real distributions
            full.append(h)
            est.append(e)
            lower.append(b.lower)
            errs.append(abs(e - h))
            llama.eval([int(np.argmax(logits))])
    full_a = np.array(full)
    assert np.mean(errs) < np.mean(np.abs(np.array(lower) - full_a))  # better than ignoring the tail
    assert np.corrcoef(full_a, est)[0, 1] > 0.9
