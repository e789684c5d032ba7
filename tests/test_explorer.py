"""The token explorer, headless: select a token, read its chart, branch through the button."""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections.abc import AsyncGenerator, Callable, Sequence

import pytest

from ensemble_nb.core import EnsembleRun, prepare
from ensemble_nb.core.providers.base import Capabilities, GenerationRequest
from ensemble_nb.core.providers.scripted import ScriptedProvider, Step, steps_from_text
from ensemble_nb.core.tokens import Alternative, Completion, StreamItem, Token, Usage
from ensemble_nb.widgets.explorer import TokenExplorer, branch_html, explore


def _script(request: GenerationRequest) -> Sequence[Step]:
    if not request.prefix:
        return steps_from_text("The capital is Paris.", 0.6)
    return [Step(" and", {" and": 0.5, " or": 0.2}), Step(" more.", {" more.": 0.9})]


def _run(models: str = "a b") -> EnsembleRun:
    providers = {m: ScriptedProvider(m, _script) for m in models.split()}
    return prepare("Capital of France?", models=models, providers=providers, max_tokens=16)


async def until(condition: Callable[[], bool], within: float = 5.0) -> None:
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)


async def test_every_model_token_is_clickable_and_shows_its_alternatives() -> None:
    run = _run()
    await run
    ex = TokenExplorer(run)
    assert set(ex.grid.models) == {"a", "b"} and len(ex.grid.models["b"]) == 4
    assert ex.branch_button.disabled
    ex.select("b", 3)
    bar = ex.chart.data[0]
    assert bar.x[0] == "1. ' Paris.'" and len(bar.x) == 5  # the whole mass is in the top-5: no tail bar
    assert abs(sum(bar.y) - 1.0) < 1e-9 and abs(bar.y[0] - 0.6) < 1e-9
    title = ex.chart.layout.title.text
    assert "nats" in title and "bits" in title and "token 3" in title
    # The dropdown defaults to the likeliest alternative that was not chosen; bars recolour.
    assert ex.choice.value == "Paris.~0" and not ex.branch_button.disabled
    ex.choose(2)
    assert ex.choice.value == "Paris.~1"
    assert list(bar.marker.color).count("#7c3aed") == 1


async def test_bar_click_picks_the_alternative() -> None:
    run = _run("a")
    await run
    ex = explore(run)
    ex.select("a", 0)

    class Points:
        point_inds = [3]  # noqa: RUF012

    ex._on_bar_click(None, Points(), None)
    assert ex.choice.value == "The~2"


async def test_branch_button_continues_the_model_beside_the_original() -> None:
    run = _run()
    await run
    ex = TokenExplorer(run, max_tokens=5)
    ex.select("a", 3)
    ex.choose("Paris.~0")
    ex.branch_button.click()
    await until(lambda: bool(ex.branches))
    got = ex.branches[0]
    assert got.prefix == "The capital isParis.~0" and got.continuation == " and more."
    assert ex.grid.branched == ["a:3"]
    assert "branch" in ex.notice.value and "enb-branch-new" in ex.branch_view.value
    assert "and" in ex.branch_view.value and "original (a)" in ex.branch_view.value
    assert not ex.branch_button.disabled


async def test_branch_clicked_from_another_thread_runs_on_the_run_loop() -> None:
    run = _run("a")
    await run
    ex = TokenExplorer(run)
    ex.select("a", 1)
    worker = threading.Thread(target=ex.branch_button.click)
    worker.start()
    worker.join()
    await until(lambda: bool(ex.branches))
    assert ex.branches[0].index == 1


async def test_branch_errors_are_shown_not_raised() -> None:
    class NoPrefix(ScriptedProvider):
        @property
        def capabilities(self) -> Capabilities:
            return Capabilities(prefix=False)

    run = prepare("q", models="r", providers={"r": NoPrefix("r", steps_from_text("x y z"))})
    await run
    ex = TokenExplorer(run)
    ex.select("r", 1)
    ex.branch_button.click()
    await until(lambda: bool(ex.errors))
    assert "cannot continue from a given prefix" in ex.notice.value


async def test_branch_selected_and_a_result_only_explorer() -> None:
    run = _run("a")
    result = await run
    ex = TokenExplorer(run)
    ex.select("a", 2)
    got = await ex.branch_selected()
    assert got.alternative == "is~0" and ex.branches == [got]
    view_only = explore(result)
    view_only.select("a", 2)
    assert view_only.branch_button.disabled and "run handle" in view_only.notice.value
    with pytest.raises(ValueError):
        await view_only.branch_selected()
    assert "instead of" in branch_html(result.models["a"].tokens, got)


async def test_explorer_of_a_running_run_fills_in_as_models_end() -> None:
    run = prepare("q", models="a", providers={"a": ScriptedProvider("a", steps_from_text("one two three"),
                                                                    token_delay=0.02)})
    run.start()
    ex = TokenExplorer(run)
    await run
    await until(lambda: len(ex.grid.models.get("a", [])) == 3)


class _OddTokens(ScriptedProvider):
    """Duplicate alternative texts (two ids, one text), a tail outside the top-k, and a token
    without probabilities."""

    async def stream(self, request: GenerationRequest) -> AsyncGenerator[StreamItem, None]:
        alts = (Alternative("x", math.log(0.4)), Alternative("y", math.log(0.2)), Alternative("y", math.log(0.25)))
        yield Token("x", math.log(0.4), 1.5, "full", alts)
        yield Token(" z")
        yield Completion("stop", Usage(1, 2))


async def test_bars_and_dropdown_agree_with_duplicates_a_tail_and_no_probabilities() -> None:
    run = prepare("q", models="o", providers={"o": _OddTokens("o", [])})
    await run
    ex = TokenExplorer(run)
    ex.select("o", 0)
    bar = ex.chart.data[0]
    assert list(bar.x) == ["1. 'y'", "2. 'x'", "(other)"]  # y = 0.2 + 0.25 outweighs x
    assert [v for _, v in ex.choice.options] == ["y", "x"]
    assert ex.choice.value == "y"

    class Points:
        point_inds = [2]  # noqa: RUF012  (the tail bar: not a token to branch from)

    ex._on_bar_click(None, Points(), None)
    assert ex.choice.value == "y"
    ex.select("o", 1)
    assert list(ex.chart.data[0].x) == ["1. ' z'"] and ex.choice.options == ()
    assert ex.branch_button.disabled
