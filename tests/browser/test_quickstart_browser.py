"""The quickstart in a real JupyterLab and Chromium: live panes, Cancel, Retry span, screenshots.

Screenshots land in artifacts/browser/ for a person to look at.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.browser.conftest import ARTIFACTS

pytestmark = pytest.mark.local  # the quickstart runs the embedded models


def _open_quickstart(page: Any, lab_url: str) -> None:
    page.goto(f"{lab_url}/lab/workspaces/enb/tree/examples/quickstart.ipynb?reset")
    page.wait_for_selector(".jp-Notebook .jp-CodeCell", timeout=90_000)
    page.wait_for_timeout(1500)
    if page.locator(".jp-Dialog").count():  # "select kernel" on first open
        page.click(".jp-Dialog .jp-mod-accept")
    page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']", timeout=90_000)
    news = page.locator(".jp-Notification-Toast-Close")  # JupyterLab's "get news?" toast covers the view
    if news.count():
        news.first.click()


def _run_code_cell(page: Any, index: int) -> None:
    page.locator(".jp-CodeCell").nth(index).locator(".jp-InputArea-editor").click()
    page.keyboard.press("Shift+Enter")


def test_quickstart_streams_cancels_and_retries(page: Any, lab_url: str) -> None:
    _open_quickstart(page, lab_url)
    _run_code_cell(page, 0)  # %load_ext ensemble_nb
    try:
        page.wait_for_function(
            "() => /\\[1\\]/.test(document.querySelectorAll('.jp-CodeCell .jp-InputPrompt')[0]?.textContent ?? '')",
            timeout=60_000)
    except Exception:
        page.screenshot(path=str(ARTIFACTS / "failed_load_ext.png"), full_page=True)
        raise

    cancelled = None
    for _attempt in range(3):  # a small model may finish before the click lands: run the cell again
        _run_code_cell(page, 1)
        page.wait_for_selector(".enb-pane[data-model='smollm2'] .enb-token", timeout=120_000)
        page.wait_for_selector(".enb-pane[data-model='gemma3'] .enb-token", timeout=120_000)
        streaming = page.locator(".enb-pane[data-status='streaming']")
        if streaming.count():
            model = streaming.first.get_attribute("data-model")
            page.click(f".enb-cancel[title='Cancel {model}']")
            page.locator(".enb-view").last.screenshot(path=str(ARTIFACTS / "01_two_live_panes.png"))
            page.wait_for_selector(f".enb-pane[data-model='{model}']:is([data-status='cancelled'], "
                                   "[data-status='finished'])", timeout=60_000)
            if page.locator(f".enb-pane[data-model='{model}'][data-status='cancelled']").count():
                cancelled = model
                break
        page.wait_for_selector(".enb-header[data-status='ok']", timeout=120_000)
    assert cancelled is not None, "no model was still streaming when Cancel was clicked, three times"
    other = "gemma3" if cancelled == "smollm2" else "smollm2"
    page.wait_for_selector(f".enb-pane[data-model='{other}'][data-status='finished']", timeout=120_000)

    # Tokens are coloured by entropy and carry their alternatives on hover.
    token = page.locator(f".enb-pane[data-model='{other}'] .enb-token").first
    assert token.get_attribute("data-entropy") is not None
    assert "top-5" in (token.get_attribute("title") or "")
    assert page.locator(".enb-plot").count() == 1
    assert page.locator(".enb-plot .scatterlayer .trace").count() >= 2
    page.locator(".enb-view").screenshot(path=str(ARTIFACTS / "02_cancelled_model_and_plot.png"))

    page.wait_for_selector(".enb-span[data-index='0']", timeout=60_000)
    page.click(".enb-span[data-index='0']")
    page.wait_for_selector(".enb-span.enb-selected[data-index='0']", timeout=10_000)
    page.click(".enb-retry")
    page.wait_for_selector(".enb-retry-item", timeout=120_000)
    assert "span 0 retried" in page.locator(".enb-retry-item").first.inner_text()
    page.locator(".enb-view").screenshot(path=str(ARTIFACTS / "03_synthesis_after_retry.png"))
