"""The ``llm`` synthesis: one member rewrites the answers, shown with their confidences.

Mixture-of-Agents style (Wang et al., 2024): the aggregator sees every member's answer and
how sure each was, and writes one answer. The writer is the most confident member unless
one is named; it is built through the run's provider factory, so it is whatever the run
uses (a scripted provider in tests, a local model, an API). The rewrite is scored like any
answer, with its agreement measured against the members' meaning clusters.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from ensemble_nb.core.agreement import Judge, cluster_answers, peer_agreement, semantic_entropy
from ensemble_nb.core.confidence import Calibration, answer_signals, load_calibration
from ensemble_nb.core.events import Synthesis
from ensemble_nb.core.providers.base import generate
from ensemble_nb.core.result import ModelResult
from ensemble_nb.core.synthesis import MemberAnswer, score_members, spans_of, vote

if TYPE_CHECKING:
    from ensemble_nb.core.run import EnsembleRun

INSTRUCTION = ("Several assistants answered the question below; each answer is shown with how "
               "confident its assistant was (0 to 1). Write the single best answer in one short "
               "sentence. Prefer answers that are confident and that agree with each other.")


def synthesis_prompt(question: str, scored: list[MemberAnswer]) -> str:
    lines = [f"- (confidence {m.confidence:.2f}) {m.result.text.strip()}" for m in scored]
    return f"{INSTRUCTION}\n\nQuestion: {question}\n\nAnswers:\n" + "\n".join(lines) + "\n\nBest answer:"


async def llm_synthesis(run: EnsembleRun, results: list[ModelResult], *, writer: str | None = None,
                        calibration: Calibration | None = None, judge: Judge | None = None) -> Synthesis:
    cal = calibration if calibration is not None else load_calibration()
    scored = score_members(results, run.prompt, cal, judge)
    fallback = vote(results, run.prompt, cal, judge)
    if not scored:
        return replace(fallback, strategy="llm")
    writer = writer or scored[0].model
    if writer not in run.specs:
        raise ValueError(f"the writer '{writer}' is not a member of this run")
    request = run.request(prompt=synthesis_prompt(run.prompt, scored), context=())
    try:
        tokens, _ = await generate(run.provider_factory(run.specs[writer]), request)
    except Exception as exc:  # a failing writer must not lose the members' answers
        return replace(fallback, strategy="llm", notes=(*fallback.notes, f"writer {writer} failed: {exc}"))
    text = "".join(t.text for t in tokens)
    if not text.strip():
        return replace(fallback, strategy="llm", notes=(*fallback.notes, f"writer {writer} wrote nothing"))
    own = answer_signals(tokens, run.prompt)
    # Agreement of the rewrite: the share of the members whose answer means the same.
    keys = [own.answer_text, *(m.signals.answer_text for m in scored)]
    clusters = cluster_answers(keys, [0.0, *(m.confidence for m in scored)], judge)
    signals = replace(own, agreement=peer_agreement(clusters, 0, len(keys)),
                      semantic_entropy=semantic_entropy(clusters))
    conf = cal.score(writer, signals)
    sources = ", ".join(f"{m.model} {m.confidence:.2f}" for m in scored)
    return Synthesis(text=text, spans=spans_of(writer, tokens, run.prompt), strategy="llm", confidence=conf,
                     chosen=writer, notes=(f"rewritten by {writer} from {sources}",
                                           f"rewrite's answer {signals.answer_text!r} has "
                                           f"{signals.agreement:.0%} of the members behind it"))
