"""Finding the answer-bearing words of an answer, and the tokens that carry them.

"The capital of Benin is Bakura." is mostly a copy of the question; the only uncertainty that
matters is on "Bakura". The heuristics here pick that part out without a model: content words
not shared with the question, preferring what follows a copula ("is", "was", "by"...), names
(capitalised) for who/which questions and numbers for how-many/number questions. They are
cheap and language-specific (English), which is the point: they run on every answer.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

_WORD = re.compile(r"[A-Za-z0-9]+(?:[-'’.][A-Za-z0-9]+)*")
_CLAUSE_END = re.compile(r"[.;!?\n]|,\s(?:but|and|which|who|while|so|as|because|since|not)\b")
# Words that link a subject to what is said about it: the answer usually follows the last one.
CUES = frozenset({"is", "was", "are", "were", "by", "called", "named", "be", "equals", "as"})
STOPWORDS = frozenset("""
a an the of in on at to for from with and or but not no it its it's this that these those there
their they them he she his her him we you your me my our us which who whom whose what when where
why how is was are were be been being has have had do does did can could will would should may might
must shall than then so such very also only just about into over under after before between as by
called named known one
""".split())
_NUMBER_Q = re.compile(r"\b(how many|number|how much|year|when)\b", re.I)
_NAME_Q = re.compile(r"^\s*(who|which|what (element|metal|gas)|name)\b", re.I)


class HasText(Protocol):
    @property
    def text(self) -> str: ...


@dataclass(frozen=True, slots=True)
class AnswerSpan:
    """Character range [start, end) of the answer-bearing words in ``text`` and their text."""

    start: int
    end: int
    text: str
    echo: bool = False
    """Every word of it is in the question: it repeats the question rather than answering it."""

    @property
    def empty(self) -> bool:
        return self.end <= self.start


def stem(word: str) -> str:
    """A crude stem, enough to see that "discovered" repeats "discover" and "elements" "element"."""
    w = word.lower().strip("'’.")
    for suffix in ("ies", "ed", "es", "s", "ing", "y", "ery"):
        if len(w) > len(suffix) + 3 and w.endswith(suffix):
            return w[: -len(suffix)]
    return w


def question_words(question: str) -> set[str]:
    return {stem(w) for w in _WORD.findall(question)} - {stem(w) for w in STOPWORDS}


def first_clause_end(text: str, start: int = 0) -> int:
    """Where the clause beginning at ``start`` ends (the first sentence end past a word)."""
    for m in _CLAUSE_END.finditer(text, start):
        # "2.5" and "St. " are not sentence ends; a full stop must not sit between digits.
        if m.group() == "." and 0 < m.start() < len(text) - 1 and text[m.start() + 1].isdigit():
            continue
        if _WORD.search(text, start, m.start()):
            return m.start()
    return len(text)


def find_answer_span(text: str, question: str = "", start: int = 0, end: int | None = None) -> AnswerSpan:
    """The answer-bearing words in ``text[start:end]`` (its first clause when ``end`` is None)."""
    end = first_clause_end(text, start) if end is None else end
    asked = question_words(question)
    words = [(m.start(), m.end(), m.group()) for m in _WORD.finditer(text, start, end)]
    if not words:
        return AnswerSpan(start, start, "")

    def content(w: str) -> bool:
        return w.lower() not in STOPWORDS and stem(w) not in asked

    for option in _options(question):
        m = re.search(rf"\b{re.escape(option)}\b", text[start:end], re.I)
        if m:  # "gas, liquid or solid?": the option named is the answer
            return AnswerSpan(start + m.start(), start + m.end(), m.group())
    cue = max((i for i, (_, _, w) in enumerate(words) if w.lower() in CUES), default=-1)
    # A comma or dash between two words ends a run: "a German chemist, Otto Hahn" holds two.
    breaks = {i for i in range(1, len(words)) if re.search(r"[,:;()]", text[words[i - 1][1]:words[i][0]])}
    runs = _runs([i for i, (_, _, w) in enumerate(words) if content(w)], breaks)
    echo = not runs
    if not runs:
        # Everything repeats the question ("The symbol of tungsten is tungsten."): the answer is
        # what follows the cue, even if it only echoes the question.
        after = [i for i in range(cue + 1, len(words)) if words[i][2].lower() not in STOPWORDS]
        runs = _runs(after, breaks) or [[len(words) - 1]]
    wants_name = bool(_NAME_Q.search(question))
    wants_number = bool(_NUMBER_Q.search(question))

    def score(run: list[int]) -> float:
        toks = [words[i][2] for i in run]
        s = 0.0
        if run[0] > cue:
            s += 2.0 - 0.1 * (run[0] - cue - 1)  # right after the copula is best
        elif run[-1] == cue - 1 and all(words[i][2].lower() in STOPWORDS for i in range(run[0])):
            # The subject, when it is not the question's: "Iron is a metal." answers "Which
            # element has the symbol Fe?", "Au is the symbol of gold" the symbol of gold.
            s += 1.8 if any(t[0].isupper() or t[0].isdigit() for t in toks) else 0.8
        if run[0] > 0 and stem(words[run[0] - 1][2]) in asked:
            s += 0.6  # right after a word of the question: "with the symbol C", "number 26"
        upper = sum(t[0].isupper() for t in toks) / len(toks)
        s += 1.5 * upper if wants_name else 0.8 * upper  # a capital mid-sentence marks a name or symbol
        if any(t[0].isdigit() for t in toks):
            s += 1.5 if wants_number else 0.3
        return s - 0.01 * run[0]

    best = max(runs, key=score)
    a, b = words[best[0]][0], words[best[-1]][1]
    return AnswerSpan(a, b, text[a:b], echo=echo and bool(asked))


def _options(question: str) -> list[str]:
    m = re.search(r"((?:[A-Za-z]+,\s*)+[A-Za-z]+,?\s+or\s+[A-Za-z]+)\s*\??\s*", question)
    if not m:
        return []
    return [w for w in re.split(r",\s*|\s+or\s+", m.group(1)) if w]


def _runs(indices: Sequence[int], breaks: set[int] | frozenset[int] = frozenset()) -> list[list[int]]:
    out: list[list[int]] = []
    for i in indices:
        if out and out[-1][-1] == i - 1 and i not in breaks:
            out[-1].append(i)
        else:
            out.append([i])
    return out


def char_to_token_range(tokens: Sequence[HasText], start: int, end: int) -> tuple[int, int]:
    """Token range [a, b) covering characters [start, end) of the tokens' joined text."""
    a = b = -1
    pos = 0
    for i, tok in enumerate(tokens):
        nxt = pos + len(tok.text)
        if a < 0 and nxt > start:
            a = i
        if nxt >= end and a >= 0:
            b = i + 1
            break
        pos = nxt
    if a < 0:
        return len(tokens), len(tokens)
    return a, (b if b > 0 else len(tokens))


def answer_tokens(tokens: Sequence[HasText], question: str = "", start: int = 0,
                  end: int | None = None) -> tuple[int, int]:
    """Token range [a, b) of the answer-bearing words among ``tokens[start:end]``.

    Empty (a == b) when the stretch has no words at all.
    """
    part = tokens[start:end]
    text = "".join(t.text for t in part)
    span = find_answer_span(text, question, 0, len(text) if end is not None else None)
    if span.empty:
        return start, start
    a, b = char_to_token_range(part, span.start, span.end)
    return start + a, start + b
