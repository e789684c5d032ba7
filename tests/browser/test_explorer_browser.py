"""Notebooks 02 and 03 in a real JupyterLab and Chromium: click a token, branch, move temperature.

Screenshots land in artifacts/browser/ for a person to look at.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.browser.conftest import ARTIFACTS

pytestmark = pytest.mark.local  # 02 runs the embedded models


def _open(page: Any, lab_url: str, name: str) -> None:
    page.goto(f"{lab_url}/lab/workspaces/enb-{name[:2]}/tree/examples/{name}?reset")
    page.wait_for_selector(".jp-Notebook .jp-CodeCell", timeout=90_000)
    page.wait_for_timeout(1500)
    if page.locator(".jp-Dialog").count():  # "select kernel" on first open
        page.click(".jp-Dialog .jp-mod-accept")
    page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']", timeout=90_000)
    news = page.locator(".jp-Notification-Toast-Close")
    if news.count():
        news.first.click()


def _run_cells(page: Any, upto: int, timeout: int = 180_000) -> None:
    """Run code cells 0..upto, each to its end (its prompt shows a number, not *)."""
    for i in range(upto + 1):
        cell = page.locator(".jp-Notebook .jp-CodeCell").nth(i)
        cell.locator(".jp-InputArea-editor").click()
        page.keyboard.press("Shift+Enter")
        page.wait_for_function(
            "(i) => { const p = document.querySelectorAll('.jp-Notebook .jp-CodeCell .jp-InputPrompt')[i];"
            " return p && /\\[\\d+\\]/.test(p.textContent); }", arg=i, timeout=timeout)


def test_explorer_click_a_token_and_branch(page: Any, lab_url: str) -> None:
    _open(page, lab_url, "02_token_distributions.ipynb")
    _run_cells(page, 3)  # load, run, await, show the explorer
    page.wait_for_selector(".enb-explorer .enb-xtoken[data-model='smollm2']", timeout=60_000)
    tokens = page.locator(".enb-explorer .enb-xtoken[data-model='smollm2']")
    entropies = [float(tokens.nth(i).get_attribute("data-entropy") or 0) for i in range(tokens.count())]
    target = tokens.nth(max(range(len(entropies)), key=entropies.__getitem__))
    target.scroll_into_view_if_needed()
    target.click()
    page.wait_for_selector(".enb-explorer .enb-xtoken.enb-xselected", timeout=20_000)
    page.wait_for_function("() => /nats = .* bits/.test(document.querySelector('.enb-explorer-chart .gtitle')"
                           "?.textContent ?? '')", timeout=30_000)
    bars = page.locator(".enb-explorer-chart .bars .point")
    assert bars.count() >= 2
    # Click the second bar (plotly's drag layer lies on top, so click at the bar's position).
    box = bars.nth(1).bounding_box()
    assert box is not None
    page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] - 2)
    page.wait_for_function("() => (document.querySelector('.enb-token-explorer select')?.selectedOptions[0]"
                           "?.textContent ?? '').startsWith('2.')", timeout=20_000)
    page.click(".enb-branch")
    page.wait_for_selector(".enb-branch-new", timeout=120_000)
    page.wait_for_selector(".enb-explorer .enb-xtoken.enb-xbranched", timeout=20_000)
    assert "instead of" in page.locator(".enb-branch-new").inner_text()
    view = page.locator(".enb-token-explorer").first
    view.scroll_into_view_if_needed()
    view.screenshot(path=str(ARTIFACTS / "04_explorer_branch.png"))


def _set_temperature(page: Any, value: float) -> None:
    readout = page.locator(".enb-playground").first.locator(".enb-temperature .widget-readout")
    readout.click()
    page.keyboard.press("Control+A")
    page.keyboard.type(f"{value}")
    page.keyboard.press("Enter")
    page.wait_for_function(
        "(v) => Math.abs(parseFloat(document.querySelector('.enb-playground .enb-temperature .widget-readout')"
        ".textContent) - v) < 1e-6", arg=value, timeout=20_000)
    page.wait_for_timeout(800)  # the kernel recomputes and plotly redraws


def test_playground_temperature_low_and_high(page: Any, lab_url: str) -> None:
    _open(page, lab_url, "03_teaching_entropy.ipynb")
    _run_cells(page, 2)  # the entropy table, the playground, the temperature sweep (pure maths)
    page.wait_for_selector(".enb-playground .enb-playground-chart .bars .point", timeout=60_000)
    view = page.locator(".enb-playground").first
    summary = page.locator(".enb-playground-summary").first
    _set_temperature(page, 0.3)
    low = float(summary.get_attribute("data-entropy") or "nan")
    view.scroll_into_view_if_needed()
    view.screenshot(path=str(ARTIFACTS / "05_playground_T_low.png"))
    _set_temperature(page, 1.8)
    page.wait_for_function("(lo) => parseFloat(document.querySelector('.enb-playground-summary')"
                           ".dataset.entropy) > lo", arg=low, timeout=20_000)
    view.screenshot(path=str(ARTIFACTS / "06_playground_T_high.png"))
