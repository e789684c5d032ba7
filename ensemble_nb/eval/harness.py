"""Run a question set through each member and the ensemble, and measure the confidence signals.

Steps: generate every member's answer once (one ensemble run per question); split the
questions in two; fit the per-model calibration on the first part; on the second, score
every member, let the ensemble synthesize with the fitted calibration, and report accuracy and
AUROC / PRR of each signal; finally retry the ensemble's answer span where its confidence is
below a threshold and compare correctness before and after on the retried questions.

Independent of any data set: questions come from a CSV (``question``, ``answers`` separated by
``|``) or JSONL (``question``, ``answers`` as a list) file.
"""

from __future__ import annotations

import csv
import json
import math
import pickle
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ensemble_nb.core.agreement import Judge, matches
from ensemble_nb.core.answer_span import find_answer_span
from ensemble_nb.core.api import prepare
from ensemble_nb.core.confidence import ENSEMBLE_KEY, Calibration
from ensemble_nb.core.events import SynthesisReady
from ensemble_nb.core.providers.base import Provider
from ensemble_nb.core.retry import retry_span_counted
from ensemble_nb.core.run import EnsembleRun
from ensemble_nb.core.synthesis import MemberAnswer, score_members, synthesize
from ensemble_nb.eval.calibrate import fit_calibration, fit_logistic
from ensemble_nb.eval.metrics import auroc, ece, prr

SIGNALS = ("max_prob", "mean_entropy", "answer_entropy", "semantic_entropy", "agreement", "combined")
ENSEMBLE = "ensemble"


@dataclass(frozen=True)
class Item:
    id: str
    question: str
    answers: tuple[str, ...]
    kind: str = ""


def load_questions(path: Path | str) -> list[Item]:
    path = Path(path)
    rows: list[dict[str, Any]]
    if path.suffix == ".csv":
        with path.open(newline="") as f:
            rows = [dict(r) for r in csv.DictReader(f)]
        for r in rows:
            r["answers"] = [a.strip() for a in str(r.get("answers", "")).split("|") if a.strip()]
    else:
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    items = []
    for i, r in enumerate(rows):
        answers = r.get("answers") or ([r["answer"]] if r.get("answer") else [])
        if not r.get("question") or not answers:
            raise ValueError(f"{path}: row {i + 1} needs a question and at least one accepted answer")
        items.append(Item(str(r.get("id", i)), str(r["question"]), tuple(str(a) for a in answers),
                          str(r.get("kind", ""))))
    return items


def is_correct(text: str, question: str, answers: Sequence[str]) -> bool:
    """Whether an accepted answer appears in the answer-bearing span of the first clause."""
    return matches(find_answer_span(text, question).text, answers)


def signal_values(m: MemberAnswer) -> dict[str, float]:
    """Each signal oriented higher = more confident, neutral where it is missing."""
    h_ans, h_mean, logprob, agree, h_sem, _ = m.signals.features()
    return {"max_prob": math.exp(logprob), "mean_entropy": -h_mean, "answer_entropy": -h_ans,
            "semantic_entropy": -h_sem, "agreement": agree, "combined": m.confidence}


@dataclass
class Generated:
    item: Item
    run: EnsembleRun
    seconds: float


async def generate(items: Sequence[Item], models: Sequence[str], *, max_tokens: int = 20,
                   system: str | None = None, providers: Mapping[str, Provider] | None = None,
                   progress: Callable[[int, Generated], None] | None = None) -> list[Generated]:
    """One ensemble run per question, one after another (the members of a run stream in parallel)."""
    out = []
    for i, item in enumerate(items):
        t0 = time.monotonic()
        handle = prepare(item.question, models=list(models), max_tokens=max_tokens, system=system,
                         providers=providers)
        await handle
        out.append(Generated(item, handle, time.monotonic() - t0))
        if progress:
            progress(i, out[-1])
    return out


def save_generated(generated: Sequence[Generated], path: Path | str) -> None:
    """Keep the runs' events, so the analysis can be redone without generating again (a local cache)."""
    data = [(g.item, g.seconds, g.run.options.model_dump(), list(g.run.result.events)) for g in generated]
    Path(path).write_bytes(pickle.dumps(data))


def load_generated(path: Path | str, providers: Mapping[str, Provider] | None = None) -> list[Generated]:
    """Runs rebuilt from saved events: their results are as generated, and retries work again."""
    out = []
    for item, seconds, options, events in pickle.loads(Path(path).read_bytes()):
        handle = prepare(item.question, providers=providers, **options)
        for event in events:
            handle.result.apply(event)
        out.append(Generated(item, handle, seconds))
    return out


@dataclass
class Report:
    n_calibration: int
    n_test: int
    accuracy: dict[str, float]
    auroc: dict[str, dict[str, float]]
    prr: dict[str, dict[str, float]]
    ece: dict[str, float]
    retry: dict[str, Any]
    by_kind: dict[str, dict[str, float]] = field(default_factory=dict)
    rows: list[dict[str, Any]] = field(default_factory=list)
    calibration: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items()}


def split(n: int, fraction: float, seed: int) -> tuple[list[int], list[int]]:
    idx = list(range(n))
    random.Random(seed).shuffle(idx)
    cut = round(n * fraction)
    return sorted(idx[:cut]), sorted(idx[cut:])


def folds_of(n: int, k: int, seed: int) -> list[list[int]]:
    idx = list(range(n))
    random.Random(seed).shuffle(idx)
    return [sorted(idx[f::k]) for f in range(k)]


def fit(generated: Sequence[Generated], indices: Sequence[int], *, strategy: str = "vote", l2: float = 1.0,
        judge: Judge | None = None) -> Calibration:
    """Per-member maps, then a map for the ensemble's chosen answer, from the given questions."""
    models = list(generated[0].run.specs) if generated else []
    # Features do not depend on the calibration (semantic entropy is weighted by raw
    # confidence), so scoring with the default map and refitting is exact.
    fit_rows: dict[str, tuple[list[list[float]], list[bool]]] = {m: ([], []) for m in models}
    for i in indices:
        g = generated[i]
        for m in score_members(list(g.run.result.models.values()), g.item.question, Calibration({}), judge):
            fit_rows[m.model][0].append(m.signals.features())
            fit_rows[m.model][1].append(is_correct(m.result.text, g.item.question, g.item.answers))
    cal = fit_calibration(fit_rows, l2)
    # The ensemble's answer is a selected one, usually the better: it gets a map of its own.
    ens_x: list[list[float]] = []
    ens_y: list[bool] = []
    for i in indices:
        g = generated[i]
        results = list(g.run.result.models.values())
        pick = synthesize(results, strategy, question=g.item.question, calibration=cal, judge=judge).chosen
        best = next((m for m in score_members(results, g.item.question, cal, judge) if m.model == pick), None)
        if best is not None:
            ens_x.append(best.signals.features())
            ens_y.append(is_correct(best.result.text, g.item.question, g.item.answers))
    if ens_x:
        cal.maps[ENSEMBLE_KEY] = fit_logistic(ens_x, ens_y, l2)
    return cal


async def evaluate(generated: Sequence[Generated], *, strategy: str = "vote", folds: int = 2,
                   calib_fraction: float = 0.5, seed: int = 0, l2: float = 1.0,
                   retry_below: float | None = 0.5, retry_samples: int = 1,
                   judge: Judge | None = None) -> Report:
    """Out-of-sample scores: with ``folds`` >= 2 each question is scored by a calibration fitted
    on the other folds (cross-fitting, every question reported once); with ``folds`` 1, one
    split of ``calib_fraction`` for fitting and the rest for the report."""
    models = list(generated[0].run.specs) if generated else []
    if folds >= 2:
        parts = folds_of(len(generated), folds, seed)
        plan = [([i for j, p in enumerate(parts) if j != f for i in p], parts[f]) for f in range(folds)]
    else:
        plan = [split(len(generated), calib_fraction, seed)]

    scores: dict[str, dict[str, list[float]]] = {k: {s: [] for s in SIGNALS} for k in [*models, ENSEMBLE]}
    correct: dict[str, list[bool]] = {k: [] for k in [*models, ENSEMBLE]}
    kinds: dict[str, dict[str, list[bool]]] = {}
    rows: list[dict[str, Any]] = []
    retried: list[dict[str, Any]] = []
    tokens_spent = 0
    for fit_idx, test_idx in plan:
        cal = fit(generated, fit_idx, strategy=strategy, l2=l2, judge=judge)
        for i in test_idx:
            g = generated[i]
            q, answers = g.item.question, g.item.answers
            results = list(g.run.result.models.values())
            scored = {m.model: m for m in score_members(results, q, cal, judge)}
            row: dict[str, Any] = {"id": g.item.id, "kind": g.item.kind, "question": q, "answers": list(answers)}
            for model in models:
                ok = False
                if model in scored:
                    m = scored[model]
                    ok = is_correct(m.result.text, q, answers)
                    vals = signal_values(m)
                else:  # the member produced nothing: a wrong answer with no confidence
                    vals = {s: -math.inf if s.endswith("entropy") else 0.0 for s in SIGNALS}
                for s in SIGNALS:
                    scores[model][s].append(vals[s])
                correct[model].append(ok)
                kinds.setdefault(g.item.kind, {}).setdefault(model, []).append(ok)
                row[model] = {"text": g.run.result.models[model].text, "correct": ok,
                              "answer": scored[model].signals.answer_text if model in scored else "", **vals}
            synthesis = synthesize(results, strategy, question=q, calibration=cal, judge=judge)
            ok = is_correct(synthesis.text, q, answers)
            chosen = scored.get(synthesis.chosen or "")
            vals = signal_values(chosen) if chosen else {s: 0.0 for s in SIGNALS}
            vals["combined"] = synthesis.confidence
            for s in SIGNALS:
                scores[ENSEMBLE][s].append(vals[s])
            correct[ENSEMBLE].append(ok)
            kinds.setdefault(g.item.kind, {}).setdefault(ENSEMBLE, []).append(ok)
            row[ENSEMBLE] = {"text": synthesis.text, "chosen": synthesis.chosen, "correct": ok, **vals}
            # Selective: only answers whose calibrated confidence says they are probably wrong.
            if retry_below is not None and synthesis.spans and synthesis.confidence < retry_below:
                g.run.emit(SynthesisReady(run_id=g.run.run_id, t=g.run.clock(), synthesis=synthesis))
                event, used = await retry_span_counted(g.run, 0, from_answer=True, samples=retry_samples,
                                                       calibration=cal)
                tokens_spent += used
                after = is_correct(event.synthesis.text, q, answers)
                retried.append({"id": g.item.id, "before": ok, "after": after, "accepted": event.accepted,
                                "old": event.old.text, "new": event.new.text, "by": event.new.model,
                                "old_confidence": event.old.confidence, "new_confidence": event.new.confidence})
                row[ENSEMBLE]["retry"] = retried[-1]
            rows.append(row)
    n_test = len(rows)
    final = fit(generated, range(len(generated)), strategy=strategy, l2=l2, judge=judge)

    n_retried = len(retried)
    retry = {
        "threshold": retry_below, "retried": n_retried, "accepted": sum(r["accepted"] for r in retried),
        "accuracy_before": sum(r["before"] for r in retried) / n_retried if n_retried else math.nan,
        "accuracy_after": sum(r["after"] for r in retried) / n_retried if n_retried else math.nan,
        "tokens": tokens_spent,
        "ensemble_accuracy_after_retry": (sum(correct[ENSEMBLE]) - sum(r["before"] for r in retried)
                                          + sum(r["after"] for r in retried)) / max(n_test, 1),
    }
    keys = [*models, ENSEMBLE]
    return Report(
        n_calibration=len(plan[0][0]), n_test=n_test,
        accuracy={k: sum(correct[k]) / len(correct[k]) if correct[k] else math.nan for k in keys}
        | {"oracle": sum(any(r[m]["correct"] for m in models) for r in rows) / max(len(rows), 1)},
        auroc={k: {s: auroc(scores[k][s], correct[k]) for s in SIGNALS} for k in keys},
        prr={k: {s: prr(scores[k][s], correct[k]) for s in SIGNALS} for k in keys},
        ece={k: ece(scores[k]["combined"], correct[k]) for k in keys},
        retry=retry,
        by_kind={kind: {k: sum(v) / len(v) for k, v in per.items()} for kind, per in sorted(kinds.items())},
        rows=rows, calibration=final.to_json(),
    )


def format_report(report: Report) -> str:
    keys = list(report.auroc)
    lines = [f"questions: {report.n_test} reported, each scored by a calibration fitted on "
             f"{report.n_calibration} others",
             "accuracy: " + ", ".join(f"{k} {v:.3f}" for k, v in report.accuracy.items())]
    header = f"{'signal':<18}" + "".join(f"{k:>22}" for k in keys)
    lines += ["", "AUROC / PRR (out of sample)", header]
    for s in SIGNALS:
        lines.append(f"{s:<18}" + "".join(f"{report.auroc[k][s]:>12.3f} /{report.prr[k][s]:>7.3f}  " for k in keys))
    lines.append("ECE of combined: " + ", ".join(f"{k} {v:.3f}" for k, v in report.ece.items()))
    best = {k: max((v for s, v in report.auroc[k].items() if s != "combined" and not math.isnan(v)),
                   default=math.nan) for k in keys}
    lines.append("combined AUROC - best single signal: " + ", ".join(
        f"{k} {report.auroc[k]['combined'] - best[k]:+.3f}" for k in keys))
    r = report.retry
    lines += ["", f"retry (answer confidence < {r['threshold']}): {r['retried']} retried, {r['accepted']} "
              f"accepted, accuracy on them {r['accuracy_before']:.3f} -> {r['accuracy_after']:.3f}, "
              f"{r['tokens']} tokens; ensemble accuracy {report.accuracy[ENSEMBLE]:.3f} -> "
              f"{r['ensemble_accuracy_after_retry']:.3f}"]
    if report.by_kind:
        lines += ["", "accuracy by kind: " + "; ".join(
            f"{kind}: " + " ".join(f"{k} {v:.2f}" for k, v in per.items()) for kind, per in report.by_kind.items())]
    return "\n".join(lines)
